//! Multi-task training: clean training of any layout, and multi-task adversarial training (FAT)
//! with any attack × direction of the attack suite.
//!
//! One step: draw the step's batch (a pure function of seed and step), optionally replace it by
//! adversarial examples generated against the current model **in eval mode** (batch-norm
//! statistics untouched), then one optimiser step on `Σ_t w_t L_t` (pooled batch means) in train
//! mode, optionally mixed with the clean loss. Dropout draws from libtorch's generator seeded per
//! step, so a run resumed from a checkpoint continues exactly as an uninterrupted one.
//!
//! Output directory: `model.safetensors` + `model.json` (an ordinary checkpoint, refreshed at every
//! checkpoint), `checkpoints/step-N/` (model, optimiser state, `state.json`) with `checkpoints/latest`
//! naming the newest complete one, and `log.jsonl` (training losses and validation metrics).
//!
//! ```
//! use mtrobust::data::{InputSpace, Loader, Mode, Sizes, open};
//! use mtrobust::data::synth::export::{SynthOptions, write_dataset};
//! use mtrobust::eval::EvalOptions;
//! use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
//! use mtrobust::task::{Task, parse_tasks};
//! use mtrobust::train::{RunDir, TrainConfig, TrainData, train};
//!
//! let dir = std::env::temp_dir().join(format!("mtrobust-doc-train-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! write_dataset(&dir.join("data"), &SynthOptions { n: 10, size: 16, seed: 7, test_fraction: 0.2 }, &mut mtrobust::observe::Silent)?;
//! let specs = parse_tasks("segm:10,depth")?;
//! let tasks: Vec<Task> = specs.iter().map(|s| Task::new(*s)).collect();
//! let head = HeadConfig { width: 8, rates: vec![1], dropout: 0.0 };
//! let config = ModelConfig { backbone: BackboneKind::Small, tasks: specs, layout: layout_at(2, 5, 0)?, head };
//! let mut model = Model::new(config, InputSpace::reference(), tch::Device::Cpu, 0)?;
//!
//! let kinds = tasks.iter().map(|t| t.kind()).collect::<Vec<_>>();
//! let data = Loader::new(open(&dir.join("data"), "train", Mode::Train, Sizes::default())?, kinds, 4, None)?;
//! let out = dir.join("run");
//! let on = TrainData { tasks: &tasks, samples: &data, validation: None, eval_options: EvalOptions::default() };
//! let summary = train(&mut model, on, &TrainConfig::new(2, 3, 4), RunDir { path: &out, restart: false }, None, &mut mtrobust::observe::Silent)?;
//! assert_eq!(summary.steps, 3);
//! assert!(out.join("model.safetensors").exists()); // a checkpoint every command reads
//! // The same command again finds the finished run and does not train twice.
//! let again = train(&mut model, on, &TrainConfig::new(2, 3, 4), RunDir { path: &out, restart: false }, None, &mut mtrobust::observe::Silent)?;
//! assert_eq!(again.resumed_from, 3);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod optimizer;
pub mod sampler;
pub mod schedule;

pub use optimizer::{Optimizer, OptimizerConfig, OptimizerKind};
pub use schedule::Schedule;

use crate::attack::{Attack, AttackConfig, BatchContext};
use crate::data::{BatchSource, SampleSource};
use crate::error::{Error, Result};
use crate::eval::{EvalOptions, evaluate};
use crate::model::{Model, checkpoint};
use crate::observe::{Event, Observer};
use crate::task::{MetricValue, Task, TaskMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Kind;

/// Adversarial training: which examples the model is trained on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarialTraining {
    /// The attack that makes each mini-batch's examples (its seed is derived per step).
    pub attack: AttackConfig,
    /// Weight of the clean loss: `λ·L(x) + (1 − λ)·L(x_adv)`; 0 = adversarial examples only (FAT).
    pub clean_weight: f64,
    /// FAT's τ schedule: τ grows linearly from this value to the attack's τ over training.
    pub tau_start: Option<usize>,
}

/// Everything that defines a training run (resuming requires the same configuration).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub optimizer: OptimizerConfig,
    /// Loss weight of each task, in model task order.
    pub task_weights: Vec<f64>,
    /// Log training losses every this many steps.
    pub log_every: usize,
    /// Validate every this many steps (0 = only at the end).
    pub val_every: usize,
    /// Checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: usize,
    pub seed: u64,
    pub adversarial: Option<AdversarialTraining>,
}

impl TrainConfig {
    /// A plain configuration for `n_tasks` tasks: SGD, lr 0.01, poly schedule.
    pub fn new(n_tasks: usize, steps: usize, batch_size: usize) -> Self {
        TrainConfig {
            steps,
            batch_size,
            lr: 0.01,
            schedule: Schedule::Poly { power: 0.9 },
            optimizer: OptimizerConfig::default(),
            task_weights: vec![1.0; n_tasks],
            log_every: 10,
            val_every: 0,
            checkpoint_every: 0,
            seed: 0,
            adversarial: None,
        }
    }

    fn check(&self, n_tasks: usize) -> Result<()> {
        if self.steps == 0 || self.batch_size == 0 {
            return Err(Error::parameter("steps/batch_size", "both must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::parameter("lr", format!("{} is not a positive learning rate", self.lr)));
        }
        if self.task_weights.len() != n_tasks || self.task_weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::parameter("task_weights", format!("give {n_tasks} non-negative weights, one per task in model order")));
        }
        let o = &self.optimizer;
        // A NaN hyper-parameter would surface only as "the loss became NaN", blaming --lr.
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(Error::parameter("momentum", format!("{} must be in [0, 1) (0.9 is usual)", o.momentum)));
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            return Err(Error::parameter("beta1", format!("Adam's β₁ = {} and β₂ = {} must be in [0, 1)", o.beta1, o.beta2)));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(Error::parameter("weight_decay", format!("{} must be a finite number ≥ 0", o.weight_decay)));
        }
        if let Some(a) = &self.adversarial {
            a.attack.check()?;
            if !(0.0..=1.0).contains(&a.clean_weight) {
                return Err(Error::parameter("clean_weight", "must be in [0, 1]"));
            }
        }
        Ok(())
    }

    /// The attack of step `step` (seed and τ of that step).
    fn attack_at(&self, step: usize) -> Option<AttackConfig> {
        let adv = self.adversarial.as_ref()?;
        let mut cfg = adv.attack.clone();
        cfg.seed = crate::rng::derive_seed(self.seed, &[3, step as u64]);
        if let (crate::attack::Rule::Pgd(crate::attack::Pgd { early_stop: Some(es), .. }), Some(t0)) = (&mut cfg.rule, adv.tau_start) {
            let t1 = es.tau as f64;
            es.tau = (t0 as f64 + (t1 - t0 as f64) * step as f64 / self.steps.max(1) as f64).floor() as usize;
        }
        Some(cfg)
    }
}

/// `checkpoints/step-N/state.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainState {
    config: TrainConfig,
    /// Steps completed.
    step: usize,
    /// Optimiser steps taken (Adam's bias correction).
    optimizer_t: u64,
    /// Per task, the training-loss sum and count of the log window still open at `step`, so the
    /// first log line after a resume averages the same steps as an uninterrupted run's.
    #[serde(default)]
    window: Vec<(f64, usize)>,
    /// Seconds of training before `step` (the log's clock continues from it).
    #[serde(default)]
    seconds: f64,
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub step: usize,
    pub lr: f64,
    /// Mean pooled training loss per task since the last log line (on the examples trained on).
    pub loss: Option<TaskMap<f64>>,
    /// Validation metrics.
    pub val: Option<TaskMap<Vec<MetricValue>>>,
    pub seconds: f64,
}

/// What a run reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainSummary {
    /// Steps completed (less than configured when interrupted).
    pub steps: usize,
    /// True when the run stopped early on request; rerunning the same command resumes it.
    pub interrupted: bool,
    /// Step the run started from (0, or the checkpoint it resumed).
    pub resumed_from: usize,
    pub seconds: f64,
    pub last_loss: Option<TaskMap<f64>>,
    pub validation: Option<TaskMap<Vec<MetricValue>>>,
}

const LATEST: &str = "latest";

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// The newest complete checkpoint of a run directory, if any.
fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    let pointer = checkpoints_dir(out).join(LATEST);
    match std::fs::read_to_string(&pointer) {
        Ok(name) => Ok(Some(checkpoints_dir(out).join(name.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(pointer, e)),
    }
}

/// Writes `checkpoints/step-N/`, then points `latest` at it (atomic rename), then removes older ones.
fn save_checkpoint(out: &Path, model: &Model, opt: &Optimizer, state: &TrainState, provenance: &serde_json::Value) -> Result<()> {
    let dir = checkpoints_dir(out);
    let name = format!("step-{:07}", state.step);
    let ck = dir.join(&name);
    std::fs::create_dir_all(&ck).map_err(|e| Error::io(&ck, e))?;
    model.save(&ck.join("model.safetensors"), Some(provenance.clone()))?;
    opt.save(&ck.join("optimizer.safetensors"))?;
    crate::files::write_bytes_atomic(&ck.join("state.json"), serde_json::to_string_pretty(state).expect("serialisable"))?;
    crate::files::write_bytes_atomic(&dir.join(LATEST), &name)?;
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?.flatten() {
        let n = entry.file_name().to_string_lossy().to_string();
        if n.starts_with("step-") && n != name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    // The run's ordinary checkpoint, usable by `mtrobust attack` at any time.
    model.save(&out.join("model.safetensors"), Some(provenance.clone()))
}

/// Refuses to train into a directory holding a model that no checkpoint of a run explains (a
/// `model init` output, a copied checkpoint): training would overwrite it.
fn refuse_foreign_model(out: &Path) -> Result<()> {
    let weights = out.join("model.safetensors");
    if let Some(found) = [&weights, &checkpoint::sidecar_path(&weights)].into_iter().find(|p| p.exists()) {
        return Err(Error::parameter(
            "out",
            format!(
                "{} holds {} but no checkpoints/ of a run to resume; training would overwrite it: use another output directory, or restart (--restart) to replace it",
                out.display(),
                found.display()
            ),
        ));
    }
    Ok(())
}

/// Keeps the lines of `log.jsonl` up to step `keep` (the checkpoint resumed from; 0 = none): a
/// run killed after its last checkpoint logged steps it will train again.
fn truncate_log(path: &Path, keep: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let kept: String =
        text.lines().filter(|l| serde_json::from_str::<LogLine>(l).is_ok_and(|line| line.step <= keep)).map(|l| format!("{l}\n")).collect();
    if kept == text {
        return Ok(());
    }
    crate::files::write_bytes_atomic(path, kept)
}

/// The error for a loss that became NaN or infinite: before any update the weights or data are
/// at fault, afterwards the run diverged.
fn diverged(task: &Task, value: f64, step: usize, start: usize) -> Error {
    let name = task.kind().name();
    if step == start {
        Error::non_finite(
            format!("training: the {name} loss"),
            format!(
                "is {value} at step {step}, before this session updated any weight, so the learning rate is not the cause: \
                 the starting weights or the data hold NaN or infinite values"
            ),
        )
    } else {
        Error::Diverged { step, detail: format!("the {name} loss became {value}; lower the learning rate (lr)") }
    }
}

/// What a run trains on.
#[derive(Clone, Copy)]
pub struct TrainData<'a> {
    /// The model's tasks (with their class weights).
    pub tasks: &'a [Task],
    /// The training samples; each step draws its own batch from them.
    pub samples: &'a dyn SampleSource,
    /// Validated every `val_every` steps and at the end, when given.
    pub validation: Option<&'a dyn BatchSource>,
    /// How validation metrics are computed.
    pub eval_options: EvalOptions,
}

/// Where a run writes: `path`, and whether a run of another configuration found there is
/// replaced (`restart`) instead of refused.
#[derive(Debug, Clone, Copy)]
pub struct RunDir<'a> {
    pub path: &'a Path,
    pub restart: bool,
}

/// Trains `model` in place, writing to `out`. If `out` holds a checkpoint of the same
/// configuration, training resumes from it; a checkpoint of another configuration is an error
/// unless `out.restart` is set. When `cancel` becomes true the run checkpoints the finished steps
/// and returns (`interrupted`).
///
/// # Errors
/// Invalid configuration, data errors, I/O failures, a mismatching checkpoint, or a loss that
/// became NaN or infinite ([`Error::Diverged`], [`Error::NonFinite`]).
pub fn train(
    model: &mut Model,
    data: TrainData,
    config: &TrainConfig,
    out: RunDir,
    cancel: Option<&std::sync::atomic::AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    check_run(model, data, config)?;
    std::fs::create_dir_all(out.path).map_err(|e| Error::io(out.path, e))?;
    let mut opt = Optimizer::new(&model.vs, config.optimizer);
    let resumed = resume(model, &mut opt, config, out, observer)?;
    let start = resumed.as_ref().map_or(0, |s| s.step);
    let log_path = out.path.join("log.jsonl");
    truncate_log(&log_path, start)?;
    let mut log = crate::files::open_append(&log_path)?;
    let provenance = serde_json::json!({ "training": config });
    let clock = Clock { before: resumed.as_ref().map_or(0.0, |s| s.seconds), started: std::time::Instant::now() };
    let mut window = LossWindow::new(data.tasks, resumed.as_ref());
    let (mut last_loss, mut validation_result) = (None, None);
    observer.event(Event::Start { what: "train".into(), total: config.steps as u64 });
    observer.event(Event::Progress { done: start as u64, message: String::new() });
    let (mut done_steps, mut saved_at) = (start, start);
    let checkpoint = |model: &Model, opt: &Optimizer, step: usize, window: &LossWindow| {
        let state = TrainState { config: config.clone(), step, optimizer_t: opt.t, window: window.sums.clone(), seconds: clock.seconds() };
        save_checkpoint(out.path, model, opt, &state, &provenance)
    };
    for step in start..config.steps {
        if cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst)) {
            break;
        }
        let lr = config.schedule.rate(config.lr, step, config.steps);
        let losses = train_step(model, &mut opt, data, config, step, lr)?;
        window.add(&losses, step, start)?;
        let done = step + 1;
        let is_last = done == config.steps;
        let mut line = LogLine { step: done, lr, loss: None, val: None, seconds: clock.seconds() };
        if done % config.log_every.max(1) == 0 || is_last {
            let mean = window.take_mean();
            line.loss = Some(mean.clone());
            last_loss = Some(mean);
        }
        if let Some(val) = data.validation
            && ((config.val_every > 0 && done % config.val_every == 0) || is_last)
        {
            let e = evaluate(model, data.tasks, val, &[], data.eval_options, &mut crate::observe::Silent, None)?;
            line.val = Some(e.clean.metrics.clone());
            validation_result = Some(e.clean.metrics);
        }
        if line.loss.is_some() || line.val.is_some() {
            let text = serde_json::to_string(&line).expect("serialisable");
            writeln!(log, "{text}").map_err(|e| Error::io(&log_path, e))?;
        }
        if (config.checkpoint_every > 0 && done % config.checkpoint_every == 0) || is_last {
            checkpoint(model, &opt, done, &window)?;
            saved_at = done;
        }
        done_steps = done;
        let message = last_loss
            .as_ref()
            .map_or(String::new(), |l: &TaskMap<f64>| l.iter().map(|(k, v)| format!("{} {v:.3}", k.short())).collect::<Vec<_>>().join(" "));
        observer.event(Event::Progress { done: done as u64, message });
    }
    let interrupted = done_steps < config.steps;
    if interrupted && saved_at < done_steps {
        checkpoint(model, &opt, done_steps, &window)?;
    }
    observer.event(Event::Finish);
    Ok(TrainSummary {
        steps: done_steps,
        interrupted,
        resumed_from: start,
        seconds: clock.started.elapsed().as_secs_f64(),
        last_loss,
        validation: validation_result,
    })
}

/// The run's checks before anything is written: the configuration, a batch the data can fill,
/// and a model with variables (a TorchScript or external network has none to train).
fn check_run(model: &Model, data: TrainData, config: &TrainConfig) -> Result<()> {
    config.check(data.tasks.len())?;
    // Sampling more items than the split holds only repeats them, and the batch tensor grows without bound.
    let available = data.samples.num_samples();
    if config.batch_size > available {
        return Err(Error::parameter(
            "batch_size",
            format!("{} is larger than the {available} training samples; use at most {available}", config.batch_size),
        ));
    }
    model.tree()?;
    Ok(())
}

/// Loads the run directory's newest checkpoint into `model` and `opt` when it is of the same
/// configuration (its state is returned); discards one of another configuration with `restart`,
/// refuses it otherwise; refuses a model file that no checkpoint explains.
fn resume(
    model: &mut Model,
    opt: &mut Optimizer,
    config: &TrainConfig,
    out: RunDir,
    observer: &mut dyn Observer,
) -> Result<Option<TrainState>> {
    let Some(ck) = latest_checkpoint(out.path)? else {
        if !out.restart {
            refuse_foreign_model(out.path)?;
        }
        // Only a run's own files may be there: a log of a run that never reached a checkpoint.
        let ours = |p: &Path| {
            p.file_name().is_some_and(|n| ["log.jsonl", "checkpoints", "model.safetensors", "model.json"].contains(&&*n.to_string_lossy()))
        };
        crate::files::refuse_foreign_entries(out.path, ours)?;
        return Ok(None);
    };
    let state_path = ck.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainState = serde_json::from_str(&text)
        .map_err(|e| Error::context(format!("checkpoint {}: malformed training state", state_path.display()), e))?;
    if state.config != *config {
        if !out.restart {
            return Err(Error::parameter(
                "out",
                format!(
                    "{} holds a run with another configuration (see {}); use another output directory, or restart (--restart) to discard it",
                    out.path.display(),
                    state_path.display()
                ),
            ));
        }
        let _ = std::fs::remove_dir_all(checkpoints_dir(out.path));
        let _ = std::fs::remove_file(out.path.join("log.jsonl"));
        return Ok(None);
    }
    checkpoint::load_weights(&mut model.vs, &ck.join("model.safetensors"), "the run directory's checkpoint")?;
    opt.load(&ck.join("optimizer.safetensors"))?;
    opt.t = state.optimizer_t;
    observer.event(Event::Info(format!("resuming from step {} ({})", state.step, ck.display())));
    Ok(Some(state))
}

/// Seconds of training, continuing the clock of the run resumed.
struct Clock {
    before: f64,
    started: std::time::Instant,
}

impl Clock {
    fn seconds(&self) -> f64 {
        self.before + self.started.elapsed().as_secs_f64()
    }
}

/// The training losses of the log window still open: per task, their sum and count.
struct LossWindow<'a> {
    tasks: &'a [Task],
    sums: Vec<(f64, usize)>,
}

impl<'a> LossWindow<'a> {
    /// An empty window, or the open window of the checkpoint resumed from.
    fn new(tasks: &'a [Task], resumed: Option<&TrainState>) -> Self {
        let sums = match resumed {
            Some(s) if s.window.len() == tasks.len() => s.window.clone(),
            _ => vec![(0.0, 0); tasks.len()],
        };
        LossWindow { tasks, sums }
    }

    /// Adds a step's per-task losses.
    ///
    /// # Errors
    /// A NaN or infinite loss: diverged training, or broken weights or data at the session's first step.
    fn add(&mut self, losses: &TaskMap<f64>, step: usize, start: usize) -> Result<()> {
        for ((slot, v), task) in self.sums.iter_mut().zip(losses.values()).zip(self.tasks) {
            if !v.is_finite() {
                return Err(diverged(task, *v, step, start));
            }
            slot.0 += v;
            slot.1 += 1;
        }
        Ok(())
    }

    /// The window's mean loss per task; the window starts again.
    fn take_mean(&mut self) -> TaskMap<f64> {
        let mean = self.tasks.iter().zip(&self.sums).map(|(t, (s, n))| (t.kind(), s / (*n).max(1) as f64)).collect();
        self.sums.iter_mut().for_each(|r| *r = (0.0, 0));
        mean
    }
}

/// One optimiser step: the step's batch, its adversarial examples when the run is adversarial
/// (made in eval mode), the weighted task losses in train mode (mixed with the clean ones when
/// asked), one update. Returns the per-task losses of the examples trained on.
fn train_step(model: &mut Model, opt: &mut Optimizer, data: TrainData, config: &TrainConfig, step: usize, lr: f64) -> Result<TaskMap<f64>> {
    let items = sampler::step_items(data.samples.num_samples(), config.batch_size, config.seed, step);
    let batch = data.samples.samples(&items, model.device())?;
    let x_adv = match config.attack_at(step) {
        Some(cfg) => Some(Attack::new(cfg)?.run(model, data.tasks, &batch, BatchContext::at(step as u64))?.x_adv),
        None => None,
    };
    // Dropout draws from libtorch's generator, seeded per step so that a resumed run repeats it.
    let _rng = crate::rng::torch_rng(crate::rng::derive_seed(config.seed, &[4, step as u64]));
    let task_losses = |x: &tch::Tensor| -> Result<TaskMap<tch::Tensor>> {
        Ok(crate::task::losses(data.tasks, &model.forward_t(x, true)?, &batch.targets)?.map(|_, p| p.pooled()))
    };
    let weighted = |l: &TaskMap<tch::Tensor>| -> tch::Tensor {
        l.values().zip(&config.task_weights).map(|(v, w)| v * *w).reduce(|a, b| a + b).expect("≥ 1 task")
    };
    let (objective, shown) = match (&x_adv, &config.adversarial) {
        (Some(xa), Some(adv)) if adv.clean_weight > 0.0 => {
            let clean = task_losses(&batch.x)?;
            let attacked = task_losses(xa)?;
            (weighted(&clean) * adv.clean_weight + weighted(&attacked) * (1.0 - adv.clean_weight), attacked)
        }
        (Some(xa), _) => {
            let attacked = task_losses(xa)?;
            (weighted(&attacked), attacked)
        }
        (None, _) => {
            let clean = task_losses(&batch.x)?;
            (weighted(&clean), clean)
        }
    };
    opt.zero_grad();
    objective.f_backward()?;
    opt.step(lr);
    Ok(shown.map(|_, t| f64::try_from(t.detach().to_kind(Kind::Double)).unwrap_or(f64::NAN)))
}

#[cfg(test)]
mod tests;
