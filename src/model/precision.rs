//! Numeric precision of a model's forward and backward passes (`--precision`).
//!
//! - `fp32`: libtorch's defaults — exact fp32 on CPU; on CUDA, cuDNN may run convolutions in TF32
//!   (PyTorch's default too), matmuls stay IEEE fp32. Runs and cells keep their identities.
//! - `tf32`: on CUDA, convolutions and matmuls in TF32; on CPU the same as fp32.
//! - `bf16`: autocast (PyTorch's `torch.autocast(dtype=torch.bfloat16)`) over the network's
//!   forward, so its backward runs in the dtypes the forward chose; the weights stay fp32 (master
//!   weights for training) and the outputs are cast back to fp32, so losses, the attack objective,
//!   the adversarial input, the projection and the clip stay fp32.
use crate::error::{Error, Result};

/// How a model computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// libtorch's defaults (exact fp32 on CPU).
    #[default]
    Fp32,
    /// TF32 convolutions and matmuls on CUDA (fp32 on CPU).
    Tf32,
    /// bf16 autocast over the forward (and so the backward); fp32 weights, outputs and losses.
    Bf16,
}

impl Precision {
    /// The stable id (`fp32`, `tf32`, `bf16`).
    pub fn id(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this is the default, which leaves stored identities unchanged.
    pub fn is_default(self) -> bool {
        self == Precision::Fp32
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::config("--precision", format!("`{other}` is not a precision; use fp32, tf32 or bf16"))),
        }
    }
}
