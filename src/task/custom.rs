//! A task whose loss and metric mtrobust does not know, given by the caller: the Python package's
//! `mt.Custom(loss=…, metric=…)`, or any Rust closure. It takes the place of one of the five
//! [`TaskKind`](super::TaskKind)s (a model then still has at most five tasks), so every map,
//! direction and report keyed by task works unchanged; only its loss and metric come from
//! [`CustomTask`].
//!
//! The target of a custom task is passed to it exactly as the caller gave it (any shape with the
//! batch first, any dtype): it is never resized to the output resolution nor masked, and its
//! validity mask is unused. The loss must return per-sample values `[B]`: APGD tracks the best
//! point per sample and GB-MTA divides each sample's gradient by its own loss.
//!
//! ```
//! use mtrobust::task::{CustomTask, Task, TaskKind, TaskSpec, Target};
//! use tch::{Kind, Tensor};
//!
//! /// Mean squared error per sample; its metric is the same number.
//! struct Mse;
//! impl CustomTask for Mse {
//!     fn loss(&self, output: &Tensor, target: &Tensor) -> mtrobust::Result<Tensor> {
//!         Ok((output - target).square().flatten(1, -1).mean_dim([1i64].as_slice(), false, Kind::Float))
//!     }
//!     fn metric(&self, output: &Tensor, target: &Tensor) -> mtrobust::Result<Tensor> {
//!         self.loss(output, target)
//!     }
//!     fn metric_name(&self) -> String { "mse".into() }
//!     fn higher_is_better(&self) -> bool { false }
//!     fn name(&self) -> String { "albedo".into() }
//! }
//! let task = Task::custom(TaskSpec { kind: TaskKind::EdgeTexture, channels: 3 }, std::sync::Arc::new(Mse));
//! let pred = Tensor::zeros([2, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
//! let target = Target::whole(Tensor::ones([2, 3, 4, 4], (Kind::Float, tch::Device::Cpu)));
//! let parts = task.loss(&pred, &target)?;
//! assert_eq!(Vec::<f32>::try_from(parts.per_sample())?, vec![1.0, 1.0]);
//! # Ok::<(), mtrobust::Error>(())
//! ```
use super::Target;
use super::loss::LossParts;
use super::vocabulary::MetricValue;
use crate::error::{Error, Result};
use std::sync::Arc;
use tch::{Kind, Tensor};

/// A caller's loss and metric for one task.
pub trait CustomTask: Send + Sync {
    /// `[B]` per-sample losses of `output` (`[B, C, h, w]`, differentiable) against `target`.
    ///
    /// # Errors
    /// Whatever the caller's code fails with, as an [`Error`] naming the task.
    fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor>;
    /// `[B]` per-sample metric values (the dataset's metric is their mean over samples).
    ///
    /// # Errors
    /// Whatever the caller's code fails with.
    fn metric(&self, output: &Tensor, target: &Tensor) -> Result<Tensor>;
    /// The metric's name in reports.
    fn metric_name(&self) -> String;
    /// Whether a larger metric is better (the sign of its ARP term).
    fn higher_is_better(&self) -> bool;
    /// The task's name as the caller knows it (errors and reports).
    fn name(&self) -> String;
}

/// A shared handle to a [`CustomTask`]; two handles are equal when they are the same object.
#[derive(Clone)]
pub struct Custom(pub Arc<dyn CustomTask>);

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Custom({})", self.0.name())
    }
}

impl PartialEq for Custom {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Custom {
    /// The loss parts: the caller's `[B]` losses over a weight of 1 per sample, so the pooled
    /// loss is their mean and the per-sample losses are the caller's own.
    ///
    /// # Errors
    /// The caller's failure, or a result that is not a floating-point `[B]` tensor.
    pub fn loss(&self, output: &Tensor, target: &Target) -> Result<LossParts> {
        let l = self.0.loss(output, &target.value)?;
        let l = self.checked(l, output, "loss")?;
        let weight = Tensor::ones_like(&l.detach());
        Ok(LossParts { sum: l, weight })
    }

    /// `[B]` metric values, checked like the loss.
    ///
    /// # Errors
    /// See [`Custom::loss`].
    pub fn metric(&self, output: &Tensor, target: &Target) -> Result<Tensor> {
        let m = self.0.metric(output, &target.value)?;
        self.checked(m, output, "metric")
    }

    fn checked(&self, t: Tensor, output: &Tensor, what: &str) -> Result<Tensor> {
        let batch = output.size().first().copied().unwrap_or(0);
        let name = self.0.name();
        if t.size() != [batch] {
            return Err(Error::Shape {
                what: format!("the {what} of task `{name}`"),
                expected: format!("[{batch}] (one value per sample)"),
                got: format!("{:?}; return per-sample values, e.g. `.flatten(1).mean(1)`, not their mean", t.size()),
            });
        }
        if !t.is_floating_point() {
            return Err(Error::config(
                format!("the {what} of task `{name}`"),
                format!("is a {:?} tensor; it must be floating point", t.kind()),
            ));
        }
        Ok(t)
    }
}

/// The dataset-level metric of a custom task: the mean of its per-sample values.
#[derive(Debug, Clone)]
pub struct CustomMetric {
    name: String,
    higher_is_better: bool,
    sum: f64,
    count: f64,
}

impl CustomMetric {
    /// An empty accumulator for `task`.
    pub fn new(task: &Custom) -> Self {
        CustomMetric { name: task.0.metric_name(), higher_is_better: task.0.higher_is_better(), sum: 0.0, count: 0.0 }
    }

    /// Adds `[B]` per-sample values.
    ///
    /// # Errors
    /// A device-to-host copy that fails.
    pub fn add(&mut self, values: &Tensor) -> Result<()> {
        self.sum += f64::try_from(values.sum(Kind::Double))?;
        self.count += values.size()[0] as f64;
        Ok(())
    }

    /// The mean over every sample added.
    pub fn finish(&self) -> Vec<MetricValue> {
        vec![MetricValue::new(&self.name, self.sum / self.count, self.higher_is_better)]
    }
}
