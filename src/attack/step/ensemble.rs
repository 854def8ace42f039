//! The per-sample worst case over an ensemble of attacks (AutoAttack's idea, for multi-task
//! models): every member — a step rule with its parameters × a direction — attacks the same batch
//! within the same budget, and each sample keeps the adversarial example of the member that
//! scored highest on it. The score is the ensemble's own direction's per-sample objective: by
//! default GB-MTA's balanced relative loss increase Σ_t (L_t(x′) − L_t(x)) / L_t(x), or one task's
//! loss (`single:<task>`). Ties go to the earlier member.
//!
//! Each member runs exactly as it would alone with the ensemble's seed, budget and reduction, so
//! its examples are bit for bit those of the member's own attack; then one forward per member
//! scores its examples. Passes: the members' passes, + 1 forward per member, [+ 1 clean forward
//! when the score needs the clean losses]. A gradient-free member (Square) is what makes the worst
//! case trustworthy: a model that only masks its gradients stops the others, not it.
use super::{MAX_COUNT, RunContext, StepRule, Trace};
use crate::attack::budget::Norm;
use crate::attack::direction::{DirectionContext, DirectionSpec};
use crate::attack::oracle::PassCounts;
use crate::attack::rule::{Rule, RuleKind};
use crate::attack::step::{Apgd, Square};
use crate::attack::{AttackConfig, Checks};
use crate::error::{Error, Result};
use crate::task::TaskKind;
use tch::{Kind, Tensor};

/// One member: a step rule with its parameters and the direction it attacks along.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    #[serde(flatten)]
    pub rule: Rule,
    pub direction: DirectionSpec,
}

impl Member {
    /// `APGD GB-MTA`, `Square Single-Segm`.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.rule.kind().display_name(), self.direction.display_name())
    }
}

/// A named list of members.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ensemble {
    /// `standard` for [`Ensemble::standard`], or a name of the user's.
    pub name: String,
    pub members: Vec<Member>,
}

/// More members than anyone runs; a bound so that a typo cannot plan a run that never ends.
pub const MAX_MEMBERS: usize = 64;

/// An ensemble file as [`Ensemble::read`] reads it.
pub const ENSEMBLE_EXAMPLE: &str = r#"name = "mine"

[[member]]
rule = "apgd"
n_iter = 100
direction = "gbmta"

[[member]]
rule = "square"
n_queries = 5000
direction = "single:depth"
"#;

/// The `standard` ensemble's budgets: AutoAttack's (APGD 100 iterations, Square 5000 queries).
pub const STANDARD_N_ITER: usize = 100;
pub const STANDARD_N_QUERIES: usize = 5000;

impl Ensemble {
    /// The `standard` ensemble of a model predicting `tasks`: APGD (AutoAttack profile, one
    /// restart, `n_iter` iterations) along GB-MTA, Total and each Single-x, then Square
    /// (`n_queries` queries, p_init 0.8) along GB-MTA.
    pub fn standard(tasks: &[TaskKind], n_iter: usize, n_queries: usize) -> Ensemble {
        let apgd = Rule::Apgd(Apgd { n_iter, ..Apgd::default() });
        let mut directions = vec![DirectionSpec::Gbmta, DirectionSpec::Total];
        directions.extend(tasks.iter().map(|&t| DirectionSpec::Single(t)));
        let mut members: Vec<Member> = directions.into_iter().map(|direction| Member { rule: apgd.clone(), direction }).collect();
        members.push(Member { rule: Rule::Square(Square { n_queries, ..Square::default() }), direction: DirectionSpec::Gbmta });
        Ensemble { name: "standard".into(), members }
    }

    /// Each member as the attack it is alone: its rule and direction with `ensemble`'s budget,
    /// reduction and seed.
    pub fn member_configs(&self, ensemble: &AttackConfig) -> Vec<AttackConfig> {
        self.members.iter().map(|m| AttackConfig { rule: m.rule.clone(), direction: m.direction.clone(), ..ensemble.clone() }).collect()
    }

    /// Iterations per sample over all members (restarts included).
    pub fn iterations(&self) -> usize {
        self.members.iter().map(|m| m.rule.iterations()).sum()
    }

    /// Checks, before any work, that a model with `tasks` can run every member and compute the
    /// `score` that picks each sample's worst case.
    ///
    /// # Errors
    /// A member or score direction naming a task the model does not predict.
    pub fn check_tasks(&self, score: &DirectionSpec, tasks: &[crate::task::Task]) -> Result<()> {
        for (i, m) in self.members.iter().enumerate() {
            m.direction.build(tasks).map_err(|e| Error::context(format!("member #{} ({})", i + 1, m.display_name()), e))?;
        }
        score.build(tasks).map_err(|e| Error::parameter("score", e.to_string()))?;
        Ok(())
    }

    /// Reads an ensemble file: `name = "…"` and one `[[member]]` table per member, each a step
    /// rule with its parameters and a `direction` (the study file's `[[ensemble.member]]`).
    ///
    /// # Errors
    /// An unreadable file, invalid TOML or an unknown key (named with the file), or members that
    /// [`StepRule::check`] refuses.
    pub fn read(path: &std::path::Path) -> Result<Ensemble> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: String,
            #[serde(rename = "member", default)]
            members: Vec<Member>,
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: File = toml::from_str(&text).map_err(|e| {
            Error::data(
                path,
                format!(
                    "not an ensemble file: {}
(an example:)
{ENSEMBLE_EXAMPLE}",
                    e.to_string().trim_end()
                ),
            )
        })?;
        if file.name == "standard" {
            return Err(Error::data(path, "`standard` is the built-in ensemble; give yours a name of its own"));
        }
        let ensemble = Ensemble { name: file.name, members: file.members };
        ensemble.check().map_err(|e| Error::context(path.display().to_string(), e))?;
        Ok(ensemble)
    }

    /// The same members with `n_iter` iterations each (what benchmarks time).
    pub fn with_n_iter(&self, n_iter: usize) -> Ensemble {
        let members = self.members.iter().map(|m| Member { rule: m.rule.with_n_iter(n_iter), direction: m.direction.clone() }).collect();
        Ensemble { name: self.name.clone(), members }
    }
}

impl StepRule for Ensemble {
    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::parameter("name", "an ensemble needs a name (e.g. `standard`, or one of yours)"));
        }
        if self.members.is_empty() {
            return Err(Error::parameter("members", "an ensemble needs at least one member"));
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(Error::parameter("members", format!("{} members is more than {MAX_MEMBERS}", self.members.len())));
        }
        for (i, m) in self.members.iter().enumerate() {
            let at = format!("member #{} ({} {})", i + 1, m.rule.id(), m.direction);
            if m.rule.kind() == RuleKind::Ensemble {
                return Err(Error::context(at, Error::parameter("rule", "an ensemble member cannot itself be an ensemble")));
            }
            m.rule.check().map_err(|e| Error::context(&at, e))?;
        }
        let iterations = self.iterations();
        if iterations > MAX_COUNT {
            return Err(Error::parameter(
                "members",
                format!("{iterations} iterations in all is more than {MAX_COUNT}; nothing would finish"),
            ));
        }
        Ok(())
    }

    fn check_norm(&self, norm: Norm) -> Result<()> {
        for (i, m) in self.members.iter().enumerate() {
            m.rule
                .step()
                .check_norm(norm)
                .map_err(|e| Error::context(format!("member #{} ({} {})", i + 1, m.rule.id(), m.direction), e))?;
        }
        Ok(())
    }

    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        // The clean losses the score is relative to (GB-MTA), once for all members.
        cx.ensure_clean(false)?;
        let tasks = cx.oracle.tasks();
        let mut members = Vec::with_capacity(self.members.len());
        let mut scores = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let at = || format!("ensemble member #{} ({})", i + 1, m.display_name());
            let direction = m.direction.build(tasks).map_err(|e| Error::context(at(), e))?;
            let before = cx.oracle.counts();
            // The member alone: the same seed, budget, reduction and dataset-level clean losses.
            let dctx = DirectionContext { reduction: cx.dctx.reduction, clean: None, base: cx.dctx.base.clone() };
            let mut own = RunContext::new(cx.oracle, direction.as_ref(), cx.budget, cx.x, dctx, cx.seed);
            own.start = cx.start.as_ref().map(Tensor::shallow_clone);
            let x_adv = m.rule.step().run(&mut own).map_err(|e| Error::context(at(), e))?.detach();
            let trace = own.take_trace();
            let after = cx.oracle.counts();
            let counts = PassCounts { forward: after.forward - before.forward, backward: after.backward - before.backward };
            let checks = crate::attack::check(cx.budget, &x_adv, cx.x, trace.zero_gradient_samples);
            let score = cx.objective(&x_adv, false).map_err(|e| Error::context(at(), e))?.objective;
            scores.push(score.detach());
            members.push(MemberOutcome { x_adv, counts, checks, trace });
        }
        let winners = worst_case(&scores);
        let candidates: Vec<&Tensor> = members.iter().map(|m| &m.x_adv).collect();
        let x_adv = pick(&candidates, &winners);
        let zero = members.iter().map(|m| m.trace.zero_gradient_samples).max().unwrap_or(0);
        let winners = Vec::<i64>::try_from(winners.to_device(tch::Device::Cpu))?.into_iter().map(|w| w as usize).collect();
        cx.note_zero_gradient_samples(zero);
        cx.ensemble = Some(EnsembleOutcome { members, winners });
        Ok(x_adv)
    }
}

/// What one member did on a batch.
#[derive(Debug)]
pub struct MemberOutcome {
    /// The member's adversarial inputs (those of the member run alone).
    pub x_adv: Tensor,
    /// The member's own passes (the scoring forward not included).
    pub counts: PassCounts,
    pub checks: Checks,
    pub trace: Trace,
}

/// The members' outcomes on a batch, and which member each sample's worst case came from.
#[derive(Debug)]
pub struct EnsembleOutcome {
    pub members: Vec<MemberOutcome>,
    /// Per sample, the index of the member whose example was kept.
    pub winners: Vec<usize>,
}

/// Per sample, the index of the highest of the members' `[B]` scores; the first on ties, and a NaN
/// score never wins over a number.
pub fn worst_case(scores: &[Tensor]) -> Tensor {
    let _guard = tch::no_grad_guard();
    let mut best = scores[0].to_kind(Kind::Double).nan_to_num(f64::NEG_INFINITY, None, None);
    let mut winner = Tensor::zeros_like(&best).to_kind(Kind::Int64);
    for (i, s) in scores.iter().enumerate().skip(1) {
        let s = s.to_kind(Kind::Double).nan_to_num(f64::NEG_INFINITY, None, None);
        let better = s.gt_tensor(&best);
        best = s.where_self(&better, &best);
        winner = winner.masked_fill(&better, i as i64);
    }
    winner
}

/// Per sample `b`, `candidates[winners[b]][b]`.
pub fn pick(candidates: &[&Tensor], winners: &Tensor) -> Tensor {
    let _guard = tch::no_grad_guard();
    let mut out = candidates[0].shallow_clone();
    for (i, c) in candidates.iter().enumerate().skip(1) {
        out = super::select(&winners.eq(i as i64), c, &out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn the_worst_case_is_the_highest_score_first_on_ties_and_never_nan() {
        let scores = [t(&[1.0, 5.0, 2.0, f64::NAN, 3.0]), t(&[2.0, 5.0, 1.0, 0.5, f64::NAN]), t(&[0.0, 4.0, 2.0, -1.0, 3.0])];
        let w = Vec::<i64>::try_from(worst_case(&scores)).unwrap();
        // Sample 0: member 1 (2 > 1, 0); 1: a tie of 0 and 1 goes to 0; 2: a tie of 0 and 2 goes to
        // 0; 3: member 1 (0.5 beats −1, and NaN loses); 4: a tie of 0 and 2, NaN in between.
        assert_eq!(w, [1, 0, 0, 1, 0]);
    }

    #[test]
    fn pick_takes_each_samples_row_from_its_winner() {
        let a = Tensor::zeros([3, 2, 2, 2], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::ones([3, 2, 2, 2], (Kind::Float, tch::Device::Cpu));
        let c = &b * 2.0;
        let out = pick(&[&a, &b, &c], &Tensor::from_slice(&[2i64, 0, 1]));
        let firsts = Vec::<f32>::try_from(out.flatten(1, -1).select(1, 0)).unwrap();
        assert_eq!(firsts, [2.0, 0.0, 1.0]);
    }

    #[test]
    fn the_standard_ensemble_and_its_checks() {
        let tasks = [TaskKind::SegmentSemantic, TaskKind::DepthZbuffer];
        let e = Ensemble::standard(&tasks, 100, 5000);
        let names: Vec<String> = e.members.iter().map(Member::display_name).collect();
        assert_eq!(names, ["APGD GB-MTA", "APGD Total", "APGD Single-Segm", "APGD Single-Dept", "Square GB-MTA"]);
        assert_eq!(e.iterations(), 4 * 100 + 5000);
        assert!(e.check().is_ok());
        assert_eq!(e.with_n_iter(3).iterations(), 5 * 3);
        let err = e.check_norm(Norm::L2).unwrap_err().chain();
        assert!(err.starts_with("member #5 (square gbmta): norm:"), "{err}");
        let empty = Ensemble { name: "mine".into(), members: vec![] };
        assert!(empty.check().unwrap_err().to_string().starts_with("members:"));
        let nested =
            Ensemble { name: "n".into(), members: vec![Member { rule: Rule::Ensemble(e.clone()), direction: DirectionSpec::Gbmta }] };
        assert!(nested.check().unwrap_err().chain().contains("cannot itself be an ensemble"));
        let mut bad = e.clone();
        bad.members[1].rule = Rule::Apgd(Apgd { n_iter: 0, ..Apgd::default() });
        let err = bad.check().unwrap_err().chain();
        assert!(err.starts_with("member #2 (apgd total): n_iter:"), "{err}");
    }
}
