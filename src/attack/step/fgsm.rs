//! FGSM (Goodfellow et al., 2015): one step of size ε along the direction,
//! `x_adv = clip(x + ε·sign(g(x)))` for L∞ (ε·g/‖g‖₂ for L2). Passes: 1 forward + the direction's
//! backwards (1; T for SignTotal).
use super::{RunContext, StepRule};
use crate::error::Result;
use tch::Tensor;

/// The fast gradient sign method. It has no parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fgsm {}

impl StepRule for Fgsm {
    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        let x = cx.x.shallow_clone();
        let (_, g) = cx.gradient(&x, true)?;
        let _guard = tch::no_grad_guard();
        let step = cx.budget.ascent(&g, &cx.per_sample(cx.budget.eps));
        Ok(cx.budget.project(&(&x + step), &x))
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }
}
