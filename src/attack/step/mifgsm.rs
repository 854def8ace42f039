//! MI-FGSM (Dong et al., 2018): PGD with a momentum of L1-normalised gradients,
//! `m ← μ·m + g/mean|g|`, `x_{k+1} = clip(P_ε(x_k + α·sign(m)))`; μ = 1, α = ε/N, N = 10 by default.
//! (Normalising by the mean instead of the sum of |g| only rescales m by a constant per sample.)
use super::{RunContext, StepRule, check_n_iter, check_step_size};
use crate::error::{Error, Result};
use tch::{Kind, Tensor};

/// Momentum iterative FGSM.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiFgsm {
    pub n_iter: usize,
    /// Step size in grey levels (default ε / `n_iter`).
    pub step_size: Option<f64>,
    /// The momentum μ (1 in the MI-FGSM paper).
    pub mi_momentum: f64,
}

impl Default for MiFgsm {
    fn default() -> Self {
        MiFgsm { n_iter: 10, step_size: None, mi_momentum: 1.0 }
    }
}

impl StepRule for MiFgsm {
    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        let x = cx.x.shallow_clone();
        let mut x_adv = x.shallow_clone();
        let mut m = x.zeros_like();
        let alpha = cx.per_sample(cx.step_size(self.step_size, self.n_iter));
        for k in 0..self.n_iter {
            let (_, g) = cx.gradient(&x_adv, k == 0)?;
            let _guard = tch::no_grad_guard();
            let l1 = g.abs().flatten(1, -1).mean_dim([1i64].as_slice(), false, Kind::Float).clamp_min(1e-30);
            m = &m * self.mi_momentum + &g / l1.to_kind(g.kind()).view([-1, 1, 1, 1]);
            x_adv = cx.budget.step(&x_adv, &m, &alpha, &x);
        }
        Ok(x_adv)
    }

    fn check(&self) -> Result<()> {
        check_n_iter(self.n_iter)?;
        check_step_size(self.step_size)?;
        if !(self.mi_momentum.is_finite() && self.mi_momentum >= 0.0) {
            return Err(Error::parameter(
                "mi_momentum",
                format!("{} must be a finite number ≥ 0 (1 in the MI-FGSM paper)", self.mi_momentum),
            ));
        }
        Ok(())
    }
}
