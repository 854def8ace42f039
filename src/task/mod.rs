//! Tasks: what each head predicts, its loss (with `mean` and per-sample reductions) and its
//! metrics (spec §3). A [`Task`] is a [`TaskSpec`] plus the dataset facts its loss needs
//! (segmentation class weights).
mod kind;
pub mod loss;
mod map;
pub mod metric;
pub mod normal;
pub mod regression;
pub mod segment;
mod spec;

pub use kind::TaskKind;
pub use loss::LossParts;
pub use map::{TaskMap, TaskSet};
pub use metric::{Convention, MetricProfile, MetricValue, TaskMetric};
pub use spec::{TaskSpec, nyuv2_tasks, parse_tasks, taskonomy_tasks};

use crate::data::Target;
use tch::Tensor;

/// One task of a model, with the dataset facts its loss and metric need.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub spec: TaskSpec,
    /// Per-class loss weights for segmentation (Taskonomy's prior factor); `None` = all 1.
    pub class_weights: Option<Vec<f32>>,
}

impl Task {
    /// A task without class weights.
    pub fn new(spec: TaskSpec) -> Self {
        Task { spec, class_weights: None }
    }

    /// What the task predicts.
    pub fn kind(&self) -> TaskKind {
        self.spec.kind
    }

    /// Output channels of its head.
    pub fn channels(&self) -> i64 {
        self.spec.channels
    }

    /// The loss parts of `output` (network resolution) against `target`, which must already be
    /// at the output resolution (see [`Target::resized`]).
    pub fn loss(&self, output: &Tensor, target: &Target) -> LossParts {
        match self.kind() {
            TaskKind::SegmentSemantic => segment::loss(output, target, self.class_weights.as_deref()),
            TaskKind::Normal => normal::loss(output, target),
            TaskKind::DepthZbuffer | TaskKind::Keypoints2d | TaskKind::EdgeTexture => regression::loss(output, target),
        }
    }

    /// A fresh metric accumulator.
    pub fn metric(&self, profile: MetricProfile, convention: Convention) -> TaskMetric {
        TaskMetric::new(self, profile, convention)
    }
}

#[cfg(test)]
mod tests;
