//! Step rules: how successive directions (or, for Square, random proposals scored by the
//! direction's objective) become the adversarial input. Each rule is written
//! once and works with every direction; it projects onto the budget after every step. A rule's
//! struct is also its parameters, as users write them (study files, the command line): step
//! sizes in grey levels, counts; [`super::Rule`] is the sum of them.
mod apgd;
mod auto_sage;
mod early_stop;
mod ensemble;
mod fgsm;
mod mifgsm;
mod pgd;
mod square;

pub use apgd::{Apgd, ApgdProfile, ApgdProfileName, autoattack_checkpoints, paper_checkpoints};
pub use auto_sage::AutoSage;
pub use early_stop::{EarlyStop, EarlyStopper};
pub use ensemble::{
    ENSEMBLE_EXAMPLE, Ensemble, EnsembleOutcome, MAX_MEMBERS, Member, MemberOutcome, STANDARD_N_ITER, STANDARD_N_QUERIES, pick, worst_case,
};
pub use fgsm::Fgsm;
pub use mifgsm::MiFgsm;
pub use pgd::Pgd;
pub use square::{QueryFn, REDRAWS, Square, WatchFn, p_selection, square_side};

use super::budget::{Budget, Norm};
use super::direction::{self, Direction, DirectionContext, Probe};
use super::oracle::Oracle;
use crate::error::{Error, Result};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// A step rule.
pub trait StepRule {
    /// Runs the attack from the clean input `cx.x`; returns the adversarial input.
    ///
    /// # Errors
    /// What the model fails with (out of memory, a module's own failure).
    fn run(&self, cx: &mut RunContext) -> Result<Tensor>;

    /// Checks the parameters' ranges.
    ///
    /// # Errors
    /// The first parameter out of range, by its name (`n_iter`).
    fn check(&self) -> Result<()>;

    /// Checks that the rule is implemented for `norm` (every rule but Square's L∞-only search is).
    ///
    /// # Errors
    /// A norm the rule does not implement, as a `norm` parameter error.
    fn check_norm(&self, _norm: Norm) -> Result<()> {
        Ok(())
    }
}

/// Checks an iteration count.
pub(crate) fn check_n_iter(n_iter: usize) -> Result<()> {
    if n_iter == 0 {
        return Err(Error::parameter("n_iter", "iterative attacks need at least one iteration"));
    }
    if n_iter > MAX_COUNT {
        return Err(Error::parameter("n_iter", format!("{n_iter} is more than {MAX_COUNT} iterations; nothing would finish")));
    }
    Ok(())
}

/// The largest iteration, restart or query count accepted: far beyond any published attack, and
/// small enough that a typo such as 2⁶⁴−1 is refused instead of running forever.
pub const MAX_COUNT: usize = 1_000_000;

/// Checks an optional step size in grey levels.
pub(crate) fn check_step_size(step_size: Option<f64>) -> Result<()> {
    match step_size {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            Err(Error::parameter("step_size", format!("{s} must be a positive number of grey levels")))
        }
        _ => Ok(()),
    }
}

/// Diagnostics collected while an attack runs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Trace {
    /// Samples whose first input gradient was exactly zero (AutoAttack's sanity check).
    pub zero_gradient_samples: usize,
    /// Batch mean of the per-sample objective at every evaluated point, in order.
    pub objective: Vec<f64>,
}

/// What a step rule works with.
pub struct RunContext<'a> {
    pub oracle: &'a Oracle<'a>,
    pub direction: &'a dyn Direction,
    pub budget: &'a Budget,
    /// The clean input.
    pub x: &'a Tensor,
    pub dctx: DirectionContext,
    /// Seed of this batch's random streams.
    pub seed: u64,
    /// A given start point (AutoAttack's `x_init`) for the rules that start away from the clean
    /// input (APGD), instead of their random start.
    pub start: Option<Tensor>,
    /// The batch mean objective of every evaluated point, left on the device until the run ends
    /// (no host synchronisation per iteration).
    objective_means: Vec<Tensor>,
    /// How many samples had an all-zero first gradient (a device scalar), once one was seen.
    zero_gradient: Option<Tensor>,
    /// What each member of an ensemble did (set by [`Ensemble`]'s run only).
    pub ensemble: Option<EnsembleOutcome>,
}

impl<'a> RunContext<'a> {
    /// A context for one batch.
    pub fn new(
        oracle: &'a Oracle<'a>,
        direction: &'a dyn Direction,
        budget: &'a Budget,
        x: &'a Tensor,
        dctx: DirectionContext,
        seed: u64,
    ) -> Self {
        RunContext {
            oracle,
            direction,
            budget,
            x,
            dctx,
            seed,
            start: None,
            objective_means: Vec::new(),
            zero_gradient: None,
            ensemble: None,
        }
    }

    /// The losses and objectives at `point`, no autograd (`at_clean`: the point is the clean input).
    ///
    /// # Errors
    /// What the model's forward fails with.
    pub fn objective(&mut self, point: &Tensor, at_clean: bool) -> Result<Probe> {
        let p = direction::objective(self.direction, self.oracle, point, &mut self.dctx, at_clean)?;
        self.record(&p, None);
        Ok(p)
    }

    /// [`RunContext::objective`] plus the direction's gradient at `point`.
    ///
    /// # Errors
    /// What the model's forward or backward fails with.
    pub fn gradient(&mut self, point: &Tensor, at_clean: bool) -> Result<(Probe, Tensor)> {
        let (p, g) = direction::gradient(self.direction, self.oracle, point, &mut self.dctx, at_clean)?;
        self.record(&p, Some(&g));
        Ok((p, g))
    }

    /// [`RunContext::objective`] plus one gradient per term of the direction at `point`.
    ///
    /// # Errors
    /// What the model's forward or backward fails with.
    pub fn components(&mut self, point: &Tensor, at_clean: bool) -> Result<(Probe, Vec<Tensor>)> {
        let (p, d) = direction::components(self.direction, self.oracle, point, &mut self.dctx, at_clean)?;
        self.record(&p, d.first());
        Ok((p, d))
    }

    /// [`RunContext::gradient`] when `with_gradient`, else [`RunContext::objective`]: the last
    /// point of a run needs no gradient, since nothing steps from it.
    ///
    /// # Errors
    /// What the model's forward or backward fails with.
    pub fn probe(&mut self, point: &Tensor, with_gradient: bool) -> Result<(Probe, Option<Tensor>)> {
        if with_gradient {
            let (p, g) = self.gradient(point, false)?;
            Ok((p, Some(g)))
        } else {
            Ok((self.objective(point, false)?, None))
        }
    }

    /// A step size in input units: `step_size` grey levels when given, else ε/`n_iter` (the
    /// paper's default).
    pub fn step_size(&self, step_size: Option<f64>, n_iter: usize) -> f64 {
        let budget = self.budget;
        match step_size {
            Some(s) => s * budget.eps / budget.eps_pixels.max(f64::MIN_POSITIVE),
            None => budget.eps / n_iter.max(1) as f64,
        }
    }

    /// Traces the objective, and the zero-gradient samples of the first gradient seen; both stay
    /// on the device until [`RunContext::take_trace`].
    fn record(&mut self, p: &Probe, first_gradient: Option<&Tensor>) {
        let _guard = tch::no_grad_guard();
        if self.zero_gradient.is_none()
            && let Some(g) = first_gradient
        {
            self.zero_gradient = Some(g.abs().flatten(1, -1).amax([1i64].as_slice(), false).eq(0.0).sum(Kind::Int64));
        }
        self.objective_means.push(p.objective.mean(Kind::Double));
    }

    /// Sets the zero-gradient count of the trace (an ensemble reports its members' largest).
    fn note_zero_gradient_samples(&mut self, n: usize) {
        self.zero_gradient = Some(Tensor::from(n as i64));
    }

    /// The run's diagnostics, read from the device once.
    pub fn take_trace(&mut self) -> Trace {
        let means = std::mem::take(&mut self.objective_means);
        let objective = if means.is_empty() {
            Vec::new()
        } else {
            Vec::<f64>::try_from(Tensor::stack(&means, 0).to_device(tch::Device::Cpu)).unwrap_or_else(|_| vec![f64::NAN; means.len()])
        };
        let zero_gradient_samples = self.zero_gradient.take().map_or(0, |z| i64::try_from(z).unwrap_or(0) as usize);
        Trace { zero_gradient_samples, objective }
    }

    /// Makes sure the clean per-sample losses are known when the direction's objective needs them,
    /// or always with `force` (one extra forward when the attack does not start at the clean input).
    ///
    /// # Errors
    /// What the model's forward fails with.
    pub fn ensure_clean(&mut self, force: bool) -> Result<()> {
        if (force || self.direction.needs_clean()) && self.dctx.clean.is_none() {
            let x = self.x.shallow_clone();
            direction::objective(self.direction, self.oracle, &x, &mut self.dctx, true)?;
        }
        Ok(())
    }

    /// The random stream of restart `restart` of this batch.
    pub fn rng(&self, restart: u64) -> ChaCha8Rng {
        crate::rng::stream(self.seed, &[restart])
    }

    /// Each sample's mean relative loss increase over the direction's tasks against the clean
    /// losses (tasks with a zero clean loss left out): FAT's adversarial criterion.
    ///
    /// # Errors
    /// A device-to-host copy that fails.
    pub fn relative_increase(&self, losses: &crate::task::TaskMap<Tensor>) -> Result<Vec<f64>> {
        let clean = self.dctx.clean.as_ref().expect("clean losses are computed before early stopping");
        let _guard = tch::no_grad_guard();
        let mut sum: Option<Tensor> = None;
        let mut count: Option<Tensor> = None;
        for (kind, l) in losses.iter() {
            let l0 = clean.get(kind).expect("clean losses of every used task");
            let ok = l0.gt(1e-12).to_kind(Kind::Double);
            let r = (l - l0).to_kind(Kind::Double) / l0.to_kind(Kind::Double).clamp_min(1e-12) * &ok;
            sum = Some(sum.map_or(r.shallow_clone(), |s| s + &r));
            count = Some(count.map_or(ok.shallow_clone(), |c| c + &ok));
        }
        let mean = sum.expect("a direction uses tasks") / count.expect("idem").clamp_min(1.0);
        Ok(Vec::<f64>::try_from(mean.to_device(tch::Device::Cpu))?)
    }

    /// `[B]` tensor filled with `v` (per-sample step sizes).
    pub fn per_sample(&self, v: f64) -> Tensor {
        Tensor::full([self.x.size()[0]], v, (self.x.kind(), self.x.device()))
    }
}

/// A `[B]` boolean tensor from per-sample flags.
pub(crate) fn mask(flags: &[bool], like: &Tensor) -> Tensor {
    let v: Vec<i64> = flags.iter().map(|&f| f as i64).collect();
    Tensor::from_slice(&v).to_device(like.device()).gt(0)
}

/// `where(m[b], a, b)` for `[B, …]` tensors and a `[B]` mask.
pub(crate) fn select(m: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    let shape: Vec<i64> = std::iter::once(-1).chain(std::iter::repeat_n(1, a.dim() - 1)).collect();
    a.where_self(&m.view(shape.as_slice()), b)
}
