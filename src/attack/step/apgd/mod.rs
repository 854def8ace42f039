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

use super::{MAX_COUNT, RunContext, StepRule, check_n_iter};
use crate::attack::Budget;
use crate::error::{Error, Result};
use tch::Tensor;

/// Which APGD to run, with the options that only that profile reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApgdProfile {
    /// Croce & Hein's APGD (per-sample, random start, step 2ε), with `restarts` random restarts
    /// whose best point is kept per sample.
    Autoattack { restarts: usize },
    /// The authors' code, for reproduction; `revised` restarts from the best point when the step
    /// halves (their "AAR").
    Paper { revised: bool },
}

impl ApgdProfile {
    /// The profile's name.
    pub fn name(self) -> ApgdProfileName {
        match self {
            ApgdProfile::Autoattack { .. } => ApgdProfileName::Autoattack,
            ApgdProfile::Paper { .. } => ApgdProfileName::Paper,
        }
    }
}

/// An APGD profile by name, as study files (`apgd_profile`) and the command line spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ApgdProfileName {
    /// Croce & Hein's algorithm.
    #[default]
    Autoattack,
    /// The authors' code.
    Paper,
}

impl ApgdProfileName {
    /// The stable id, as the CLI spells it.
    pub fn id(self) -> &'static str {
        match self {
            ApgdProfileName::Autoattack => "autoattack",
            ApgdProfileName::Paper => "paper",
        }
    }
}

/// Momentum weight α of both profiles.
const MOMENTUM: f64 = 0.75;
/// Condition 1's fraction of successful steps.
const RHO: f64 = 0.75;

/// Auto-PGD. In study files and on the command line its profile is flat: `apgd_profile`,
/// `restarts` (autoattack only), `apgd_revised` (paper only).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "ApgdFields", into = "ApgdFields")]
pub struct Apgd {
    pub n_iter: usize,
    pub profile: ApgdProfile,
}

impl Default for Apgd {
    fn default() -> Self {
        Apgd { n_iter: 10, profile: ApgdProfile::Autoattack { restarts: 1 } }
    }
}

/// APGD's parameters as written: the profile by name and its options side by side.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ApgdFields {
    n_iter: usize,
    apgd_profile: ApgdProfileName,
    #[serde(skip_serializing_if = "Option::is_none")]
    restarts: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apgd_revised: Option<bool>,
}

impl Default for ApgdFields {
    fn default() -> Self {
        ApgdFields { n_iter: Apgd::default().n_iter, apgd_profile: ApgdProfileName::Autoattack, restarts: None, apgd_revised: None }
    }
}

impl TryFrom<ApgdFields> for Apgd {
    type Error = Error;

    fn try_from(f: ApgdFields) -> Result<Apgd> {
        let profile = match (f.apgd_profile, f.restarts, f.apgd_revised) {
            (ApgdProfileName::Autoattack, restarts, None) => ApgdProfile::Autoattack { restarts: restarts.unwrap_or(1) },
            (ApgdProfileName::Paper, None, revised) => ApgdProfile::Paper { revised: revised.unwrap_or(false) },
            (ApgdProfileName::Autoattack, _, Some(_)) => {
                return Err(Error::parameter(
                    "apgd_revised",
                    "applies to apgd_profile = \"paper\" only; remove it, or choose that profile",
                ));
            }
            (ApgdProfileName::Paper, Some(_), _) => {
                return Err(Error::parameter(
                    "restarts",
                    "applies to apgd_profile = \"autoattack\" only; remove it, or choose that profile",
                ));
            }
        };
        Ok(Apgd { n_iter: f.n_iter, profile })
    }
}

impl From<Apgd> for ApgdFields {
    fn from(a: Apgd) -> ApgdFields {
        let (restarts, apgd_revised) = match a.profile {
            ApgdProfile::Autoattack { restarts } => (Some(restarts), None),
            ApgdProfile::Paper { revised } => (None, Some(revised)),
        };
        ApgdFields { n_iter: a.n_iter, apgd_profile: a.profile.name(), restarts, apgd_revised }
    }
}

impl Apgd {
    /// Random restarts run (1 for the paper profile).
    pub fn restarts(&self) -> usize {
        match self.profile {
            ApgdProfile::Autoattack { restarts } => restarts,
            ApgdProfile::Paper { .. } => 1,
        }
    }
}

/// The momentum step of both profiles: from `x_cur` towards the projected gradient step `z`,
/// with weight `a`, plus `1 − a` of the last move `x_cur − x_prev`, projected onto the budget
/// around the clean `x`.
fn momentum_step(budget: &Budget, x_cur: &Tensor, z: &Tensor, x_prev: &Tensor, a: f64, x: &Tensor) -> Tensor {
    budget.project(&(x_cur + (z - x_cur) * a + (x_cur - x_prev) * (1.0 - a)), x)
}

impl StepRule for Apgd {
    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        match self.profile {
            ApgdProfile::Autoattack { restarts } => autoattack::run(self.n_iter, restarts, cx),
            ApgdProfile::Paper { revised } => paper::run(self.n_iter, revised, cx),
        }
    }

    fn check(&self) -> Result<()> {
        check_n_iter(self.n_iter)?;
        let restarts = self.restarts();
        if restarts == 0 {
            return Err(Error::parameter("restarts", "at least one run is needed (1 = no restart)"));
        }
        if restarts > MAX_COUNT {
            return Err(Error::parameter("restarts", format!("{restarts} is more than {MAX_COUNT} restarts; nothing would finish")));
        }
        // Each bounded alone, the product could still be 10¹²: bound the iterations in all.
        if self.n_iter.saturating_mul(restarts) > MAX_COUNT {
            return Err(Error::parameter(
                "restarts",
                format!(
                    "{} iterations × {restarts} restarts is more than {MAX_COUNT} iterations in all; nothing would finish",
                    self.n_iter
                ),
            ));
        }
        Ok(())
    }
}
