//! Attacks = a **step rule** (FGSM, MI-FGSM, PGD, APGD, Auto-SAGE, Square) × a **direction** (Single,
//! Total, SignTotal, GB-MTA, weighted) × a **budget** (L∞ or L2 ball of ε grey levels, clipped to
//! the valid pixel range). Every rule is written once and works with every direction.
//!
//! Conventions (docs/REFERENCE.md §4.1): the model runs in eval mode (batch-norm statistics never move during
//! an attack); only input gradients are computed; the adversarial batch is checked after every
//! run (largest perturbation, pixels outside the valid range, NaNs, samples with a zero gradient).
//! Runs are seeded: the same seed gives the same adversarial examples, bit for bit on CPU.
//!
//! ```
//! use mtrobust::attack::{Attack, AttackConfig, BatchContext, DirectionSpec, Pgd, Rule};
//! use mtrobust::data::{Batch, InputSpace, Target};
//! use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
//! use mtrobust::task::{Task, TaskKind, TaskMap, parse_tasks};
//! use tch::{Device, Kind, Tensor};
//!
//! let specs = parse_tasks("segm:4,depth")?;
//! let tasks: Vec<Task> = specs.iter().map(|s| Task::new(*s)).collect();
//! let head = HeadConfig { width: 8, rates: vec![1], dropout: 0.0 };
//! let config = ModelConfig { backbone: BackboneKind::Small, tasks: specs, layout: layout_at(2, 5, 0)?, head };
//! let model = Model::new(config, InputSpace::reference(), Device::Cpu, 0)?;
//!
//! // Two 32² images inside the model's valid pixel range, labelled for both tasks.
//! let opts = (Kind::Float, Device::Cpu);
//! let (lo, hi) = model.input.bound_tensors(Kind::Float, Device::Cpu);
//! let x = &lo + (&hi - &lo) * Tensor::rand([2, 3, 32, 32], opts);
//! let all = Tensor::ones([2, 1, 32, 32], opts);
//! let mut targets = TaskMap::new();
//! targets.insert(TaskKind::SegmentSemantic, Target { value: Tensor::randint(4, [2, 1, 32, 32], opts), valid: all.copy() });
//! targets.insert(TaskKind::DepthZbuffer, Target { value: &all * 2.0, valid: all });
//! let batch = Batch { x, targets, names: vec!["a".into(), "b".into()] };
//!
//! // PGD-3 along GB-MTA's direction in an L∞ ball of 8 grey levels.
//! let rule = Rule::Pgd(Pgd { n_iter: 3, ..Pgd::default() });
//! let attack = Attack::new(AttackConfig { rule, direction: DirectionSpec::Gbmta, eps: 8.0, ..Default::default() })?;
//! let outcome = attack.run(&model, &tasks, &batch, BatchContext::at(0))?;
//! assert!(outcome.checks.passed());
//! assert!(outcome.checks.max_perturbation <= 8.0 + 1e-4);
//! assert_eq!(outcome.counts.backward, 3); // one backward per iteration, for both tasks at once
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod budget;
pub mod direction;
pub mod oracle;
pub mod rule;
pub mod step;

pub use budget::{Budget, Norm};
pub use direction::{Direction, DirectionContext, DirectionSpec, Reduction};
pub use oracle::{Oracle, PassCounts};
pub use rule::{Rule, RuleKind};
pub use step::{
    Apgd, ApgdProfile, ApgdProfileName, AutoSage, EarlyStop, Ensemble, EnsembleOutcome, Fgsm, Member, MemberOutcome, MiFgsm, Pgd, Square,
    StepRule, Trace,
};

use crate::data::Batch;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::task::{Task, TaskMap};
use tch::{Kind, Tensor};

/// Everything that defines an attack: the step rule with its parameters, the direction, the
/// budget, how linear directions reduce over the batch, and the seed. Defaults follow the paper
/// (PGD, N = 10 steps of ε/N, no random start, GB-MTA, L∞, ε = 8).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttackConfig {
    /// The step rule; its fields sit beside the others in the stored form (`"rule": "pgd"`, …).
    #[serde(flatten)]
    pub rule: Rule,
    pub direction: DirectionSpec,
    pub norm: Norm,
    /// Budget in grey levels of 0..255 (8 = 8/255).
    pub eps: f64,
    /// How Single/Total/weighted reduce task losses over the batch.
    pub reduction: Reduction,
    pub seed: u64,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            rule: Rule::default(),
            direction: DirectionSpec::Gbmta,
            norm: Norm::Linf,
            eps: 8.0,
            reduction: Reduction::PerSample,
            seed: 0,
        }
    }
}

impl AttackConfig {
    /// A short label such as `pgd/gbmta/linf/eps=8` (`ensemble:standard/gbmta/…` for an
    /// ensemble, whose direction is its score).
    pub fn label(&self) -> String {
        format!("{}/{}/{}/eps={}", self.rule.key(), self.direction, norm_id(self.norm), fmt_eps(self.eps))
    }

    /// Checks ranges: the budget, the rule's parameters, and that the rule implements the norm.
    ///
    /// # Errors
    /// A budget that is not positive and finite, a rule parameter out of range (a NaN spreads
    /// into the update and leaves the inputs unmoved, which would look like a robust model), or a
    /// norm the rule does not implement (Square with L2). The error names the parameter as study
    /// files spell it (`eps`, `n_iter`, `norm`).
    pub fn check(&self) -> Result<()> {
        if !self.eps.is_finite() {
            return Err(Error::parameter("eps", format!("{} is not a budget; give grey levels, e.g. 8 or 8/255", self.eps)));
        }
        if self.eps <= 0.0 {
            return Err(Error::parameter("eps", format!("ε must be > 0 (got {}); give grey levels, e.g. 8 or 8/255", self.eps)));
        }
        if self.norm == Norm::Linf && self.eps > 255.0 {
            return Err(Error::parameter("eps", format!("{} grey levels is more than the whole pixel range (255)", self.eps)));
        }
        self.rule.check()?;
        self.rule.step().check_norm(self.norm)
    }
}

/// `linf` / `l2`.
pub fn norm_id(n: Norm) -> &'static str {
    match n {
        Norm::Linf => "linf",
        Norm::L2 => "l2",
    }
}

/// ε without trailing zeros (`8`, `0.5`).
pub fn fmt_eps(eps: f64) -> String {
    let s = format!("{eps:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses `8`, `8.5` or `8/255` as grey levels (`k/255` means k grey levels).
///
/// # Errors
/// Anything else.
pub fn parse_eps(text: &str) -> Result<f64> {
    let t = text.trim();
    let bad = || Error::parameter("eps", format!("`{t}` is not a budget; write grey levels like 8, 2.5 or 8/255"));
    if t.starts_with('-') {
        return Err(Error::parameter(
            "eps",
            format!("`{t}` is negative; ε is the size of the perturbation in grey levels and must be > 0, e.g. 8 or 8/255"),
        ));
    }
    let value = match t.split_once('/') {
        Some((k, d)) => {
            let k: f64 = k.trim().parse().map_err(|_| bad())?;
            let d: f64 = d.trim().parse().map_err(|_| bad())?;
            if d <= 0.0 {
                return Err(bad());
            }
            k * 255.0 / d
        }
        None => t.parse().map_err(|_| bad())?,
    };
    if !value.is_finite() {
        return Err(bad());
    }
    if value <= 0.0 {
        return Err(Error::parameter("eps", format!("`{t}`: ε must be > 0; give grey levels like 8, 2.5 or 8/255")));
    }
    Ok(value)
}

/// Sanity checks after an attack.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checks {
    /// Largest perturbation of any sample, in the budget's norm and grey levels.
    pub max_perturbation: f64,
    /// True when every sample is inside the budget (with 1e-4 grey-level tolerance).
    pub within_budget: bool,
    /// Input values outside the valid pixel range.
    pub out_of_range: i64,
    /// NaN or infinite input values.
    pub non_finite: i64,
    /// Samples whose first gradient was exactly zero (the attack cannot move them).
    pub zero_gradient_samples: usize,
    /// Samples attacked (absent from reports written before this field existed).
    #[serde(default)]
    pub samples: usize,
    /// Samples the attack left exactly where they were.
    #[serde(default)]
    pub unmoved_samples: usize,
}

impl Checks {
    /// True when the adversarial batch is valid (budget, range, finite) and the attack moved at
    /// least one sample.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// Why the checks failed, one reason per failed check (empty when they passed).
    ///
    /// An attack that leaves every sample unmoved did not run (a NaN step, a zero gradient
    /// everywhere); its "no change" must not read as a robust model.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_perturbation.is_nan() {
            out.push("the perturbation size is NaN".to_string());
        } else if !self.within_budget {
            out.push(format!("the largest perturbation, {} grey levels, exceeds the budget", self.max_perturbation));
        }
        if self.out_of_range > 0 {
            out.push(format!("{} input value(s) lie outside the valid pixel range", self.out_of_range));
        }
        if self.non_finite > 0 {
            out.push(format!("{} input value(s) are NaN or infinite", self.non_finite));
        }
        if self.samples > 0 && self.unmoved_samples == self.samples {
            out.push(format!("the attack left all {} sample(s) unperturbed, so the metrics say nothing about robustness", self.samples));
        }
        out
    }
}

/// The result of attacking one batch.
#[derive(Debug)]
pub struct AttackOutcome {
    /// The adversarial inputs.
    pub x_adv: Tensor,
    pub counts: PassCounts,
    pub checks: Checks,
    pub trace: Trace,
    /// `[B]` clean per-sample losses per task when the attack computed them.
    pub clean_losses: Option<TaskMap<Tensor>>,
    /// An ensemble's members and which one each sample's example came from.
    pub ensemble: Option<EnsembleOutcome>,
}

/// Where a batch sits in its run, as far as an attack cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchContext<'a> {
    /// The batch's position in the run: selects its random streams (random starts, restarts).
    pub index: u64,
    /// Dataset-level clean `mean` losses per task: the reference's `criterionBase`, which the
    /// paper APGD profile's GB-MTA objective is relative to (docs/REFERENCE.md §7 item 9). Batch
    /// clean means when absent.
    pub clean_losses: Option<&'a TaskMap<f64>>,
    /// A start point for the rules that start away from the clean input (APGD's autoattack
    /// profile: AutoAttack's `x_init`), instead of their random start; projected onto the budget.
    pub start: Option<&'a Tensor>,
}

impl BatchContext<'_> {
    /// Batch `index`, without dataset-level clean losses or a start point.
    pub fn at(index: u64) -> Self {
        BatchContext { index, clean_losses: None, start: None }
    }
}

/// A configured attack.
#[derive(Debug, Clone)]
pub struct Attack {
    pub config: AttackConfig,
}

impl Attack {
    /// Checks the configuration.
    ///
    /// # Errors
    /// See [`AttackConfig::check`].
    pub fn new(config: AttackConfig) -> Result<Self> {
        config.check()?;
        Ok(Attack { config })
    }

    /// Attacks `batch`, placed in its run by `at` (random streams, dataset-level clean losses).
    ///
    /// # Errors
    /// Tasks that do not match the model, a direction naming a missing task, a bad budget, or
    /// what the model fails with (out of memory: see [`Error::is_out_of_memory`]).
    pub fn run(&self, model: &Model, tasks: &[Task], batch: &Batch, at: BatchContext) -> Result<AttackOutcome> {
        let oracle = Oracle::new(model, tasks, &batch.targets)?;
        let direction = self.config.direction.build(tasks)?;
        let x = batch.x.to_kind(model.kind()).to_device(model.device());
        let budget = Budget::new(self.config.norm, self.config.eps, &model.input, x.kind(), x.device())?;
        let dctx = DirectionContext { reduction: self.config.reduction, clean: None, base: at.clean_losses.cloned() };
        let seed = crate::rng::derive_seed(self.config.seed, &[at.index]);
        let mut cx = step::RunContext::new(&oracle, direction.as_ref(), &budget, &x, dctx, seed);
        cx.start = at.start.map(Tensor::shallow_clone);
        let x_adv = self.config.rule.step().run(&mut cx)?.detach();
        let trace = cx.take_trace();
        let clean_losses = cx.dctx.clean.take();
        let ensemble = cx.ensemble.take();
        let checks = check(&budget, &x_adv, &x, trace.zero_gradient_samples);
        Ok(AttackOutcome { x_adv, counts: oracle.counts(), checks, trace, clean_losses, ensemble })
    }
}

pub(crate) fn check(budget: &Budget, x_adv: &Tensor, x: &Tensor, zero_gradient_samples: usize) -> Checks {
    let _guard = tch::no_grad_guard();
    let per_sample = budget.perturbation(x_adv, x);
    let max_perturbation = f64::try_from(per_sample.max()).unwrap_or(f64::NAN);
    let non_finite = i64::try_from(x_adv.isfinite().logical_not().sum(Kind::Int64)).unwrap_or(i64::MAX);
    let unmoved = i64::try_from(per_sample.eq(0.0).sum(Kind::Int64)).unwrap_or(0);
    Checks {
        samples: x.size()[0] as usize,
        unmoved_samples: unmoved as usize,
        max_perturbation,
        within_budget: max_perturbation <= budget.eps_pixels + 1e-4,
        out_of_range: budget.out_of_range(x_adv),
        non_finite,
        zero_gradient_samples,
    }
}

#[cfg(test)]
mod tests;
