//! The metric vocabulary every task's metric shares: conventions, profiles and named values. A
//! leaf file: the metric implementations import it, it imports none of them.
use super::numpy::NpFloat;

/// How metric values are aggregated over a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// Standard definitions: pixel-pooled means and clean losses (the APGD paper profile's GB-MTA
    /// baseline included), float64 angle statistics with a 0.001° median histogram.
    #[default]
    Standard,
    /// The reference code's arithmetic, for comparison with the paper: its metric quirks, float32
    /// angle mean and exact median, numpy rounding (metrics to 4 decimals, ARP per task to 6 and
    /// overall to 4), clean losses as means of per-batch means (GB-MTA baseline included).
    Reference,
}

/// Which metrics each task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum MetricProfile {
    /// mIoU + pixel acc, five normal-angle metrics, five depth metrics, L1 for keypoints/edges (NYUv2 style).
    #[default]
    Full,
    /// One number per task as the reference reports for Taskonomy: err, cosine_similarity,
    /// abs_err, key_err, edge_err.
    Taskonomy,
}

/// One named metric value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricValue {
    pub name: String,
    pub value: f64,
    pub higher_is_better: bool,
    /// The reference computes this value as a numpy float32 (the angle mean and median, Taskonomy's
    /// cosine similarity, under `reference`): its rounding and ARP arithmetic then stay in float32.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub float32: bool,
}

impl MetricValue {
    /// A metric value.
    pub fn new(name: &str, value: f64, higher_is_better: bool) -> Self {
        MetricValue { name: name.to_string(), value, higher_is_better, float32: false }
    }

    /// The same value marked as a float32 number of the reference (`value` must be one).
    pub fn in_float32(mut self) -> Self {
        self.float32 = true;
        self
    }

    /// The value as the reference's numpy scalar.
    pub fn numpy(&self) -> NpFloat {
        NpFloat::new(self.value, self.float32)
    }
}
