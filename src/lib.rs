//! # mtrobust — adversarial robustness of multi-task vision models
//!
//! The pipeline, folder by folder:
//! - [`data`]: samples and batches (input + per-task target + validity mask), dataset readers;
//! - [`model`]: TreeMTL layouts, backbones as fine blocks, ASPP heads, the branched [`model::TreeNet`];
//! - [`task`]: per-task losses (pooled and per-sample) and dataset-level metrics;
//! - [`attack`]: step rules (FGSM, PGD, APGD, Auto-SAGE, Square) × directions (Single, Total, SignTotal, GB-MTA);
//! - [`eval`]: clean baseline, attacked metrics, ARP and transferability;
//! - [`job`]: one model × data × attacks as a library call, with its output directory;
//! - [`study`]: many models × attacks × ε × seeds, resumable, into a SQLite results store;
//! - [`train`]: clean and adversarial (FAT) multi-task training;
//! - [`report`]: tables, CSV/JSON, the paper's tables and figures from a results store;
//! - [`bench`](mod@bench): each attack's iteration against the forward + input-backward floor.
//!
//! Around them: [`error`] (one error type, causes kept as sources), [`warning`], [`observe`]
//! (progress and warnings as events), [`files`] (atomic writes, locks), [`digest`], [`rng`], [`device`].
//! Each module's documentation opens with a runnable example.
//!
//! Tensors and autodiff come from `tch` (libtorch 2.11).
pub mod attack;
pub mod bench;
pub mod data;
pub mod device;
pub mod digest;
pub mod error;
pub mod eval;
pub mod files;
pub mod job;
pub mod model;
pub mod observe;
pub mod report;
pub mod rng;
pub mod study;
pub mod task;
#[cfg(test)]
pub(crate) mod testutil;
pub mod train;
pub mod warning;

pub use attack::{Attack, AttackConfig, BatchContext, DirectionSpec, Norm, Rule, RuleKind};
pub use data::{Dataset, Loader};
pub use error::{Error, Result};
pub use eval::{EvalOptions, Evaluation, evaluate};
pub use job::{DataSpec, Job};
pub use model::{Model, ModelConfig, Precision};
pub use study::{Store, StudyFile};
pub use task::{Convention, MetricProfile, Task, TaskKind, TaskSpec};
pub use warning::Warning;
