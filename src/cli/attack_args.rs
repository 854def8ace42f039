//! The attack flags, shared by `attack` (many directions × budgets) and `train --adversarial` (one).
//!
//! Rule parameters are optional flags named as the study file's keys (`--n-iter` is `n_iter`);
//! [`AttackArgs::rule`] turns the ones given into a [`Rule`] through the same deserialisation a
//! study file goes through, so defaults live in one place (the rule structs) and a flag the chosen
//! rule does not read is refused with the flags it does read.
use clap::Args;
use mtrobust::attack::step::{MAX_COUNT, STANDARD_N_ITER, STANDARD_N_QUERIES};
use mtrobust::attack::{ApgdProfileName, AttackConfig, DirectionSpec, Ensemble, Norm, Reduction, Rule, RuleKind, parse_eps};
use mtrobust::task::TaskKind;

/// How to attack.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// Step rule.
    #[arg(long = "attack", value_enum, default_value_t = RuleKind::Pgd)]
    pub rule: RuleKind,
    /// Direction: single:<task>, total, sign-total, gbmta, weighted:<task>=<w>,… — repeat the flag
    /// for several, or `all` for every Single-x, Total, SignTotal and GB-MTA.
    #[arg(long = "direction", default_value = "gbmta")]
    pub directions: Vec<String>,
    /// Budget(s) in grey levels of 0..255: `8`, `8/255`, or a list `1,2,4,8`.
    #[arg(long, default_value = "8", value_delimiter = ',', allow_hyphen_values = true)]
    pub eps: Vec<String>,
    /// Threat model.
    #[arg(long, value_enum, default_value_t = Norm::Linf)]
    pub norm: Norm,
    /// Single/Total/weighted: `per-sample` losses or the reference's `pooled` batch mean.
    #[arg(long, value_enum, default_value_t = Reduction::PerSample)]
    pub reduction: Reduction,
    #[command(flatten)]
    pub parameters: RuleArgs,
}

/// The step rules' parameters; each is read by some rules only.
#[derive(Debug, Clone, Default, Args, serde::Serialize)]
pub struct RuleArgs {
    /// Iterations of mifgsm, pgd, apgd and auto-sage [default: 10].
    #[arg(long, value_parser = count)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_iter: Option<usize>,
    /// mifgsm, pgd, auto-sage: step size in grey levels [default: ε / n-iter].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// pgd: start from a uniformly random point of the ball.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_start: Option<bool>,
    /// apgd: `autoattack` (Croce & Hein, per sample) or `paper` (the authors' code) [default:
    /// autoattack]. With `paper`, GB-MTA's objective is relative to the dataset's clean losses,
    /// taken as `--convention` says: the mean of per-batch means under `reference` (the authors'
    /// definition; it depends on the batch size), pooled over all pixels under `standard`.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apgd_profile: Option<ApgdProfileName>,
    /// apgd with the autoattack profile: random restarts [default: 1].
    #[arg(long, value_parser = count)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<usize>,
    /// apgd with the paper profile: restart from the best point when the step halves (their "AAR").
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apgd_revised: Option<bool>,
    /// mifgsm: momentum μ [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mi_momentum: Option<f64>,
    /// auto-sage: learning rate of the task weights [default: 10].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sage_lr: Option<f64>,
    /// auto-sage: tanh fitting factor [default: 50].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sage_fitting: Option<f64>,
    /// auto-sage: momentum γ of the blended gradient, in [0, 1) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sage_decay: Option<f64>,
    /// square: queries after the initialisation, one forward of the batch each, no gradient
    /// [default: 5000].
    #[arg(long, value_parser = count)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_queries: Option<usize>,
    /// square: fraction of the pixels the first squares cover, in (0, 1]; halved on the paper's
    /// schedule [default: 0.8].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_init: Option<f64>,
}

/// A count of iterations or restarts, at most [`MAX_COUNT`] (a typo such as 2⁶⁴−1 would run forever).
fn count(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("{e}"))?;
    if n > MAX_COUNT {
        return Err(format!("{n} is more than {MAX_COUNT}; nothing would finish"));
    }
    Ok(n)
}

/// `n_iter` → `--n-iter` (and `steps/batch_size` → `--steps/--batch-size`).
pub fn flag(parameter: &str) -> String {
    parameter.split('/').map(|p| format!("--{}", p.replace('_', "-"))).collect::<Vec<_>>().join("/")
}

impl AttackArgs {
    /// The step rule with the parameters given (the others at their defaults).
    ///
    /// # Errors
    /// A parameter the rule does not read, named with the flags it does read; a value out of range.
    pub fn rule(&self) -> anyhow::Result<Rule> {
        // Through a TOML table, as a study file is read (TOML keeps NaN, which the range checks refuse).
        let mut fields = toml::Table::try_from(&self.parameters)?;
        fields.insert("rule".into(), self.rule.id().into());
        let rule: Rule = fields.try_into().map_err(|e: toml::de::Error| self.explain(e.message()))?;
        rule.check()?;
        Ok(rule)
    }

    /// serde's "unknown field `restarts`, expected one of `n_iter`, …" in flags.
    fn explain(&self, message: &str) -> anyhow::Error {
        let rule = self.rule.id();
        let Some(rest) = message.strip_prefix("unknown field `") else {
            // A profile-specific option (`restarts` with the paper profile) explains itself.
            return anyhow::anyhow!("--attack {rule}: {message}");
        };
        let field = rest.split('`').next().unwrap_or_default();
        // The rule's fields that are flags here (not FAT's `early_stop`, which `train` sets).
        let flags = <RuleArgs as Args>::augment_args(clap::Command::new("rule"));
        let is_flag = |f: &&str| flags.get_arguments().any(|a| a.get_id().as_str() == *f);
        let read: Vec<String> = rest.split('`').skip(2).step_by(2).filter(is_flag).map(flag).collect();
        let reads = if read.is_empty() { "it has no parameters".to_string() } else { format!("it reads {}", read.join(", ")) };
        anyhow::anyhow!("{}: `--attack {rule}` does not read it ({reads}); remove it, or choose a rule that reads it", flag(field))
    }

    /// The directions given, `all` expanded for a model predicting `tasks`.
    ///
    /// # Errors
    /// A direction that does not parse.
    pub fn directions(&self, tasks: &[TaskKind]) -> anyhow::Result<Vec<DirectionSpec>> {
        let mut out = Vec::new();
        for d in &self.directions {
            if d.trim() == "all" {
                out.extend(DirectionSpec::all(tasks));
            } else {
                out.push(d.parse()?);
            }
        }
        Ok(out)
    }

    /// Every (direction, ε) combination, seeded with `seed`.
    pub fn configs(&self, tasks: &[TaskKind], seed: u64) -> anyhow::Result<Vec<AttackConfig>> {
        self.configs_of(self.rule()?, &self.directions(tasks)?, seed)
    }

    /// The ensemble `--ensemble NAME` gives (`standard`, or a file of members) for a model
    /// predicting `tasks`, one configuration per ε with `score` as its direction.
    ///
    /// # Errors
    /// A rule parameter the ensemble does not read (`standard` reads `--n-iter` and
    /// `--n-queries`; a file's members carry their own), an unreadable file, a bad score.
    pub fn ensemble_configs(&self, name: &str, score: &str, tasks: &[TaskKind], seed: u64) -> anyhow::Result<Vec<AttackConfig>> {
        let given: Vec<String> = toml::Table::try_from(&self.parameters)?.keys().map(|k| flag(k)).collect();
        let ensemble = if name == "standard" {
            let extra: Vec<&String> = given.iter().filter(|f| !matches!(f.as_str(), "--n-iter" | "--n-queries")).collect();
            if let Some(f) = extra.first() {
                anyhow::bail!(
                    "{f}: `--ensemble standard` reads --n-iter (its APGD members) and --n-queries (its Square member) only; remove it, or write the members in an ensemble file"
                );
            }
            Ensemble::standard(
                tasks,
                self.parameters.n_iter.unwrap_or(STANDARD_N_ITER),
                self.parameters.n_queries.unwrap_or(STANDARD_N_QUERIES),
            )
        } else {
            if let Some(f) = given.first() {
                anyhow::bail!("{f}: the members of --ensemble {name} carry their own parameters; set it in the file's [[member]] tables");
            }
            Ensemble::read(std::path::Path::new(name)).map_err(|e| {
                anyhow::anyhow!(
                    "--ensemble: {}
(`standard`, or a TOML file of members; see the README, \"Ensemble\")",
                    e.chain()
                )
            })?
        };
        let score: DirectionSpec = score.parse().map_err(|e| anyhow::anyhow!("--score: {e}"))?;
        self.configs_of(Rule::Ensemble(ensemble), &[score], seed)
    }

    /// Every (direction, ε) combination of `rule`, seeded with `seed`.
    fn configs_of(&self, rule: Rule, directions: &[DirectionSpec], seed: u64) -> anyhow::Result<Vec<AttackConfig>> {
        let mut out = Vec::new();
        for e in &self.eps {
            let eps = parse_eps(e)?;
            for direction in directions {
                let c = AttackConfig {
                    rule: rule.clone(),
                    direction: direction.clone(),
                    norm: self.norm,
                    eps,
                    reduction: self.reduction,
                    seed,
                };
                c.check()?;
                out.push(c);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use mtrobust::attack::{Apgd, ApgdProfile, Pgd, Square};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        attack: AttackArgs,
    }

    fn parse(args: &[&str]) -> AttackArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap().attack
    }

    #[test]
    fn flags_become_the_rule_the_study_file_would_give() {
        assert_eq!(parse(&[]).rule().unwrap(), Rule::Pgd(Pgd::default()));
        assert_eq!(
            parse(&["--n-iter", "3", "--random-start"]).rule().unwrap(),
            Rule::Pgd(Pgd { n_iter: 3, random_start: true, ..Pgd::default() })
        );
        assert_eq!(
            parse(&["--attack", "apgd", "--apgd-profile", "paper", "--apgd-revised"]).rule().unwrap(),
            Rule::Apgd(Apgd { n_iter: 10, profile: ApgdProfile::Paper { revised: true } })
        );
        assert_eq!(parse(&["--attack", "square"]).rule().unwrap(), Rule::Square(Square::default()));
        assert_eq!(
            parse(&["--attack", "square", "--n-queries", "20", "--p-init", "0.3"]).rule().unwrap(),
            Rule::Square(Square { n_queries: 20, p_init: 0.3 })
        );
    }

    #[test]
    fn a_flag_the_rule_does_not_read_names_the_flags_it_does() {
        let e = parse(&["--attack", "pgd", "--restarts", "2"]).rule().unwrap_err().to_string();
        assert!(e.starts_with("--restarts: `--attack pgd` does not read it (it reads --n-iter, --step-size, --random-start);"), "{e}");
        let e = parse(&["--attack", "fgsm", "--n-iter", "2"]).rule().unwrap_err().to_string();
        assert!(e.starts_with("--n-iter: `--attack fgsm` does not read it (it has no parameters)"), "{e}");
        let e = parse(&["--attack", "apgd", "--apgd-profile", "paper", "--restarts", "2"]).rule().unwrap_err().to_string();
        assert!(e.contains("restarts") && e.contains("autoattack"), "{e}");
        let e = parse(&["--attack", "auto-sage", "--sage-decay", "1.5"]).rule().unwrap_err().to_string();
        assert!(e.contains("sage_decay"), "{e}");
        let e = parse(&["--attack", "pgd", "--n-queries", "3"]).rule().unwrap_err().to_string();
        assert!(e.starts_with("--n-queries: `--attack pgd` does not read it (it reads --n-iter, --step-size, --random-start);"), "{e}");
        let e = parse(&["--attack", "square", "--n-iter", "3"]).rule().unwrap_err().to_string();
        assert!(e.starts_with("--n-iter: `--attack square` does not read it (it reads --n-queries, --p-init);"), "{e}");
        let e = parse(&["--attack", "apgd", "--n-iter", "1000", "--restarts", "1001"]).rule().unwrap_err().to_string();
        assert!(e.starts_with("restarts: 1000 iterations × 1001 restarts is more than 1000000"), "{e}");
        assert!(parse(&["--attack", "apgd", "--n-iter", "1000", "--restarts", "1000"]).rule().is_ok());
        let e = parse(&["--attack", "square", "--p-init", "1.5"]).rule().unwrap_err().to_string();
        assert!(e.starts_with("p_init:"), "{e}");
        // L2 is refused when the configurations are made, before any work.
        let e = parse(&["--attack", "square", "--norm", "l2"]).configs(&[TaskKind::DepthZbuffer], 0).unwrap_err().to_string();
        assert!(e.starts_with("norm:") && e.contains("L∞"), "{e}");
    }
}
