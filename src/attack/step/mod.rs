//! Step rules: how successive directions become the adversarial input. Each rule is written
//! once and works with every direction; it projects onto the budget after every step.
mod apgd;
mod auto_sage;
mod fgsm;
mod mifgsm;
mod pgd;

pub use apgd::{autoattack_checkpoints, paper_checkpoints, Apgd, ApgdProfile};
pub use auto_sage::AutoSage;
pub use fgsm::Fgsm;
pub use mifgsm::MiFgsm;
pub use pgd::Pgd;

use super::budget::Budget;
use super::direction::{evaluate, Direction, DirectionContext, Evaluation, Need};
use super::oracle::Oracle;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// A step rule.
pub trait StepRule {
    /// The stable id (`fgsm`, `mifgsm`, `pgd`, `apgd`, `auto-sage`).
    fn id(&self) -> &'static str;
    /// Runs the attack from the clean input `cx.x`; returns the adversarial input.
    fn run(&self, cx: &mut RunContext) -> Tensor;
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
    pub trace: Trace,
    seen_gradient: bool,
}

impl<'a> RunContext<'a> {
    /// A context for one batch.
    pub fn new(oracle: &'a Oracle<'a>, direction: &'a dyn Direction, budget: &'a Budget, x: &'a Tensor, dctx: DirectionContext, seed: u64) -> Self {
        RunContext { oracle, direction, budget, x, dctx, seed, trace: Trace::default(), seen_gradient: false }
    }

    /// Evaluates the direction at `point` (`at_clean`: the point is the clean input).
    pub fn eval(&mut self, point: &Tensor, need: Need, at_clean: bool) -> Evaluation {
        let e = evaluate(self.direction, self.oracle, point, &mut self.dctx, need, at_clean);
        let _guard = tch::no_grad_guard();
        if !self.seen_gradient {
            let first = e.grad.as_ref().or(e.components.first());
            if let Some(g) = first {
                let zero = g.abs().flatten(1, -1).amax([1i64].as_slice(), false).eq(0.0).sum(Kind::Int64);
                self.trace.zero_gradient_samples = i64::try_from(zero).unwrap_or(0) as usize;
                self.seen_gradient = true;
            }
        }
        self.trace.objective.push(f64::try_from(e.objective.mean(Kind::Double)).unwrap_or(f64::NAN));
        e
    }

    /// Makes sure the clean per-sample losses are known when the direction's objective needs them
    /// (one extra forward when the attack does not start at the clean input).
    pub fn ensure_clean(&mut self) {
        if self.direction.needs_clean() && self.dctx.clean.is_none() {
            let x = self.x.shallow_clone();
            let _ = evaluate(self.direction, self.oracle, &x, &mut self.dctx, Need::Objective, true);
        }
    }

    /// The random stream of restart `restart` of this batch.
    pub fn rng(&self, restart: u64) -> ChaCha8Rng {
        crate::rng::stream(self.seed, &[restart])
    }

    /// `[B]` tensor filled with `v` (per-sample step sizes).
    pub fn per_sample(&self, v: f64) -> Tensor {
        Tensor::full([self.x.size()[0]], v, (self.x.kind(), self.x.device()))
    }
}
