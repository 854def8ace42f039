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
use super::Target;
use super::custom::{Custom, CustomMetric};
use super::normal::NormalMetric;
use super::regression::{RegressionMetric, RegressionReport};
use super::segment::SegMetric;
pub use super::vocabulary::{Convention, MetricProfile, MetricValue};
use super::{Task, TaskKind};
use crate::error::Result;
use tch::Tensor;

/// The accumulator of one task.
#[derive(Debug, Clone)]
pub enum TaskMetric {
    Segment(SegMetric),
    Normal(NormalMetric),
    Regression(RegressionMetric),
    /// A custom task's: the mean of its per-sample values.
    Custom(Custom, CustomMetric),
}

impl TaskMetric {
    /// The accumulator `task` uses under `profile` and `convention`.
    pub fn new(task: &Task, profile: MetricProfile, convention: Convention) -> Self {
        let single = profile == MetricProfile::Taskonomy;
        if let Some(c) = &task.custom {
            return TaskMetric::Custom(c.clone(), CustomMetric::new(c));
        }
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

    /// Adds a batch of predictions at output resolution; they are upsampled to the label size
    /// (a custom task's metric gets them as they are).
    ///
    /// # Errors
    /// A custom task's metric that fails; built-in metrics do not fail.
    pub fn update(&mut self, pred: &Tensor, target: &Target) -> Result<()> {
        let _guard = tch::no_grad_guard();
        if let TaskMetric::Custom(task, m) = self {
            return m.add(&task.metric(pred, target)?);
        }
        let (_, _, h, w) = target.value.size4().expect("targets are 4-D");
        let pred = upsample_to(pred, h, w);
        match self {
            TaskMetric::Segment(m) => m.update(&pred, target),
            TaskMetric::Normal(m) => m.update(&pred, target),
            TaskMetric::Regression(m) => m.update(&pred, target),
            TaskMetric::Custom(..) => unreachable!("handled above"),
        }
        Ok(())
    }

    /// The metric values over everything added so far.
    pub fn finish(&self, convention: Convention) -> Vec<MetricValue> {
        let mut values = match self {
            TaskMetric::Segment(m) => m.finish(),
            TaskMetric::Normal(m) => m.finish(),
            TaskMetric::Regression(m) => m.finish(),
            TaskMetric::Custom(_, m) => m.finish(),
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
