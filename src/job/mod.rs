//! One robustness job as a library call: open a dataset split, evaluate a model clean and under
//! a list of attacks, and return the record — optionally writing it, with the adversarial
//! batches and previews, into an output directory ([`OutputDir`]). `mtrobust attack`/`eval`,
//! the demo and the tests all go through [`run`]; the study runner uses the same pieces.
//!
//! ```
//! use mtrobust::attack::{Attack, AttackConfig, DirectionSpec, Rule};
//! use mtrobust::job::{DataSpec, Job};
//! use mtrobust::model::Model;
//! # use mtrobust::model::{BackboneKind, HeadConfig, ModelConfig, layout_at};
//! # let dir = std::env::temp_dir().join(format!("mtrobust-doc-job-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! # let synth = mtrobust::data::synth::export::SynthOptions { n: 10, size: 16, seed: 7, test_fraction: 0.2 };
//! # mtrobust::data::synth::export::write_dataset(&dir.join("data"), &synth, &mut mtrobust::observe::Silent)?;
//! # let config = ModelConfig { backbone: BackboneKind::Small, tasks: mtrobust::task::parse_tasks("segm:10,depth,normal")?,
//! #     layout: layout_at(3, 5, 0)?, head: HeadConfig { width: 8, rates: vec![1], dropout: 0.0 } };
//! # Model::new(config, mtrobust::data::InputSpace::reference(), tch::Device::Cpu, 0)?.save(&dir.join("model.safetensors"), None)?;
//! // A trained checkpoint, and `mtrobust data synth` output.
//! let (model_path, data) = (dir.join("model.safetensors"), dir.join("data"));
//! let (model, _) = Model::load(&model_path, tch::Device::cuda_if_available())?;
//! let attack = Attack::new(AttackConfig { rule: Rule::default(), direction: DirectionSpec::Gbmta, eps: 8.0, ..Default::default() })?;
//! let job = Job::new(&model, &model_path, DataSpec::new(data), vec![attack]);
//! let record = mtrobust::job::run(&job, &mut mtrobust::observe::Silent, None)?;
//! let gbmta = &record.evaluation.attacked[0];
//! println!("{}: ARP {:.2}", gbmta.label, gbmta.arp.as_ref().unwrap().arp);
//! assert_eq!(record.evaluation.clean.samples, 2);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mtrobust::Error>(())
//! ```
mod outputs;
pub mod record;

pub use outputs::OutputDir;
pub use record::RunRecord;

use crate::attack::Attack;
use crate::data::{Dataset, Loader, Mode, Sizes};
use crate::error::Result;
use crate::eval::{AdversarialSink, EvalOptions, evaluate};
use crate::model::{Model, Network};
use crate::observe::{Event, Observer};
use crate::task::{Convention, MetricProfile, Task, TaskKind};
use std::path::{Path, PathBuf};

/// Which data a job reads and how.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Dataset directory (NYUv2, Tiny-Taskonomy, or `mtrobust data synth` output).
    pub path: PathBuf,
    /// Split to evaluate.
    #[serde(default = "default_split")]
    pub split: String,
    /// At most this many samples (all when absent).
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// NYUv2: square input size; Taskonomy: the first resize.
    #[serde(default)]
    pub resize: Option<usize>,
    /// Taskonomy: the final crop.
    #[serde(default)]
    pub crop: Option<usize>,
}

fn default_split() -> String {
    "test".into()
}

fn default_batch_size() -> usize {
    16
}

impl DataSpec {
    /// The test split of `path`, batches of 16, every sample.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSpec { path: path.into(), split: default_split(), limit: None, batch_size: default_batch_size(), resize: None, crop: None }
    }

    /// Opens the split for evaluation.
    ///
    /// # Errors
    /// A missing or malformed dataset.
    pub fn open(&self) -> Result<Dataset> {
        crate::data::open(&self.path, &self.split, Mode::Test, Sizes { resize: self.resize, crop: self.crop })
    }

    /// `path:split`, as reports name the data.
    pub fn label(&self) -> String {
        format!("{}:{}", self.path.display(), self.split)
    }
}

/// The data of a model, opened for evaluation: the tasks with the data's class weights, the
/// metric profile, and the batches.
pub struct OpenedData {
    pub tasks: Vec<Task>,
    pub profile: MetricProfile,
    pub loader: Loader,
}

impl std::fmt::Debug for OpenedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedData").field("tasks", &self.tasks.len()).field("loader", &self.loader).finish()
    }
}

/// Opens `data` for `model`: checks that the data has every task of the model.
///
/// # Errors
/// A missing dataset, or tasks and class counts that do not match the model.
pub fn open_for(model: &Model, data: &DataSpec) -> Result<OpenedData> {
    let dataset = data.open()?;
    let specs = model.tasks();
    let tasks = dataset.tasks_for(specs)?;
    let kinds: Vec<TaskKind> = specs.iter().map(|s| s.kind).collect();
    let profile = dataset.default_profile();
    let loader = Loader::new(dataset, kinds, data.batch_size, data.limit)?;
    if !model.has_task_paths() {
        check_on_data(model, &loader)?;
    }
    Ok(OpenedData { tasks, profile, loader })
}

/// What to evaluate.
#[derive(Debug)]
pub struct Job<'a> {
    pub model: &'a Model,
    /// Where the checkpoint came from (recorded in the report).
    pub model_path: PathBuf,
    pub data: DataSpec,
    pub attacks: Vec<Attack>,
    /// Metric profile (default: the data's own).
    pub metrics: Option<MetricProfile>,
    pub convention: Convention,
}

impl<'a> Job<'a> {
    /// A job with the standard convention and the data's metric profile.
    pub fn new(model: &'a Model, model_path: impl AsRef<Path>, data: DataSpec, attacks: Vec<Attack>) -> Self {
        Job { model, model_path: model_path.as_ref().to_path_buf(), data, attacks, metrics: None, convention: Convention::Standard }
    }

    /// Checks the model against the data without running anything: the data has the model's
    /// tasks, and a TorchScript model gives what its spec promises on the first batch. Call it
    /// before writing anything; [`run`] checks the same.
    ///
    /// # Errors
    /// See [`open_for`].
    pub fn check(&self) -> Result<()> {
        open_for(self.model, &self.data).map(|_| ())
    }

    /// A digest of everything that changes the job's numbers: the checkpoint's contents (and a
    /// TorchScript model's spec), the data and how it is read, every attack parameter, the metric
    /// options, and the model's precision when it is not fp32.
    ///
    /// # Errors
    /// An unreadable checkpoint file.
    pub fn identity(&self) -> Result<String> {
        let mut weights = crate::digest::files_digest(&[&self.model_path])?;
        if let Some(s) = self.model.script() {
            // The spec changes the numbers too (input normalisation, which output is which task).
            weights = crate::digest::json_digest(&(weights, s.spec()));
        }
        let attacks: Vec<_> = self.attacks.iter().map(|a| &a.config).collect();
        let precision = self.model.precision();
        if precision.is_default() {
            // fp32 adds nothing, so runs stored before `--precision` existed keep their identity.
            Ok(crate::digest::json_digest(&(weights, &self.data, attacks, self.metrics, self.convention)))
        } else {
            Ok(crate::digest::json_digest(&(weights, &self.data, attacks, self.metrics, self.convention, precision)))
        }
    }
}

/// Checks a TorchScript model on the first batch of `loader` and on its first sample alone (a
/// module traced for one batch size fails on the last, smaller batch otherwise).
fn check_on_data(model: &Model, loader: &Loader) -> Result<()> {
    if crate::data::BatchSource::num_batches(loader) == 0 {
        return Ok(());
    }
    let batch = crate::data::BatchSource::batch(loader, 0, model.device())?;
    model.check_on(&batch.x)?;
    if batch.x.size()[0] > 1 { model.check_on(&batch.x.narrow(0, 0, 1)) } else { Ok(()) }
}

/// A model's description for reports: `backbone #index layout`, or `torchscript FILE`.
pub fn describe(model: &Model) -> String {
    let c = match &model.net {
        Network::Tree(t) => t.config(),
        Network::Script(s) => return format!("torchscript {}", s.path().file_name().unwrap_or_default().to_string_lossy()),
        Network::External(n) => return n.name(),
    };
    match model.layout_index {
        Some(i) => format!("{} #{i} {}", c.backbone.name(), c.layout),
        None => format!("{} {}", c.backbone.name(), c.layout),
    }
}

/// Runs `job`: the clean pass and every attack over the data; `sink` receives each adversarial
/// batch (see [`OutputDir::sink`]).
///
/// # Errors
/// Data errors, tasks that do not match the model, or an attack that cannot run.
pub fn run(job: &Job, observer: &mut dyn Observer, sink: Option<&mut AdversarialSink>) -> Result<RunRecord> {
    let opened = open_for(job.model, &job.data)?;
    for attack in &job.attacks {
        let c = &attack.config;
        let eps = crate::attack::fmt_eps(c.eps);
        observer.event(Event::Info(format!(
            "{}: ε = {eps} grey levels = {eps}/255 of the pixel range ({})",
            c.label(),
            crate::attack::norm_id(c.norm)
        )));
    }
    if job.model.script().is_some() && job.attacks.iter().any(|a| matches!(a.config.direction, crate::attack::DirectionSpec::Single(_))) {
        observer.event(Event::Info(
            "a TorchScript model has no per-task path: Single-x attacks run its full forward and use one task's loss".into(),
        ));
    }
    let architecture = describe(job.model);
    observer.event(Event::Info(format!(
        "evaluating {architecture} on {} samples of {}",
        crate::data::BatchSource::num_samples(&opened.loader),
        job.data.label()
    )));
    let started = std::time::Instant::now();
    let options = EvalOptions { profile: job.metrics.unwrap_or(opened.profile), convention: job.convention };
    let evaluation = evaluate(job.model, &opened.tasks, &opened.loader, &job.attacks, options, observer, sink)?;
    Ok(RunRecord::new(
        crate::device::device_name(job.model.device()),
        job.model_path.display().to_string(),
        architecture,
        job.data.label(),
        started.elapsed().as_secs_f64(),
        evaluation,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Precision;
    use crate::testutil::{small_model, three_tasks};

    #[test]
    fn precision_enters_the_identity_only_when_not_fp32() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.safetensors");
        let mut model = small_model(&three_tasks(), 0, 0);
        model.save(&path, None).unwrap();
        let data = DataSpec::new("data");
        let id = |m: &Model| Job::new(m, &path, data.clone(), Vec::new()).identity().unwrap();
        // fp32: exactly the digest runs had before precision existed.
        let weights = crate::digest::files_digest(&[&path]).unwrap();
        let attacks: Vec<&crate::attack::AttackConfig> = Vec::new();
        let before = crate::digest::json_digest(&(weights, &data, attacks, None::<MetricProfile>, Convention::Standard));
        assert_eq!(id(&model), before);
        model.set_precision(Precision::Bf16).unwrap();
        let bf16 = id(&model);
        model.set_precision(Precision::Tf32).unwrap();
        assert!(bf16 != before && id(&model) != before && id(&model) != bf16);
    }
}
