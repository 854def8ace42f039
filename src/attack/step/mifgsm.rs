//! MI-FGSM (Dong et al., 2018): PGD with a momentum of L1-normalised gradients,
//! `m ← μ·m + g/mean|g|`, `x_{k+1} = clip(P_ε(x_k + α·sign(m)))`; μ = 1, α = ε/N, N = 10 by default.
//! (Normalising by the mean instead of the sum of |g| only rescales m by a constant per sample.)
use super::{RunContext, StepRule};
use tch::{Kind, Tensor};

/// Momentum iterative FGSM.
#[derive(Debug, Clone, Copy)]
pub struct MiFgsm {
    pub n_iter: usize,
    /// Step size in input units.
    pub alpha: f64,
    pub momentum: f64,
}

impl StepRule for MiFgsm {
    fn run(&self, cx: &mut RunContext) -> Tensor {
        let x = cx.x.shallow_clone();
        let mut x_adv = x.shallow_clone();
        let mut m = x.zeros_like();
        let alpha = cx.per_sample(self.alpha);
        for k in 0..self.n_iter {
            let (_, g) = cx.gradient(&x_adv, k == 0);
            let _guard = tch::no_grad_guard();
            let l1 = g.abs().flatten(1, -1).mean_dim([1i64].as_slice(), false, Kind::Float).clamp_min(1e-30);
            m = &m * self.momentum + &g / l1.to_kind(g.kind()).view([-1, 1, 1, 1]);
            x_adv = cx.budget.step(&x_adv, &m, &alpha, &x);
        }
        x_adv
    }
}
