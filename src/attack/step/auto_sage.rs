//! Auto-SAGE (Rathbun et al., 2022), as the paper adapts it to multi-task models (§4.5 of the
//! spec): per-task components D_m (∇L_m for Total, ∇L_m/L_m for GB-MTA, sign(∇L_m) for SignTotal,
//! one component for Single) are blended with per-task, per-sample, per-pixel weights α_m that
//! are themselves updated by gradient ascent through a tanh relaxation of the sign step:
//!
//! ```text
//! G   = Σ_m α_m ⊙ D_m(x)                   x1 = P(x + ε_s·sign(G))          (look-ahead)
//! dF  = −g(x1)                               g: the direction at x1, all tasks
//! α_m ← α_m − lr · dF ⊙ ff·ε_s·D_m ⊙ sech²(ff·G)
//! G_B ← γ·G_B + Σ_m α_m ⊙ D_m               x ← P(x + ε_s·sign(G_B))
//! ```
//! with ff = 50 (fitting factor), lr = 10, γ = 0, ε_s = ε/N, N = 10, α = 1 at start.
//!
//! Differences from the reference (docs/REFERENCE.md §7 items 1–3): the look-ahead gradient is the direction's
//! gradient over **all** tasks at x1 (the reference adds T copies of the last task's gradient
//! through a stale loop variable); sech² is computed as 1 − tanh², which cannot overflow (the
//! reference's exp(2u) form gives inf/inf = NaN for u ≳ 44); and the T component gradients share
//! one forward. Per step: 2 forwards and T + 1 backwards (T + T for SignTotal).
use super::{RunContext, StepRule, check_n_iter, check_step_size};
use crate::error::{Error, Result};
use tch::Tensor;

/// Self-attention gradient attack with learned per-task weights.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoSage {
    pub n_iter: usize,
    /// ε_s, the step size in grey levels (default ε / `n_iter`).
    pub step_size: Option<f64>,
    /// The tanh fitting factor (50).
    pub sage_fitting: f64,
    /// Learning rate of the weights α (10).
    pub sage_lr: f64,
    /// Momentum γ of the blended gradient (0 in the paper's runs).
    pub sage_decay: f64,
}

impl Default for AutoSage {
    fn default() -> Self {
        AutoSage { n_iter: 10, step_size: None, sage_fitting: 50.0, sage_lr: 10.0, sage_decay: 0.0 }
    }
}

impl StepRule for AutoSage {
    fn check(&self) -> Result<()> {
        check_n_iter(self.n_iter)?;
        check_step_size(self.step_size)?;
        if !(self.sage_lr.is_finite() && self.sage_lr > 0.0) {
            return Err(Error::parameter("sage_lr", format!("{} must be a finite number > 0 (default 10)", self.sage_lr)));
        }
        if !(self.sage_fitting.is_finite() && self.sage_fitting > 0.0) {
            return Err(Error::parameter("sage_fitting", format!("{} must be a finite number > 0 (default 50)", self.sage_fitting)));
        }
        if !(0.0..1.0).contains(&self.sage_decay) {
            return Err(Error::parameter("sage_decay", format!("{} must be in [0, 1) (default 0)", self.sage_decay)));
        }
        Ok(())
    }

    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        let x = cx.x.shallow_clone();
        let mut x_adv = x.shallow_clone();
        let alpha_s = cx.step_size(self.step_size, self.n_iter);
        let step = cx.per_sample(alpha_s);
        let mut weights: Option<Vec<Tensor>> = None;
        let mut blended: Option<Tensor> = None;
        for k in 0..self.n_iter {
            let (_, d) = cx.components(&x_adv, k == 0)?;
            let alpha = weights.get_or_insert_with(|| d.iter().map(Tensor::ones_like).collect());
            let g = {
                let _guard = tch::no_grad_guard();
                sum_weighted(alpha, &d)
            };
            let lookahead = {
                let _guard = tch::no_grad_guard();
                cx.budget.step(&x_adv, &g, &step, &x)
            };
            let df = -cx.gradient(&lookahead, false)?.1;
            let _guard = tch::no_grad_guard();
            // sech²(u) = 1 − tanh²(u): bounded for every u.
            let sech2 = 1.0 - (&g * self.sage_fitting).tanh().square();
            for (a, dm) in alpha.iter_mut().zip(&d) {
                let dx_dalpha = dm * (self.sage_fitting * alpha_s) * &sech2;
                *a = &*a - (&df * dx_dalpha) * self.sage_lr;
            }
            let g_new = sum_weighted(alpha, &d);
            let gb = match blended.take() {
                Some(prev) => prev * self.sage_decay + g_new,
                None => g_new,
            };
            x_adv = cx.budget.step(&x_adv, &gb, &step, &x);
            blended = Some(gb);
        }
        Ok(x_adv)
    }
}

/// Σ_m α_m ⊙ D_m.
fn sum_weighted(alpha: &[Tensor], d: &[Tensor]) -> Tensor {
    alpha.iter().zip(d).map(|(a, dm)| a * dm).reduce(|p, q| p + q).expect("at least one component")
}
