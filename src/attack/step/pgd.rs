//! PGD / I-FGSM ("PGD" in the paper): `x_{k+1} = clip(P_ε(x_k + α·sign(g(x_k))))` for N steps,
//! returning the last iterate. Defaults follow the paper: N = 10, α = ε/N, no random start (the
//! reference has none, docs/REFERENCE.md §7 item 10); `--random-start` starts uniformly inside the ball.
//! Passes per step: 1 forward + the direction's backwards.
//!
//! With early stopping (FAT) a sample stops moving τ steps after it first becomes adversarial, and
//! the loop ends when no sample moves any more.
use super::{EarlyStop, EarlyStopper, RunContext, StepRule, check_n_iter, check_step_size};
use crate::error::{Error, Result};
use tch::Tensor;

/// Projected gradient ascent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pgd {
    pub n_iter: usize,
    /// Step size in grey levels (default ε / `n_iter`).
    pub step_size: Option<f64>,
    /// Start at a uniformly random point of the ball.
    pub random_start: bool,
    /// Friendly early stopping (adversarial training).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
}

impl Default for Pgd {
    fn default() -> Self {
        Pgd { n_iter: 10, step_size: None, random_start: false, early_stop: None }
    }
}

impl StepRule for Pgd {
    fn check(&self) -> Result<()> {
        check_n_iter(self.n_iter)?;
        check_step_size(self.step_size)?;
        // A negative threshold is allowed: every sample then counts as adversarial from the start.
        if let Some(es) = &self.early_stop
            && !es.threshold.is_finite()
        {
            return Err(Error::parameter(
                "fat_threshold",
                format!("{} must be a finite relative loss increase (default 0.5)", es.threshold),
            ));
        }
        Ok(())
    }

    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        let x = cx.x.shallow_clone();
        let mut x_adv = if self.random_start {
            cx.ensure_clean(self.early_stop.is_some())?;
            let mut rng = cx.rng(0);
            let _guard = tch::no_grad_guard();
            cx.budget.random_start(&x, &mut rng)
        } else {
            x.shallow_clone()
        };
        let alpha = cx.per_sample(cx.step_size(self.step_size, self.n_iter));
        let mut stopper = self.early_stop.map(|e| EarlyStopper::new(e, x.size()[0] as usize));
        for k in 0..self.n_iter {
            let (p, g) = cx.gradient(&x_adv, k == 0 && !self.random_start)?;
            let active = match stopper.as_mut() {
                Some(s) => {
                    let flags = s.update(k, &cx.relative_increase(&p.losses)?);
                    if !flags.iter().any(|&f| f) {
                        break;
                    }
                    Some(flags)
                }
                None => None,
            };
            let _guard = tch::no_grad_guard();
            let next = cx.budget.step(&x_adv, &g, &alpha, &x);
            x_adv = match active {
                Some(flags) => super::select(&super::mask(&flags, &next), &next, &x_adv),
                None => next,
            };
        }
        Ok(x_adv)
    }
}
