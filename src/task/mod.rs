//! Tasks: what each head predicts, its loss (with `mean` and per-sample reductions) and its
//! metrics (docs/REFERENCE.md §3). A [`Task`] is a [`TaskSpec`] plus the dataset facts its loss needs
//! (segmentation class weights).
//!
//! ```
//! use mtrobust::task::{Convention, MetricProfile, Target, Task, parse_tasks};
//! use tch::Tensor;
//!
//! let specs = parse_tasks("segm:3,depth")?;
//! let depth = Task::new(specs[1]);
//! // A 2×2 depth map predicted 1 everywhere, labelled 1, 3, ignored, 1.
//! let map = |v: [f32; 4]| Tensor::from_slice(&v).view([1, 1, 2, 2]);
//! let pred = map([1.0, 1.0, 1.0, 1.0]);
//! let target = Target { value: map([1.0, 3.0, 0.0, 1.0]), valid: map([1.0, 1.0, 0.0, 1.0]) };
//! // L1 over the three valid pixels: (0 + 2 + 0) / 3.
//! let loss = depth.loss(&pred, &target)?.pooled().double_value(&[]);
//! assert!((loss - 2.0 / 3.0).abs() < 1e-6);
//!
//! let mut metric = depth.metric(MetricProfile::Full, Convention::Standard);
//! metric.update(&pred, &target)?;
//! let values = metric.finish(Convention::Standard);
//! assert_eq!(values[0].name, "abs_err");
//! assert!((values[0].value - 2.0 / 3.0).abs() < 1e-6);
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod custom;
mod kind;
pub mod loss;
mod map;
pub mod metric;
pub mod normal;
pub mod numpy;
pub mod regression;
pub mod segment;
mod spec;
mod target;
mod vocabulary;

pub use custom::{Custom, CustomTask};
pub use kind::TaskKind;
pub use loss::LossParts;
pub use map::{TaskMap, TaskSet};
pub use metric::{Convention, MetricProfile, MetricValue, TaskMetric};
pub use spec::{TaskSpec, nyuv2_tasks, parse_tasks, taskonomy_tasks};
pub use target::Target;

use crate::error::Result;
use tch::Tensor;

/// One task of a model, with the dataset facts its loss and metric need.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub spec: TaskSpec,
    /// Per-class loss weights for segmentation (Taskonomy's prior factor); `None` = all 1.
    pub class_weights: Option<Vec<f32>>,
    /// The caller's loss and metric, replacing those of `spec.kind` (see [`custom`]).
    pub custom: Option<Custom>,
}

impl Task {
    /// A task without class weights.
    pub fn new(spec: TaskSpec) -> Self {
        Task { spec, class_weights: None, custom: None }
    }

    /// A task in the slot of `spec.kind` whose loss and metric are `custom`'s.
    pub fn custom(spec: TaskSpec, custom: std::sync::Arc<dyn CustomTask>) -> Self {
        Task { spec, class_weights: None, custom: Some(Custom(custom)) }
    }

    /// How errors name it: its kind, or a custom task's own name.
    pub fn name(&self) -> String {
        match &self.custom {
            Some(c) => c.0.name(),
            None => self.kind().name().to_string(),
        }
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
    /// at the output resolution (see [`Target::resized`]; a custom task's target as given).
    ///
    /// # Errors
    /// A custom task's loss that fails or is not `[B]`; built-in losses do not fail.
    pub fn loss(&self, output: &Tensor, target: &Target) -> Result<LossParts> {
        if let Some(c) = &self.custom {
            return c.loss(output, target);
        }
        Ok(match self.kind() {
            TaskKind::SegmentSemantic => segment::loss(output, target, self.class_weights.as_deref()),
            TaskKind::Normal => normal::loss(output, target),
            TaskKind::DepthZbuffer | TaskKind::Keypoints2d | TaskKind::EdgeTexture => regression::loss(output, target),
        })
    }

    /// `target` at the output resolution `h × w` (nearest, docs/REFERENCE.md §2.3); a custom
    /// task's target unchanged.
    pub fn target_at(&self, target: &Target, h: i64, w: i64) -> Target {
        if self.custom.is_some() { target.shallow() } else { target.resized(h, w) }
    }

    /// The loss parts of `output` against a label-resolution `target`, resized to the output first
    /// (nearest, docs/REFERENCE.md §2.3).
    ///
    /// # Errors
    /// See [`Task::loss`].
    pub fn loss_at_output(&self, output: &Tensor, target: &Target) -> Result<LossParts> {
        let (_, _, h, w) = output.size4().expect("task outputs are 4-D");
        self.loss(output, &self.target_at(target, h, w))
    }

    /// A fresh metric accumulator.
    pub fn metric(&self, profile: MetricProfile, convention: Convention) -> TaskMetric {
        TaskMetric::new(self, profile, convention)
    }
}

/// The loss parts of every task of a forward pass, against label-resolution targets.
///
/// # Errors
/// A custom task's loss that fails.
///
/// # Panics
/// When `outputs` or `targets` lacks one of `tasks` (callers check their data up front).
pub fn losses(tasks: &[Task], outputs: &TaskMap<Tensor>, targets: &TaskMap<Target>) -> Result<TaskMap<LossParts>> {
    tasks
        .iter()
        .map(|t| {
            let y = outputs.get(t.kind()).expect("the forward pass returns every task");
            let target = targets.get(t.kind()).expect("the batch has every task's labels");
            Ok((t.kind(), t.loss_at_output(y, target)?))
        })
        .collect()
}

#[cfg(test)]
mod tests;
