//! [`Rule`]: a step rule with its parameters, as one value. Each variant holds the struct of its
//! rule (`step/*.rs`), so an option a rule does not read cannot be written; serde tags it by
//! `rule`, which makes a study file's `[[attack]]` block and the stored cell the same flat form:
//! `rule = "pgd"`, `n_iter = 10`, `random_start = true`.
//!
//! A new rule is three files: its struct and [`StepRule`] impl in `step/`, its variant here, and
//! its flags in the command line's `attack_args.rs`.
use super::step::{Apgd, AutoSage, Ensemble, Fgsm, MiFgsm, Pgd, STANDARD_N_ITER, STANDARD_N_QUERIES, Square, StepRule};
use crate::error::Result;

/// A step rule and its parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Rule {
    /// One step of size ε.
    Fgsm(Fgsm),
    /// Momentum iterative FGSM.
    Mifgsm(MiFgsm),
    /// Projected gradient ascent (I-FGSM), the paper's "PGD".
    Pgd(Pgd),
    /// Auto-PGD, the paper's "APGD/AutoAttack".
    Apgd(Apgd),
    /// Auto-SAGE with learned per-task weights.
    AutoSage(AutoSage),
    /// The Square attack: a gradient-free random search (L∞).
    Square(Square),
    /// The per-sample worst case over several attacks (its direction is the score).
    Ensemble(Ensemble),
}

/// A step rule by name (`--attack`, tables, benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    Fgsm,
    Mifgsm,
    Pgd,
    Apgd,
    AutoSage,
    Square,
    /// Not a `--attack` choice: `attack --ensemble` and study `[[ensemble]]` blocks make ensembles.
    #[cfg_attr(feature = "cli", value(skip))]
    Ensemble,
}

impl RuleKind {
    /// Every step rule, in the paper's order, then Square (not in the paper); not the ensemble,
    /// which is made of them.
    pub const ALL: [RuleKind; 6] = [RuleKind::Fgsm, RuleKind::Mifgsm, RuleKind::Pgd, RuleKind::Apgd, RuleKind::AutoSage, RuleKind::Square];

    /// The stable id (`auto-sage`), as study files and the command line spell it.
    pub fn id(self) -> &'static str {
        match self {
            RuleKind::Fgsm => "fgsm",
            RuleKind::Mifgsm => "mifgsm",
            RuleKind::Pgd => "pgd",
            RuleKind::Apgd => "apgd",
            RuleKind::AutoSage => "auto-sage",
            RuleKind::Square => "square",
            RuleKind::Ensemble => "ensemble",
        }
    }

    /// How the paper names it: `FGSM`, `MI-FGSM`, `PGD`, `APGD`, `Auto-SAGE` (and `Square`).
    pub fn display_name(self) -> &'static str {
        match self {
            RuleKind::Fgsm => "FGSM",
            RuleKind::Mifgsm => "MI-FGSM",
            RuleKind::Pgd => "PGD",
            RuleKind::Apgd => "APGD",
            RuleKind::AutoSage => "Auto-SAGE",
            RuleKind::Square => "Square",
            RuleKind::Ensemble => "Ensemble",
        }
    }

    /// Whether the rule follows the input gradient (all but Square, which only queries the
    /// model's outputs and so still works where gradients are masked).
    pub fn uses_gradients(self) -> bool {
        !matches!(self, RuleKind::Square)
    }

    /// The rule by its id, if it is one.
    pub fn from_id(id: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().chain([RuleKind::Ensemble]).find(|k| k.id() == id)
    }

    /// The rule with its default parameters.
    pub fn default_rule(self) -> Rule {
        match self {
            RuleKind::Fgsm => Rule::Fgsm(Fgsm::default()),
            RuleKind::Mifgsm => Rule::Mifgsm(MiFgsm::default()),
            RuleKind::Pgd => Rule::Pgd(Pgd::default()),
            RuleKind::Apgd => Rule::Apgd(Apgd::default()),
            RuleKind::AutoSage => Rule::AutoSage(AutoSage::default()),
            RuleKind::Square => Rule::Square(Square::default()),
            // Without a model's tasks: the standard ensemble less its Single-x members.
            RuleKind::Ensemble => Rule::Ensemble(Ensemble::standard(&[], STANDARD_N_ITER, STANDARD_N_QUERIES)),
        }
    }
}

impl Default for Rule {
    /// PGD with the paper's parameters (10 steps of ε/10, no random start).
    fn default() -> Self {
        Rule::Pgd(Pgd::default())
    }
}

impl Rule {
    /// Which rule.
    pub fn kind(&self) -> RuleKind {
        match self {
            Rule::Fgsm(_) => RuleKind::Fgsm,
            Rule::Mifgsm(_) => RuleKind::Mifgsm,
            Rule::Pgd(_) => RuleKind::Pgd,
            Rule::Apgd(_) => RuleKind::Apgd,
            Rule::AutoSage(_) => RuleKind::AutoSage,
            Rule::Square(_) => RuleKind::Square,
            Rule::Ensemble(_) => RuleKind::Ensemble,
        }
    }

    /// The stable id of the rule.
    pub fn id(&self) -> &'static str {
        self.kind().id()
    }

    /// How stores, tables and labels name the rule: its id, or `ensemble:NAME` (ensembles of
    /// different members are different columns).
    pub fn key(&self) -> String {
        match self {
            Rule::Ensemble(e) => format!("ensemble:{}", e.name),
            r => r.id().to_string(),
        }
    }

    /// The rule as something that runs.
    pub fn step(&self) -> &dyn StepRule {
        match self {
            Rule::Fgsm(r) => r,
            Rule::Mifgsm(r) => r,
            Rule::Pgd(r) => r,
            Rule::Apgd(r) => r,
            Rule::AutoSage(r) => r,
            Rule::Square(r) => r,
            Rule::Ensemble(r) => r,
        }
    }

    /// Checks the parameters' ranges.
    ///
    /// # Errors
    /// The first parameter out of range, by its name.
    pub fn check(&self) -> Result<()> {
        self.step().check()
    }

    /// The iteration count of an iterative rule (`None` for FGSM and an ensemble): Square's
    /// `n_queries`, its iterations after the initialisation, one forward each.
    pub fn n_iter(&self) -> Option<usize> {
        match self {
            Rule::Fgsm(_) => None,
            Rule::Mifgsm(r) => Some(r.n_iter),
            Rule::Pgd(r) => Some(r.n_iter),
            Rule::Apgd(r) => Some(r.n_iter),
            Rule::AutoSage(r) => Some(r.n_iter),
            Rule::Square(r) => Some(r.n_queries),
            Rule::Ensemble(_) => None,
        }
    }

    /// The same rule with `n_iter` iterations (and one restart; Square: `n_queries`): what
    /// benchmarks time. FGSM is unchanged.
    pub fn with_n_iter(&self, n_iter: usize) -> Rule {
        let mut rule = self.clone();
        match &mut rule {
            Rule::Fgsm(_) => {}
            Rule::Mifgsm(r) => r.n_iter = n_iter,
            Rule::Pgd(r) => r.n_iter = n_iter,
            Rule::Apgd(r) => {
                r.n_iter = n_iter;
                if let super::ApgdProfile::Autoattack { restarts } = &mut r.profile {
                    *restarts = 1;
                }
            }
            Rule::AutoSage(r) => r.n_iter = n_iter,
            Rule::Square(r) => r.n_queries = n_iter,
            Rule::Ensemble(e) => *e = e.with_n_iter(n_iter),
        }
        rule
    }

    /// Iterations per sample, restarts included (1 for FGSM, `n_queries` for Square, the sum of
    /// its members' for an ensemble): the unit of throughput figures.
    pub fn iterations(&self) -> usize {
        match self {
            Rule::Apgd(r) => r.n_iter * r.restarts(),
            Rule::Ensemble(e) => e.iterations(),
            r => r.n_iter().unwrap_or(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::ApgdProfile;

    fn parse(toml_text: &str) -> std::result::Result<Rule, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_read_as_flat_tables_tagged_by_rule() {
        assert_eq!(parse("rule = 'fgsm'").unwrap(), Rule::Fgsm(Fgsm {}));
        assert_eq!(
            parse("rule = 'pgd'\nn_iter = 5\nrandom_start = true").unwrap(),
            Rule::Pgd(Pgd { n_iter: 5, random_start: true, ..Pgd::default() })
        );
        // An integer step size reads as grey levels.
        assert_eq!(parse("rule = 'mifgsm'\nstep_size = 2").unwrap(), Rule::Mifgsm(MiFgsm { step_size: Some(2.0), ..MiFgsm::default() }));
        assert_eq!(
            parse("rule = 'apgd'\napgd_profile = 'paper'\napgd_revised = true").unwrap(),
            Rule::Apgd(Apgd { n_iter: 10, profile: ApgdProfile::Paper { revised: true } })
        );
        assert_eq!(
            parse("rule = 'apgd'\nrestarts = 3").unwrap(),
            Rule::Apgd(Apgd { n_iter: 10, profile: ApgdProfile::Autoattack { restarts: 3 } })
        );
        assert_eq!(
            parse("rule = 'auto-sage'\nsage_decay = 0.5").unwrap(),
            Rule::AutoSage(AutoSage { sage_decay: 0.5, ..AutoSage::default() })
        );
        assert_eq!(parse("rule = 'square'\nn_queries = 20").unwrap(), Rule::Square(Square { n_queries: 20, p_init: 0.8 }));
        assert_eq!(parse("rule = 'square'\np_init = 0.05").unwrap(), Rule::Square(Square { n_queries: 5000, p_init: 0.05 }));
    }

    #[test]
    fn options_a_rule_does_not_read_are_refused() {
        let e = parse("rule = 'pgd'\nrestarts = 2").unwrap_err();
        assert!(e.contains("unknown field `restarts`"), "{e}");
        let e = parse("rule = 'fgsm'\nn_iter = 2").unwrap_err();
        assert!(e.contains("unknown field `n_iter`"), "{e}");
        let e = parse("rule = 'apgd'\napgd_profile = 'paper'\nrestarts = 2").unwrap_err();
        assert!(e.contains("restarts") && e.contains("autoattack"), "{e}");
        let e = parse("rule = 'apgd'\napgd_revised = true").unwrap_err();
        assert!(e.contains("apgd_revised") && e.contains("paper"), "{e}");
        let e = parse("rule = 'square'\nn_iter = 2").unwrap_err();
        assert!(e.contains("unknown field `n_iter`") && e.contains("n_queries"), "{e}");
        let e = parse("rule = 'pgd'\nn_queries = 2").unwrap_err();
        assert!(e.contains("unknown field `n_queries`"), "{e}");
        let e = parse("rule = 'pgdd'").unwrap_err();
        assert!(e.contains("pgdd"), "{e}");
    }

    #[test]
    fn every_rule_round_trips_through_its_stored_form() {
        for kind in RuleKind::ALL {
            let rule = kind.default_rule().with_n_iter(3);
            let json = serde_json::to_string(&rule).unwrap();
            assert!(json.contains(&format!("\"rule\":\"{}\"", kind.id())), "{json}");
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
            assert_eq!(RuleKind::from_id(kind.id()), Some(kind));
            assert_eq!(rule.kind(), kind);
        }
        let paper = Rule::Apgd(Apgd { n_iter: 4, profile: ApgdProfile::Paper { revised: false } });
        assert_eq!(serde_json::from_str::<Rule>(&serde_json::to_string(&paper).unwrap()).unwrap(), paper);
    }

    #[test]
    fn ranges_are_checked_by_parameter_name() {
        let e = Rule::Pgd(Pgd { n_iter: 0, ..Pgd::default() }).check().unwrap_err().to_string();
        assert!(e.starts_with("n_iter:"), "{e}");
        let e = Rule::Pgd(Pgd { n_iter: usize::MAX, ..Pgd::default() }).check().unwrap_err().to_string();
        assert!(e.starts_with("n_iter:") && e.contains("1000000"), "{e}");
        let e = Rule::Mifgsm(MiFgsm { mi_momentum: f64::NAN, ..MiFgsm::default() }).check().unwrap_err().to_string();
        assert!(e.starts_with("mi_momentum:"), "{e}");
        let e = Rule::AutoSage(AutoSage { sage_decay: 1.0, ..AutoSage::default() }).check().unwrap_err().to_string();
        assert!(e.starts_with("sage_decay:"), "{e}");
        let e = Rule::Apgd(Apgd { n_iter: 5, profile: ApgdProfile::Autoattack { restarts: 0 } }).check().unwrap_err().to_string();
        assert!(e.starts_with("restarts:"), "{e}");
        let e = Rule::Pgd(Pgd { step_size: Some(-1.0), ..Pgd::default() }).check().unwrap_err().to_string();
        assert!(e.starts_with("step_size:"), "{e}");
        assert_eq!(Rule::Apgd(Apgd { n_iter: 5, profile: ApgdProfile::Autoattack { restarts: 3 } }).iterations(), 15);
        assert_eq!(Rule::Fgsm(Fgsm {}).iterations(), 1);
        let e = Rule::Square(Square { p_init: 0.0, ..Square::default() }).check().unwrap_err().to_string();
        assert!(e.starts_with("p_init:"), "{e}");
        let square = RuleKind::Square.default_rule();
        assert_eq!((square.n_iter(), square.iterations(), square.with_n_iter(7).iterations()), (Some(5000), 5000, 7));
        assert_eq!((RuleKind::Square.id(), RuleKind::Square.display_name()), ("square", "Square"));
    }
}
