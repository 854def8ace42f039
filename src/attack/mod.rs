//! Attacks = a **step rule** (FGSM, MI-FGSM, PGD, APGD, Auto-SAGE) × a **direction** (Single,
//! Total, SignTotal, GB-MTA, weighted) × a **budget** (L∞ or L2 ball of ε grey levels, clipped to
//! the valid pixel range). Every rule is written once and works with every direction.
//!
//! Conventions (docs/REFERENCE.md §4.1): the model runs in eval mode (batch-norm statistics never move during
//! an attack); only input gradients are computed; the adversarial batch is checked after every
//! run (largest perturbation, pixels outside the valid range, NaNs, samples with a zero gradient).
//! Runs are seeded: the same seed gives the same adversarial examples, bit for bit on CPU.
//!
//! ```
//! use mtrobust::attack::{Attack, AttackConfig, BatchContext, DirectionSpec, StepKind};
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
//! let attack = Attack::new(AttackConfig { step: StepKind::Pgd, direction: DirectionSpec::Gbmta, eps: 8.0, n_iter: 3, ..Default::default() })?;
//! let outcome = attack.run(&model, &tasks, &batch, BatchContext::at(0))?;
//! assert!(outcome.checks.passed());
//! assert!(outcome.checks.max_perturbation <= 8.0 + 1e-4);
//! assert_eq!(outcome.counts.backward, 3); // one backward per iteration, for both tasks at once
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod budget;
pub mod direction;
pub mod oracle;
pub mod step;

pub use budget::{Budget, Norm};
pub use direction::{Direction, DirectionContext, DirectionSpec, Reduction};
pub use oracle::{Oracle, PassCounts};
pub use step::{ApgdProfile, StepRule, Trace};

use crate::data::Batch;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::task::{Task, TaskMap};
use tch::{Kind, Tensor};

/// Which step rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// One step of size ε.
    Fgsm,
    /// Momentum iterative FGSM.
    Mifgsm,
    /// Projected gradient ascent (I-FGSM), the paper's "PGD".
    Pgd,
    /// Auto-PGD, the paper's "APGD/AutoAttack".
    Apgd,
    /// Auto-SAGE with learned per-task weights.
    AutoSage,
}

impl StepKind {
    /// The stable id.
    pub fn id(self) -> &'static str {
        match self {
            StepKind::Fgsm => "fgsm",
            StepKind::Mifgsm => "mifgsm",
            StepKind::Pgd => "pgd",
            StepKind::Apgd => "apgd",
            StepKind::AutoSage => "auto-sage",
        }
    }
}

/// Everything that defines an attack. Defaults follow the paper (N = 10 steps of ε/N, no random
/// start for PGD) except APGD, which defaults to Croce & Hein's per-sample algorithm.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackConfig {
    pub step: StepKind,
    pub direction: DirectionSpec,
    pub norm: Norm,
    /// Budget in grey levels of 0..255 (8 = 8/255).
    pub eps: f64,
    /// Iterations of iterative rules.
    pub n_iter: usize,
    /// Step size in grey levels for PGD, MI-FGSM and Auto-SAGE (default ε/N).
    pub step_size: Option<f64>,
    /// PGD: start at a uniformly random point of the ball.
    pub random_start: bool,
    /// APGD (autoattack profile): number of random restarts.
    pub restarts: usize,
    pub apgd_profile: ApgdProfile,
    /// APGD (paper profile): restart from the best point when the step halves ("AAR").
    pub apgd_revised: bool,
    /// MI-FGSM momentum μ.
    pub momentum: f64,
    /// Auto-SAGE fitting factor.
    pub sage_fitting: f64,
    /// Auto-SAGE learning rate of the task weights.
    pub sage_lr: f64,
    /// Auto-SAGE momentum γ of the blended gradient.
    pub sage_decay: f64,
    /// How Single/Total/weighted reduce task losses over the batch.
    pub reduction: Reduction,
    /// PGD: friendly early stopping (adversarial training).
    #[serde(default)]
    pub early_stop: Option<step::EarlyStop>,
    pub seed: u64,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            step: StepKind::Pgd,
            direction: DirectionSpec::Gbmta,
            norm: Norm::Linf,
            eps: 8.0,
            n_iter: 10,
            step_size: None,
            random_start: false,
            restarts: 1,
            apgd_profile: ApgdProfile::Autoattack,
            apgd_revised: false,
            momentum: 1.0,
            sage_fitting: 50.0,
            sage_lr: 10.0,
            sage_decay: 0.0,
            reduction: Reduction::PerSample,
            early_stop: None,
            seed: 0,
        }
    }
}

impl AttackConfig {
    /// A short label such as `pgd/gbmta/linf/eps=8`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}/eps={}", self.step.id(), self.direction, norm_id(self.norm), fmt_eps(self.eps))
    }

    /// Checks ranges, and that every option given is one the chosen rule reads.
    ///
    /// # Errors
    /// Zero iterations, budgets or step sizes that are not positive, zero restarts, and
    /// hyper-parameters that are NaN, infinite or out of range (a NaN spreads into the update and
    /// leaves the inputs unmoved, which would look like a robust model); an option set away from
    /// its default for a rule that ignores it (see [`AttackConfig::check_ignored`]).
    pub fn check(&self) -> Result<()> {
        if !self.eps.is_finite() {
            return Err(Error::config("--eps", format!("{} is not a budget; give grey levels, e.g. 8 or 8/255", self.eps)));
        }
        if self.eps <= 0.0 {
            return Err(Error::config("--eps", format!("ε must be > 0 (got {}); give grey levels, e.g. 8 or 8/255", self.eps)));
        }
        if self.step != StepKind::Fgsm && self.n_iter == 0 {
            return Err(Error::config("--n-iter", "iterative attacks need at least one iteration"));
        }
        if let Some(s) = self.step_size
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::config("--step-size", format!("{s} must be a positive number of grey levels")));
        }
        if self.early_stop.is_some() && self.step != StepKind::Pgd {
            return Err(Error::config("--fat-tau", "friendly early stopping applies to PGD (`--attack pgd`)"));
        }
        if self.restarts == 0 {
            return Err(Error::config("--restarts", "at least one run is needed (1 = no restart)"));
        }
        if self.step == StepKind::Mifgsm && !(self.momentum.is_finite() && self.momentum >= 0.0) {
            return Err(Error::config("--mi-momentum", format!("{} must be a finite number ≥ 0 (1 in the MI-FGSM paper)", self.momentum)));
        }
        if self.step == StepKind::AutoSage {
            if !(self.sage_lr.is_finite() && self.sage_lr > 0.0) {
                return Err(Error::config("--sage-lr", format!("{} must be a finite number > 0 (default 10)", self.sage_lr)));
            }
            if !(self.sage_fitting.is_finite() && self.sage_fitting > 0.0) {
                return Err(Error::config("--sage-fitting", format!("{} must be a finite number > 0 (default 50)", self.sage_fitting)));
            }
            if !(0.0..1.0).contains(&self.sage_decay) {
                return Err(Error::config("sage_decay", format!("{} must be in [0, 1)", self.sage_decay)));
            }
        }
        // A negative threshold is allowed: every sample then counts as adversarial from the start.
        if let Some(es) = &self.early_stop
            && !es.threshold.is_finite()
        {
            return Err(Error::config(
                "--fat-threshold",
                format!("{} must be a finite relative loss increase (default 0.5)", es.threshold),
            ));
        }
        self.check_ignored()
    }

    /// Rejects rule-specific options that the chosen rule would silently ignore (e.g. `--restarts`
    /// with `pgd`). "Given" means "different from [`AttackConfig::default`]", which is also the
    /// CLI's and the study file's default, so plain commands keep working.
    ///
    /// # Errors
    /// The first such option, with the rules that use it.
    pub fn check_ignored(&self) -> Result<()> {
        let d = AttackConfig::default();
        let apgd = self.step == StepKind::Apgd;
        let sage = self.step == StepKind::AutoSage;
        // (option, given, read by the chosen rule, the rules that read it)
        let options = [
            (
                "--step-size",
                self.step_size.is_some(),
                matches!(self.step, StepKind::Pgd | StepKind::Mifgsm | StepKind::AutoSage),
                "pgd, mifgsm and auto-sage (fgsm steps by ε; apgd sets its own step size)",
            ),
            ("--random-start", self.random_start, self.step == StepKind::Pgd, "pgd (apgd's autoattack profile always starts at random)"),
            (
                "--restarts",
                self.restarts != d.restarts,
                apgd && self.apgd_profile == ApgdProfile::Autoattack,
                "apgd with --apgd-profile autoattack",
            ),
            ("--apgd-profile", self.apgd_profile != d.apgd_profile, apgd, "apgd"),
            ("--apgd-revised", self.apgd_revised, apgd && self.apgd_profile == ApgdProfile::Paper, "apgd with --apgd-profile paper"),
            ("--mi-momentum", self.momentum != d.momentum, self.step == StepKind::Mifgsm, "mifgsm"),
            ("--sage-lr", self.sage_lr != d.sage_lr, sage, "auto-sage"),
            ("--sage-fitting", self.sage_fitting != d.sage_fitting, sage, "auto-sage"),
            ("sage_decay", self.sage_decay != d.sage_decay, sage, "auto-sage"),
        ];
        let rule = match (self.step, self.apgd_profile) {
            (StepKind::Apgd, p) => format!("apgd --apgd-profile {}", p.id()),
            (s, _) => s.id().to_string(),
        };
        match options.iter().find(|(_, given, read, _)| *given && !*read) {
            Some((name, _, _, users)) => Err(Error::config(
                *name,
                format!("`--attack {rule}` ignores it; it is read by {users} only. Remove it, or choose a rule that reads it"),
            )),
            None => Ok(()),
        }
    }

    fn rule(&self, budget: &Budget) -> Box<dyn StepRule> {
        let to_input = |pixels: f64| pixels * budget.eps / budget.eps_pixels.max(f64::MIN_POSITIVE);
        let alpha = match self.step_size {
            Some(s) => to_input(s),
            None => budget.eps / self.n_iter.max(1) as f64,
        };
        match self.step {
            StepKind::Fgsm => Box::new(step::Fgsm),
            StepKind::Mifgsm => Box::new(step::MiFgsm { n_iter: self.n_iter, alpha, momentum: self.momentum }),
            StepKind::Pgd => {
                Box::new(step::Pgd { n_iter: self.n_iter, alpha, random_start: self.random_start, early_stop: self.early_stop })
            }
            StepKind::Apgd => Box::new(step::Apgd {
                n_iter: self.n_iter,
                profile: self.apgd_profile,
                restarts: self.restarts,
                revised: self.apgd_revised,
            }),
            StepKind::AutoSage => Box::new(step::AutoSage {
                n_iter: self.n_iter,
                alpha,
                fitting: self.sage_fitting,
                lr: self.sage_lr,
                decay: self.sage_decay,
            }),
        }
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
    let bad = || Error::config("--eps", format!("`{t}` is not a budget; write grey levels like 8, 2.5 or 8/255"));
    if t.starts_with('-') {
        return Err(Error::config(
            "--eps",
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
        return Err(Error::config("--eps", format!("`{t}`: ε must be > 0; give grey levels like 8, 2.5 or 8/255")));
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
}

impl BatchContext<'_> {
    /// Batch `index`, without dataset-level clean losses.
    pub fn at(index: u64) -> Self {
        BatchContext { index, clean_losses: None }
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
    /// Tasks that do not match the model, a direction naming a missing task, or a bad budget.
    pub fn run(&self, model: &Model, tasks: &[Task], batch: &Batch, at: BatchContext) -> Result<AttackOutcome> {
        let oracle = Oracle::new(model, tasks, &batch.targets)?;
        let direction = self.config.direction.build(tasks)?;
        let x = batch.x.to_kind(model.kind()).to_device(model.device());
        let budget = Budget::new(self.config.norm, self.config.eps, &model.input, x.kind(), x.device())?;
        let dctx = DirectionContext { reduction: self.config.reduction, clean: None, base: at.clean_losses.cloned() };
        let seed = crate::rng::derive_seed(self.config.seed, &[at.index]);
        let rule = self.config.rule(&budget);
        let mut cx = step::RunContext::new(&oracle, direction.as_ref(), &budget, &x, dctx, seed);
        let x_adv = rule.run(&mut cx).detach();
        let trace = cx.take_trace();
        let clean_losses = cx.dctx.clean.take();
        let checks = check(&budget, &x_adv, &x, trace.zero_gradient_samples);
        Ok(AttackOutcome { x_adv, counts: oracle.counts(), checks, trace, clean_losses })
    }
}

fn check(budget: &Budget, x_adv: &Tensor, x: &Tensor, zero_gradient_samples: usize) -> Checks {
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
