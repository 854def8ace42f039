//! APGD (Croce & Hein, 2020; the paper's "APGD/AutoAttack", Alg. 2–3): momentum steps whose size
//! halves at checkpoints where progress stalled, returning the best point found. Two profiles,
//! one file each: [`autoattack`] (default, Croce & Hein's algorithm) and [`paper`] (the authors'
//! code, for reproduction). What they share lives here: the momentum step and its constants.
//!
//! Both fuse the objective evaluation into the gradient pass at the same point, so N steps cost
//! N+1 forwards (the reference: 2N+1, docs/REFERENCE.md §8 item 4).
mod autoattack;
mod paper;

pub use autoattack::autoattack_checkpoints;
pub use paper::paper_checkpoints;

use super::{RunContext, StepRule};
use crate::attack::Budget;
use tch::Tensor;

/// Which APGD to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ApgdProfile {
    /// Croce & Hein's APGD (per-sample, random start, step 2ε, restarts).
    #[default]
    Autoattack,
    /// The authors' code, for reproduction.
    Paper,
}

impl ApgdProfile {
    /// The stable id, as the CLI spells it.
    pub fn id(self) -> &'static str {
        match self {
            ApgdProfile::Autoattack => "autoattack",
            ApgdProfile::Paper => "paper",
        }
    }
}

/// Momentum weight α of both profiles.
const MOMENTUM: f64 = 0.75;
/// Condition 1's fraction of successful steps.
const RHO: f64 = 0.75;

/// Auto-PGD.
#[derive(Debug, Clone, Copy)]
pub struct Apgd {
    pub n_iter: usize,
    pub profile: ApgdProfile,
    /// Random restarts (autoattack profile); the best point over all is kept per sample.
    pub restarts: usize,
    /// Paper profile: restart from the best point when the step halves (the reference's "AAR").
    pub revised: bool,
}

/// The momentum step of both profiles: from `x_cur` towards the projected gradient step `z`,
/// with weight `a`, plus `1 − a` of the last move `x_cur − x_prev`, projected onto the budget
/// around the clean `x`.
fn momentum_step(budget: &Budget, x_cur: &Tensor, z: &Tensor, x_prev: &Tensor, a: f64, x: &Tensor) -> Tensor {
    budget.project(&(x_cur + (z - x_cur) * a + (x_cur - x_prev) * (1.0 - a)), x)
}

impl StepRule for Apgd {
    fn run(&self, cx: &mut RunContext) -> Tensor {
        match self.profile {
            ApgdProfile::Autoattack => autoattack::run(self, cx),
            ApgdProfile::Paper => paper::run(self, cx),
        }
    }
}
