//! Planning and running a study. [`plan`] validates everything before any attack runs — every
//! checkpoint loads, the data opens and has the models' tasks, every direction names a task of
//! its model, every attack parameter is in range — and lists the cells. [`run`] then works model
//! by model: the data is decoded once and the clean pass computed once per model, each pending
//! cell is attacked and written to the store in its own transaction, stored cells are skipped.
use super::cell::{Cell, Shard, cell_id};
use super::file::StudyFile;
use super::store::{DatasetRow, ModelRow, NewCell, SampleRow, Store};
use crate::attack::{Attack, AttackConfig, DirectionSpec, Rule};
use crate::data::{BatchSource, Cached};
use crate::error::{Error, Result};
use crate::eval::{CACHE_BYTES, EvalOptions, attack_runs, clean_run, transferability};
use crate::job::{DataSpec, open_for};
use crate::model::{Model, ModelSource};
use crate::observe::{Event, Observer};
use crate::task::TaskKind;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// A model of the study, validated.
#[derive(Debug, Clone)]
pub struct PlannedModel {
    pub row: ModelRow,
    pub path: PathBuf,
    /// The model spec of a TorchScript module.
    pub spec: Option<PathBuf>,
    pub tasks: Vec<TaskKind>,
    /// Its position among the live models given to [`plan_with`] and [`run_with`]; `None` for a
    /// model read from a file.
    pub live: Option<usize>,
}

/// A model the caller holds in memory rather than in a file (a live Python `nn.Module`): the
/// study attacks it like a `[[model]]` entry and stores its cells under `identity`.
pub struct LiveModel {
    /// Its name in the store and in reports (distinct from the file models' names).
    pub name: String,
    /// What identifies its numbers, e.g. a digest of its weights' bytes, its class and a version
    /// the caller gives: the same identity resumes the same cells, a new one starts afresh.
    pub identity: String,
    /// Where it comes from, as the store's `path` column shows it (`python:pkg.Net`).
    pub origin: String,
    /// Stored with the model's row in place of a checkpoint's sidecar.
    pub description: serde_json::Value,
    /// The model; its inputs are the data loaders' (the reference input space).
    pub model: Model,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel").field("name", &self.name).field("identity", &self.identity).finish()
    }
}

/// Everything a study will compute.
#[derive(Debug, Clone)]
pub struct Plan {
    pub data: DataSpec,
    pub dataset: DatasetRow,
    pub options: EvalOptions,
    pub models: Vec<PlannedModel>,
    pub cells: Vec<Cell>,
    /// How the models compute (`[data] precision`).
    pub precision: crate::model::Precision,
}

fn at_model(name: &str, path: &std::path::Path, e: Error) -> Error {
    Error::context(format!("[[model]] `{name}` ({})", path.display()), e)
}

/// Validates `study` and lists its cells (models in file order, then attack blocks, ε, norms,
/// seeds, directions).
///
/// # Errors
/// The first problem found, naming the study entry it comes from.
pub fn plan(study: &StudyFile) -> Result<Plan> {
    plan_with(study, &[])
}

/// [`plan`] for the study's file models followed by `live` models held in memory.
///
/// # Errors
/// See [`plan`]; also no model at all, or a live model whose name or identity another model has.
pub fn plan_with(study: &StudyFile, live: &[LiveModel]) -> Result<Plan> {
    if study.models.is_empty() && live.is_empty() {
        return Err(Error::config("study", "no model: add a [[model]] entry or pass live models"));
    }
    let spec = study.data.spec();
    let dataset = spec.open().map_err(|e| Error::context("[data]", e))?;
    let samples = spec.limit.map_or(dataset.reader.len(), |l| l.min(dataset.reader.len()));
    if samples == 0 {
        return Err(Error::config("[data]", format!("split `{}` of {} has no samples", spec.split, spec.path.display())));
    }
    let names: Vec<&str> = (0..samples).map(|i| dataset.reader.name(i)).collect();
    let reading = serde_json::json!({
        "format": dataset.format, "split": spec.split, "limit": spec.limit, "batch_size": spec.batch_size,
        "resize": spec.resize, "crop": spec.crop,
    });
    let dataset_row = DatasetRow {
        id: crate::digest::json_digest(&(&reading, &names)),
        path: spec.path.display().to_string(),
        split: spec.split.clone(),
        samples,
        options: reading,
    };
    let options = EvalOptions { profile: study.data.metrics.unwrap_or(dataset.default_profile()), convention: study.data.convention };
    let mut models = Vec::new();
    let mut cells = Vec::new();
    let files = study.checkpoints()?;
    let n_files = files.len();
    let entries = files.into_iter().map(Some).chain(live.iter().map(|_| None)).enumerate();
    for (n, file) in entries {
        let loaded;
        let (name, path, spec_path, model, description, id, live_index) = match file {
            Some((name, source)) => {
                let path = source.path.clone();
                let (model, description) = source.load(Device::Cpu).map_err(|e| at_model(&name, &path, e))?;
                let files = source.files();
                let id = crate::digest::files_digest(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
                loaded = model;
                (name, path, source.spec, &loaded, description, id, None)
            }
            None => {
                let l = &live[n - n_files];
                (l.name.clone(), PathBuf::from(&l.origin), None, &l.model, l.description.clone(), l.identity.clone(), Some(n - n_files))
            }
        };
        if models.iter().any(|m: &PlannedModel| m.row.name == name) {
            return Err(Error::config(format!("model `{name}`"), "another model of the study has this name; give distinct names"));
        }
        let tasks = dataset.tasks_for(model.tasks()).map_err(|e| at_model(&name, &path, e))?;
        if !model.has_task_paths() {
            open_for(model, &spec).map_err(|e| at_model(&name, &path, e))?;
        }
        if let Some(other) = models.iter().find(|m: &&PlannedModel| m.row.id == id) {
            return Err(Error::config(
                format!("[[model]] `{name}`"),
                format!("{} has the same contents as `{}` ({})", path.display(), other.row.name, other.path.display()),
            ));
        }
        let kinds: Vec<TaskKind> = model.tasks().iter().map(|s| s.kind).collect();
        // A TorchScript model has no TreeMTL architecture: `torchscript`, layout `-`, nothing shared.
        let (backbone, layout, shared_stages) = match model.config() {
            Ok(c) => (c.backbone.name().to_string(), c.layout.to_string(), c.layout.shared_prefix()),
            Err(_) => (if model.script().is_some() { "torchscript" } else { "external" }.to_string(), "-".to_string(), 0),
        };
        let row = ModelRow {
            id,
            name: name.clone(),
            path: path.display().to_string(),
            backbone,
            layout,
            layout_index: model.layout_index,
            shared_stages,
            parameters: model.param_count(),
            tasks: kinds.iter().map(|k| k.name().to_string()).collect(),
            sidecar: description,
        };
        let m = models.len();
        for (b, block) in study.attacks.iter().enumerate() {
            let at = format!("[[attack]] #{} ({}) for model `{name}`", b + 1, block.rule.id());
            let mut directions = Vec::new();
            for d in &block.directions {
                if d.trim() == "all" {
                    directions.extend(DirectionSpec::all(&kinds));
                } else {
                    let parsed: DirectionSpec = d.parse().map_err(|e: Error| Error::context(&at, e))?;
                    parsed.build(&tasks).map_err(|e| Error::context(&at, e))?;
                    directions.push(parsed);
                }
            }
            for &eps in &block.eps {
                for &norm in &block.norms {
                    for &seed in &block.seeds {
                        for direction in &directions {
                            let config = AttackConfig {
                                rule: block.rule.clone(),
                                direction: direction.clone(),
                                norm,
                                eps,
                                reduction: block.reduction,
                                seed,
                            };
                            config.check().map_err(|e| Error::context(&at, e))?;
                            let id = study.data.cell_identity(cell_id(&row.id, &dataset_row.id, &config, &options));
                            if !cells.iter().any(|c: &Cell| c.id == id) {
                                cells.push(Cell { id, model: m, config });
                            }
                        }
                    }
                }
            }
        }
        for (b, block) in study.ensembles.iter().enumerate() {
            let at = format!("[[ensemble]] #{} ({}) for model `{name}`", b + 1, block.name);
            let ensemble = block.ensemble(&kinds).map_err(|e| Error::context(&at, e))?;
            let score: DirectionSpec =
                block.score.parse().map_err(|e: Error| Error::context(&at, Error::parameter("score", e.to_string())))?;
            // A member the model cannot run (a Single-x of a task it lacks) is refused here.
            ensemble.check_tasks(&score, &tasks).map_err(|e| Error::context(&at, e))?;
            for &eps in &block.eps {
                for &norm in &block.norms {
                    for &seed in &block.seeds {
                        let config = AttackConfig {
                            rule: Rule::Ensemble(ensemble.clone()),
                            direction: score.clone(),
                            norm,
                            eps,
                            reduction: block.reduction,
                            seed,
                        };
                        config.check().map_err(|e| Error::context(&at, e))?;
                        let id = study.data.cell_identity(cell_id(&row.id, &dataset_row.id, &config, &options));
                        if !cells.iter().any(|c: &Cell| c.id == id) {
                            cells.push(Cell { id, model: m, config });
                        }
                    }
                }
            }
        }
        models.push(PlannedModel { row, path, spec: spec_path, tasks: kinds, live: live_index });
    }
    Ok(Plan { data: spec, dataset: dataset_row, options, models, cells, precision: study.data.precision })
}

/// How to run a plan.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub device: Device,
    /// Only this shard's cells.
    pub shard: Option<Shard>,
    /// Store each sample's per-task losses, clean and adversarial.
    pub per_sample: bool,
}

/// What a run did, with where its time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Cells of this shard in the plan.
    pub cells: usize,
    /// Of those, already stored before this run.
    pub already_done: usize,
    /// Computed and stored now.
    pub computed: usize,
    /// Computed cells whose adversarial inputs failed a sanity check (stored, flagged).
    pub failed_checks: Vec<String>,
    /// Seconds in attacks (the attack passes proper).
    pub attack_seconds: f64,
    /// Seconds in clean passes.
    pub clean_seconds: f64,
    /// Seconds loading models and opening data.
    pub loading_seconds: f64,
    /// Seconds in the store (lookups and writes).
    pub store_seconds: f64,
    /// Σ samples × iterations of the computed cells.
    pub image_iterations: f64,
}

/// Forwards a pass's warnings and infos, not its progress (the study has its own).
struct Quiet<'a>(&'a mut dyn Observer);

impl Observer for Quiet<'_> {
    fn event(&mut self, event: Event) {
        if matches!(event, Event::Warning(_)) {
            self.0.event(event);
        }
    }
}

fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Runs the pending cells of `plan` (this shard's, not yet in `store`).
///
/// # Errors
/// Data, model or store errors. Cells stored before the error stay stored.
pub fn run(plan: &Plan, store: &mut Store, options: RunOptions, observer: &mut dyn Observer) -> Result<Summary> {
    run_with(plan, &mut [], store, options, observer)
}

/// [`run`] for a plan made by [`plan_with`], given the same `live` models in the same order.
///
/// # Errors
/// See [`run`]; also live models that do not match the plan's.
pub fn run_with(
    plan: &Plan,
    live: &mut [LiveModel],
    store: &mut Store,
    options: RunOptions,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let planned_live = plan.models.iter().filter(|m| m.live.is_some()).count();
    if planned_live != live.len() {
        return Err(Error::config("study", format!("the plan has {planned_live} live model(s) but {} were given to run it", live.len())));
    }
    let mut summary = Summary::default();
    let t = Instant::now();
    store.put_dataset(&plan.dataset)?;
    for m in &plan.models {
        store.put_model(&m.row)?;
    }
    let done = store.cell_ids()?;
    let mine: Vec<&Cell> = plan.cells.iter().filter(|c| options.shard.is_none_or(|s| s.owns(&c.id))).collect();
    summary.cells = mine.len();
    let pending: Vec<&Cell> = mine.into_iter().filter(|c| !done.contains(&c.id)).collect();
    summary.already_done = summary.cells - pending.len();
    summary.store_seconds += t.elapsed().as_secs_f64();
    observer.event(Event::Info(format!(
        "{} cells{}: {} stored already, {} to run",
        summary.cells,
        options.shard.map_or(String::new(), |s| format!(" in shard {}/{}", s.index, s.count)),
        summary.already_done,
        pending.len()
    )));
    if !pending.is_empty() {
        observer.event(Event::Start { what: "study".into(), total: pending.len() as u64 });
    }
    let started = Instant::now();
    let mut finished = 0usize;
    for (m, planned) in plan.models.iter().enumerate() {
        let cells: Vec<&&Cell> = pending.iter().filter(|c| c.model == m).collect();
        if cells.is_empty() {
            continue;
        }
        let name = &planned.row.name;
        let t = Instant::now();
        let mut loaded;
        let model: &mut Model = match planned.live {
            Some(i) => {
                let l = &mut live[i];
                if l.identity != planned.row.id {
                    return Err(Error::config(format!("model `{name}`"), "is not the live model the study was planned with"));
                }
                &mut l.model
            }
            None => {
                let source = ModelSource::new(&planned.path, planned.spec.clone());
                loaded = source.load(options.device).map_err(|e| at_model(name, &planned.path, e))?.0;
                // The weights just loaded must be the ones the plan digested: a file replaced since
                // (a training run writing its checkpoint) would put another model's numbers under
                // this model's identity.
                let files = source.files();
                let now = crate::digest::files_digest(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
                if now != planned.row.id {
                    return Err(at_model(
                        name,
                        &planned.path,
                        Error::data(
                            &planned.path,
                            "changed since the study was planned (its digest differs); run the study again to plan it with the new file",
                        ),
                    ));
                }
                &mut loaded
            }
        };
        model.vs.freeze();
        model.set_precision(plan.precision).map_err(|e| at_model(name, &planned.path, e))?;
        // Same values, faster cuDNN kernels (BENCHMARKS.md).
        model.set_channels_last(matches!(options.device, Device::Cuda(_)));
        let model: &Model = model;
        if model.script().is_some() {
            observer.event(Event::Info(format!(
                "model `{name}` is a TorchScript module: no per-task path, so Single-x attacks run its full forward"
            )));
        }
        let opened = open_for(model, &plan.data)?;
        let data = Cached::new(&opened.loader, CACHE_BYTES);
        summary.loading_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut clean = clean_run(model, &opened.tasks, &data, plan.options, &mut Quiet(observer))?;
        summary.clean_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        // Every run measures against the baseline stored first, so all cells of a model share it.
        store.put_clean(&planned.row.id, &plan.dataset.id, &plan.options, &clean.report, t.elapsed().as_secs_f64())?;
        if let Some(stored) = store.clean(&planned.row.id, &plan.dataset.id, &plan.options)? {
            clean.report = stored;
        }
        summary.store_seconds += t.elapsed().as_secs_f64();
        for cell in cells {
            let attack = Attack::new(cell.config.clone())?;
            let t = Instant::now();
            let mut samples: Vec<SampleRow> = Vec::new();
            let mut record = |_: usize, b: usize, batch: &crate::data::Batch, x_adv: &Tensor| -> Result<()> {
                if options.per_sample {
                    per_sample_rows(model, &opened.tasks, &clean, b, batch, x_adv, plan.data.batch_size, &mut samples)?;
                }
                Ok(())
            };
            let (mut reports, _) = attack_runs(
                model,
                &opened.tasks,
                &data,
                &clean,
                std::slice::from_ref(&attack),
                plan.options,
                &mut Quiet(observer),
                Some(&mut record),
            )?;
            let report = reports.remove(0);
            let seconds = t.elapsed().as_secs_f64();
            summary.attack_seconds += seconds;
            let transfer = match (&cell.config.direction, &report.arp) {
                (DirectionSpec::Single(x), Some(a)) => transferability(a, *x),
                _ => None,
            };
            let t = Instant::now();
            let stored = store.put_cell(&NewCell {
                id: &cell.id,
                model_id: &planned.row.id,
                dataset_id: &plan.dataset.id,
                options: &plan.options,
                report: &report,
                clean: &clean.report,
                transfer,
                seconds,
                device: &crate::device::device_name(options.device),
                samples: &samples,
            })?;
            summary.store_seconds += t.elapsed().as_secs_f64();
            if !stored {
                observer.event(Event::Info(format!("{name} {}: stored meanwhile by another runner; kept its numbers", report.label)));
            }
            summary.computed += 1;
            finished += 1;
            let work = data.num_samples() as f64 * cell.config.rule.iterations() as f64;
            summary.image_iterations += work;
            if report.checks.as_ref().is_some_and(|c| !c.passed()) {
                summary.failed_checks.push(format!("{name} {}", report.label));
            }
            let elapsed = started.elapsed().as_secs_f64();
            let eta = elapsed / finished as f64 * (pending.len() - finished) as f64;
            let arp = report.arp.as_ref().map_or(f64::NAN, |a| a.arp);
            observer.event(Event::Progress { done: finished as u64, message: format!("{name} {}", report.label) });
            observer.event(Event::Info(format!(
                "[{finished}/{}] {name} {}: ARP {arp:.2} ({seconds:.1} s, {:.0} img·it/s, ETA {})",
                pending.len(),
                report.label,
                work / seconds.max(1e-9),
                fmt_duration(eta)
            )));
        }
    }
    if !pending.is_empty() {
        observer.event(Event::Finish);
    }
    Ok(summary)
}

/// Each sample's per-task losses, clean and adversarial, for one batch.
#[allow(clippy::too_many_arguments)]
fn per_sample_rows(
    model: &Model,
    tasks: &[crate::task::Task],
    clean: &crate::eval::CleanRun,
    b: usize,
    batch: &crate::data::Batch,
    x_adv: &Tensor,
    batch_size: usize,
    rows: &mut Vec<SampleRow>,
) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let out = model.forward_t(x_adv, false)?;
    for task in tasks {
        let (Some(y), Some(target)) = (out.get(task.kind()), batch.targets.get(task.kind())) else { continue };
        let adv = Vec::<f64>::try_from(task.loss_at_output(y, target)?.per_sample().to_kind(Kind::Double).to_device(Device::Cpu))
            .unwrap_or_default();
        let clean =
            clean.batch_losses(b).get(task.kind()).and_then(|t| Vec::<f64>::try_from(t.to_kind(Kind::Double)).ok()).unwrap_or_default();
        for (j, name) in batch.names.iter().enumerate() {
            rows.push(SampleRow {
                sample: b * batch_size + j,
                name: name.clone(),
                task: task.kind().name().to_string(),
                loss_clean: clean.get(j).copied().unwrap_or(f64::NAN),
                loss_adv: adv.get(j).copied().unwrap_or(f64::NAN),
            });
        }
    }
    Ok(())
}
