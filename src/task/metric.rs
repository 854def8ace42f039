//! Dataset-level metric accumulators, one per task, and the conventions they follow.
//!
//! Predictions come at the network's output resolution and are upsampled to the label size with
//! PyTorch `nearest` before scoring (docs/REFERENCE.md §2.3). Two conventions:
//! - `standard` (default): pixel-weighted dataset means, mIoU over every class that occurs in
//!   ground truth or prediction, non-positive depth never "within" a δ threshold;
//! - `reference`: the reference code's numbers (docs/REFERENCE.md §7 items 19–21) — batch-size-weighted means of
//!   per-batch values, mIoU over classes with a true positive only, negative depth counted as within,
//!   the angle mean and exact median in numpy float32 (docs/REFERENCE.md §3.2), every value rounded
//!   to 4 decimals by numpy's `round` in the value's own precision — so results can be compared with
//!   the paper.
use super::normal::NormalMetric;
use super::numpy::NpFloat;
use super::regression::{RegressionMetric, RegressionReport};
use super::segment::SegMetric;
use super::{Task, TaskKind};
use crate::data::Target;
use tch::Tensor;

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

/// The accumulator of one task.
#[derive(Debug, Clone)]
pub enum TaskMetric {
    Segment(SegMetric),
    Normal(NormalMetric),
    Regression(RegressionMetric),
}

impl TaskMetric {
    /// The accumulator `task` uses under `profile` and `convention`.
    pub fn new(task: &Task, profile: MetricProfile, convention: Convention) -> Self {
        let single = profile == MetricProfile::Taskonomy;
        match task.kind() {
            TaskKind::SegmentSemantic => {
                TaskMetric::Segment(SegMetric::new(task.channels() as usize, convention, single, task.class_weights.clone()))
            }
            TaskKind::Normal => TaskMetric::Normal(NormalMetric::new(convention, single)),
            TaskKind::DepthZbuffer => {
                let report = if single { RegressionReport::L1("abs_err") } else { RegressionReport::DepthFull };
                TaskMetric::Regression(RegressionMetric::new(report, convention))
            }
            TaskKind::Keypoints2d => TaskMetric::Regression(RegressionMetric::new(RegressionReport::L1("key_err"), convention)),
            TaskKind::EdgeTexture => TaskMetric::Regression(RegressionMetric::new(RegressionReport::L1("edge_err"), convention)),
        }
    }

    /// Adds a batch of predictions at output resolution; they are upsampled to the label size.
    pub fn update(&mut self, pred: &Tensor, target: &Target) {
        let _guard = tch::no_grad_guard();
        let (_, _, h, w) = target.value.size4().expect("targets are 4-D");
        let pred = upsample_to(pred, h, w);
        match self {
            TaskMetric::Segment(m) => m.update(&pred, target),
            TaskMetric::Normal(m) => m.update(&pred, target),
            TaskMetric::Regression(m) => m.update(&pred, target),
        }
    }

    /// The metric values over everything added so far.
    pub fn finish(&self, convention: Convention) -> Vec<MetricValue> {
        let mut values = match self {
            TaskMetric::Segment(m) => m.finish(),
            TaskMetric::Normal(m) => m.finish(),
            TaskMetric::Regression(m) => m.finish(),
        };
        if convention == Convention::Reference {
            // The reference's `round(value, 4)` on numpy scalars (docs/REFERENCE.md §3.2).
            for v in &mut values {
                v.value = v.numpy().round_decimal(4);
            }
        }
        values
    }
}

/// Nearest upsampling of `[B,C,h,w]` predictions to `H×W` (identity when sizes agree).
pub fn upsample_to(pred: &Tensor, h: i64, w: i64) -> Tensor {
    let (_, _, ph, pw) = pred.size4().expect("predictions are 4-D");
    if (ph, pw) == (h, w) { pred.shallow_clone() } else { pred.upsample_nearest2d([h, w], None, None) }
}
