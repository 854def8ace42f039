//! `mtrobust._core`: the compiled half of the Python package. Small on purpose: it turns Python
//! values into the core's (tensors without a copy, attack configurations from their JSON form)
//! and back, and runs the core with the GIL released. The typed public API, argument checks and
//! DataFrames live in `mtrobust/__init__.py`.
mod custom;
mod failure;
mod net;
mod tensor;

use mtrobust::attack::{Attack, AttackConfig, BatchContext, DirectionContext, DirectionSpec, Oracle};
use mtrobust::data::{Batch, InMemory, InputSpace, Mode, Sizes, Target};
use mtrobust::error::Error;
use mtrobust::eval::{EvalOptions, Evaluation, transferability};
use mtrobust::model::Model;
use mtrobust::model::script::ScriptInput;
use mtrobust::observe::Silent;
use mtrobust::study::{LiveModel, RunOptions, Shard, Store, StudyFile};
use mtrobust::task::{Task, TaskKind, TaskMap, TaskSpec};
use net::{Feed, NetTask, OutputKey, PyNet};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::SeedableRng;
use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// A value that crosses `allow_threads` although it is not `Send`. Sound here because
/// `allow_threads` runs the closure on the calling thread (it only releases the GIL), and the
/// Python objects inside are touched only after `Python::with_gil` has re-acquired it.
struct SameThread<T>(T);
// SAFETY: see the type's documentation; the value never leaves this thread.
unsafe impl<T> Send for SameThread<T> {}

/// Runs `f` with the GIL released: torch's autograd engine refuses a backward started while the
/// GIL is held, and other Python threads run meanwhile.
fn without_gil<T>(py: Python<'_>, f: impl FnOnce() -> T) -> T {
    let f = SameThread(f);
    py.allow_threads(move || {
        let f = f;
        SameThread((f.0)())
    })
    .0
}

/// The Python exception of a core error (see [`failure`]).
fn raise(py: Python<'_>) -> impl Fn(Error) -> PyErr + '_ {
    move |e| failure::to_py(py, &e)
}

fn json_err(e: serde_json::Error) -> PyErr {
    PyValueError::new_err(format!("mtrobust internal: {e}"))
}

fn kind_of(dtype: &str) -> PyResult<Kind> {
    match dtype {
        "float32" => Ok(Kind::Float),
        "float64" => Ok(Kind::Double),
        "float16" => Ok(Kind::Half),
        "bfloat16" => Ok(Kind::BFloat16),
        other => Err(PyTypeError::new_err(format!("the module's parameters are {other}; mtrobust attacks float32 or float64 modules"))),
    }
}

/// A wrapped module as the core sees it: the model and the tasks with their losses.
#[pyclass(unsendable, module = "mtrobust._core")]
struct Net {
    /// Taken out while a study runs it.
    model: Option<Model>,
    tasks: Vec<Task>,
    check_finite: Rc<Cell<bool>>,
}

/// `(name, kind, channels, output key, custom)` of one task, as `mt.wrap` passes it.
type TaskArg<'py> = (String, String, i64, Bound<'py, PyAny>, Option<(Py<PyAny>, Option<Py<PyAny>>, String, bool)>);

impl Net {
    fn model(&self) -> PyResult<&Model> {
        self.model.as_ref().ok_or_else(|| PyRuntimeError::new_err("this network is being run by a study"))
    }

    /// The targets of a batch: `{kind: (value, valid)}` (valid `None` for a custom task).
    fn targets(&self, t: &Bound<'_, PyDict>) -> PyResult<TaskMap<Target>> {
        let mut out = TaskMap::new();
        for task in &self.tasks {
            let kind = task.kind().name();
            let item = t.get_item(kind)?.ok_or_else(|| PyValueError::new_err(format!("no target for task `{}`", task.name())))?;
            let (value, valid): (Bound<PyAny>, Option<Bound<PyAny>>) = item.extract()?;
            let what = || format!("the target of task `{}`", task.name());
            let value = tensor::from_py(&value, &what)?;
            let target = match valid {
                Some(v) => Target { value, valid: tensor::from_py(&v, &what)? },
                None => Target::whole(value),
            };
            out.insert(task.kind(), target);
        }
        Ok(out)
    }

    fn batch(&self, x: &Bound<'_, PyAny>, targets: &Bound<'_, PyDict>) -> PyResult<Batch> {
        let x = tensor::from_py(x, &|| "the input batch".into())?;
        let n = x.size().first().copied().unwrap_or(0);
        Ok(Batch { x, targets: self.targets(targets)?, names: (0..n).map(|i| i.to_string()).collect() })
    }

    fn attacks(configs: &[String]) -> PyResult<Vec<AttackConfig>> {
        configs.iter().map(|c| serde_json::from_str::<AttackConfig>(c).map_err(|e| PyValueError::new_err(e.to_string()))).collect()
    }
}

#[pymethods]
impl Net {
    /// See `mt.wrap`: `feed` is `own` (batches in the module's pixel units) or `loader` (the
    /// data loaders' batches, mapped like a TorchScript spec maps them).
    #[new]
    #[pyo3(signature = (module, tasks, *, label, device, dtype, params, feed, range, mean, std))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        module: Py<PyAny>,
        tasks: Vec<TaskArg<'_>>,
        label: String,
        device: &str,
        dtype: &str,
        params: i64,
        feed: &str,
        range: f64,
        mean: Option<[f64; 3]>,
        std: Option<[f64; 3]>,
    ) -> PyResult<Net> {
        let device = mtrobust::device::parse_device(device).map_err(|e| PyValueError::new_err(e.chain()))?;
        let kind = kind_of(dtype)?;
        let mut net_tasks = Vec::new();
        let mut core_tasks = Vec::new();
        for (name, kind_name, channels, key, custom) in tasks {
            let task_kind: TaskKind = kind_name.parse().map_err(PyValueError::new_err)?;
            let spec = TaskSpec { kind: task_kind, channels };
            let key = if let Ok(i) = key.extract::<usize>() { OutputKey::Index(i) } else { OutputKey::Key(key.extract::<String>()?) };
            core_tasks.push(match custom {
                Some((loss, metric, metric_name, higher_is_better)) => {
                    let c = custom::PyCustom { name: name.clone(), loss, metric, metric_name, higher_is_better };
                    Task::custom(spec, Arc::new(c))
                }
                None => Task::new(spec),
            });
            net_tasks.push(NetTask { spec, name, key });
        }
        let per_channel = |v: [f64; 3]| Tensor::from_slice(&v).to_kind(kind).to_device(device).view([1, 3, 1, 1]);
        let (feed, space) = match feed {
            "own" => (Feed::Own { mean: mean.map(per_channel), std: std.map(per_channel) }, InputSpace::scaled_rgb(range)),
            "loader" => {
                let input = ScriptInput {
                    channel_order: mtrobust::data::ChannelOrder::Rgb,
                    pixel_range: range,
                    mean: mean.unwrap_or([0.0; 3]),
                    std: std.unwrap_or([1.0; 3]),
                };
                (Feed::Loader(input), InputSpace::reference())
            }
            other => return Err(PyValueError::new_err(format!("feed `{other}`: use own or loader"))),
        };
        let check_finite = Rc::new(Cell::new(true));
        let specs = net_tasks.iter().map(|t| t.spec).collect();
        let py_net = PyNet { module, tasks: net_tasks, specs, feed, device, kind, params, label, check_finite: Rc::clone(&check_finite) };
        Ok(Net { model: Some(Model::from_net(Box::new(py_net), space)), tasks: core_tasks, check_finite })
    }

    /// Attacks one batch: `(x_adv, report JSON)`.
    fn attack(
        &self,
        py: Python<'_>,
        config: &str,
        x: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyDict>,
        index: u64,
    ) -> PyResult<(Py<PyAny>, String)> {
        let config: AttackConfig = serde_json::from_str(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let batch = self.batch(x, targets)?;
        let model = self.model()?;
        failure::clear();
        self.check_finite.set(true);
        let outcome =
            without_gil(py, || Attack::new(config)?.run(model, &self.tasks, &batch, BatchContext::at(index))).map_err(raise(py))?;
        let info = serde_json::json!({ "checks": outcome.checks, "counts": outcome.counts, "trace": outcome.trace });
        Ok((tensor::to_py(py, &outcome.x_adv)?.unbind(), info.to_string()))
    }

    /// The direction's ascent tensor at the clean batch (before any sign or projection) and the
    /// per-sample clean losses per task.
    fn gradient(
        &self,
        py: Python<'_>,
        direction: &str,
        x: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyDict>,
    ) -> PyResult<(Py<PyAny>, Py<PyDict>)> {
        let spec: DirectionSpec = direction.parse().map_err(|e: Error| PyValueError::new_err(e.chain()))?;
        let batch = self.batch(x, targets)?;
        let model = self.model()?;
        failure::clear();
        self.check_finite.set(true);
        let (grad, losses) = without_gil(py, || -> mtrobust::Result<(Tensor, TaskMap<Tensor>)> {
            let oracle = Oracle::new(model, &self.tasks, &batch.targets)?;
            let dir = spec.build(&self.tasks)?;
            let x = batch.x.to_kind(model.kind()).to_device(model.device());
            let mut ctx = DirectionContext::default();
            let (probe, g) = mtrobust::attack::direction::gradient(dir.as_ref(), &oracle, &x, &mut ctx, true)?;
            Ok((g, probe.losses))
        })
        .map_err(raise(py))?;
        let out = PyDict::new(py);
        for (kind, l) in losses.iter() {
            out.set_item(kind.name(), tensor::to_py(py, l)?)?;
        }
        Ok((tensor::to_py(py, &grad)?.unbind(), out.unbind()))
    }

    /// Clean and attacked evaluation over batches given from Python: the `Evaluation` as JSON
    /// with the transferability of each Single-x attack.
    fn evaluate(
        &self,
        py: Python<'_>,
        batches: Vec<(Bound<'_, PyAny>, Bound<'_, PyDict>)>,
        configs: Vec<String>,
        options: &str,
    ) -> PyResult<String> {
        let options: EvalOptions = serde_json::from_str(options).map_err(json_err)?;
        let configs = Self::attacks(&configs)?;
        let data = InMemory(batches.iter().map(|(x, t)| self.batch(x, t)).collect::<PyResult<Vec<_>>>()?);
        if data.0.is_empty() {
            return Err(PyValueError::new_err("the data gave no batch"));
        }
        let model = self.model()?;
        failure::clear();
        self.check_finite.set(true);
        let evaluation = without_gil(py, || -> mtrobust::Result<Evaluation> {
            model.check_on(&data.0[0].x)?;
            let attacks = configs.into_iter().map(Attack::new).collect::<mtrobust::Result<Vec<_>>>()?;
            mtrobust::eval::evaluate(model, &self.tasks, &data, &attacks, options, &mut Silent, None)
        })
        .map_err(raise(py))?;
        evaluation_json(&evaluation)
    }

    /// [`Net::evaluate`] on a dataset directory read by the core's loaders (this network must be
    /// built with `feed="loader"`).
    #[pyo3(signature = (path, split, batch_size, limit, configs, options))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_data(
        &self,
        py: Python<'_>,
        path: PathBuf,
        split: String,
        batch_size: usize,
        limit: Option<usize>,
        configs: Vec<String>,
        options: &str,
    ) -> PyResult<String> {
        let options: Option<EvalOptions> = serde_json::from_str(options).map_err(json_err)?;
        let configs = Self::attacks(&configs)?;
        let model = self.model()?;
        failure::clear();
        self.check_finite.set(true);
        let evaluation = without_gil(py, || -> mtrobust::Result<Evaluation> {
            let spec = mtrobust::job::DataSpec { path, split, limit, batch_size, resize: None, crop: None };
            let opened = mtrobust::job::open_for(model, &spec)?;
            let tasks = with_custom(opened.tasks, &self.tasks);
            let options = options.unwrap_or(EvalOptions { profile: opened.profile, convention: Default::default() });
            let attacks = configs.into_iter().map(Attack::new).collect::<mtrobust::Result<Vec<_>>>()?;
            mtrobust::eval::evaluate(model, &tasks, &opened.loader, &attacks, options, &mut Silent, None)
        })
        .map_err(raise(py))?;
        evaluation_json(&evaluation)
    }
}

/// The data's tasks (with its class weights) carrying the network's custom losses.
fn with_custom(mut data_tasks: Vec<Task>, net_tasks: &[Task]) -> Vec<Task> {
    for (d, n) in data_tasks.iter_mut().zip(net_tasks) {
        if n.custom.is_some() {
            d.custom = n.custom.clone();
            d.class_weights = None;
        }
    }
    data_tasks
}

fn evaluation_json(e: &Evaluation) -> PyResult<String> {
    let transfer: Vec<Option<f64>> = e
        .attacked
        .iter()
        .map(|r| match (r.attack.as_ref().map(|a| &a.direction), &r.arp) {
            (Some(DirectionSpec::Single(x)), Some(a)) => transferability(a, *x),
            _ => None,
        })
        .collect();
    // A struct, not `json!`: a `serde_json::Value` would sort the per-task maps by name.
    #[derive(serde::Serialize)]
    struct Out<'a> {
        evaluation: &'a Evaluation,
        transfer: Vec<Option<f64>>,
    }
    serde_json::to_string(&Out { evaluation: e, transfer }).map_err(json_err)
}

/// Runs a study file with live networks (`feed="loader"`) besides its `[[model]]` entries:
/// `(name, identity, origin, description JSON, net)` each. Returns the summary as JSON.
#[pyfunction]
#[pyo3(signature = (path, live, db, device=None, shard=None, per_sample=false))]
fn study(
    py: Python<'_>,
    path: PathBuf,
    live: Vec<(String, String, String, String, PyRefMut<'_, Net>)>,
    db: PathBuf,
    device: Option<String>,
    shard: Option<String>,
    per_sample: bool,
) -> PyResult<String> {
    let mut nets = live;
    let mut models = Vec::new();
    for (name, identity, origin, description, net) in nets.iter_mut() {
        let description: serde_json::Value = serde_json::from_str(description).map_err(json_err)?;
        let model = net.model.take().ok_or_else(|| PyRuntimeError::new_err(format!("model `{name}` is already being run")))?;
        net.check_finite.set(true);
        models.push(LiveModel { name: name.clone(), identity: identity.clone(), origin: origin.clone(), description, model });
    }
    failure::clear();
    let custom: Vec<Vec<Task>> = nets.iter().map(|n| n.4.tasks.clone()).collect();
    let result = without_gil(py, || -> mtrobust::Result<mtrobust::study::Summary> {
        if custom.iter().flatten().any(|t| t.custom.is_some()) {
            return Err(Error::config(
                "study",
                "a live model with an mt.Custom task cannot run in a study: the data loaders only label the five built-in tasks",
            ));
        }
        let file = StudyFile::read_with(&path, false)?;
        let device = match device.or(file.device.clone()) {
            Some(d) => mtrobust::device::parse_device(&d)?,
            None => Device::Cpu,
        };
        let shard: Option<Shard> = shard.map(|s| s.parse()).transpose()?;
        let plan = mtrobust::study::plan_with(&file, &models)?;
        let mut store = Store::open(&db)?;
        mtrobust::study::run_with(&plan, &mut models, &mut store, RunOptions { device, shard, per_sample }, &mut Silent)
    });
    // Give every model back, whatever happened.
    for ((_, _, _, _, net), m) in nets.iter_mut().zip(models) {
        net.model = Some(m.model);
    }
    let s = result.map_err(raise(py))?;
    Ok(serde_json::json!({
        "cells": s.cells, "already_done": s.already_done, "computed": s.computed, "failed_checks": s.failed_checks,
        "attack_seconds": s.attack_seconds, "clean_seconds": s.clean_seconds,
    })
    .to_string())
}

/// The models and cells of a results store, as JSON.
#[pyfunction]
fn results(py: Python<'_>, db: PathBuf) -> PyResult<String> {
    let (models, cells) = without_gil(py, || -> mtrobust::Result<_> {
        let store = Store::open_read_only(&db)?;
        Ok((store.models()?, store.cells()?))
    })
    .map_err(raise(py))?;
    #[derive(serde::Serialize)]
    struct Out {
        models: Vec<mtrobust::study::store::ModelRow>,
        cells: Vec<mtrobust::study::store::CellRow>,
    }
    serde_json::to_string(&Out { models, cells }).map_err(json_err)
}

/// A dataset split read by the core (NYUv2, Tiny-Taskonomy, `mtrobust data synth` output), one
/// sample at a time: `(image [3, H, W] RGB in 0..1, {task: label}, name)`.
#[pyclass(module = "mtrobust._core")]
struct Dataset {
    inner: mtrobust::data::Dataset,
}

#[pymethods]
impl Dataset {
    #[new]
    fn new(py: Python<'_>, path: PathBuf, split: &str) -> PyResult<Dataset> {
        let inner = without_gil(py, || mtrobust::data::open(&path, split, Mode::Test, Sizes::default())).map_err(raise(py))?;
        Ok(Dataset { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.reader.len()
    }

    /// The tasks it labels (core names), in order.
    fn tasks(&self) -> Vec<String> {
        self.inner.reader.tasks().iter().map(|k| k.name().to_string()).collect()
    }

    /// The number of segmentation classes.
    fn seg_classes(&self) -> usize {
        self.inner.reader.seg_classes()
    }

    /// Sample `index`: the image as RGB in 0..1, labels with invalid pixels marked (segmentation
    /// 255, the others NaN), and its name.
    fn get<'py>(&self, py: Python<'py>, index: usize) -> PyResult<(Py<PyAny>, Bound<'py, PyDict>, String)> {
        let n = self.inner.reader.len();
        if index >= n {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("sample {index} of a split of {n}")));
        }
        let sample = without_gil(py, || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(index as u64);
            self.inner.reader.read(index, &mut rng)
        })
        .map_err(raise(py))?;
        let dense = |d: &mtrobust::data::Dense<f32>| Tensor::from_slice(&d.data).view([d.channels as i64, d.height as i64, d.width as i64]);
        let x = dense(&sample.input).unsqueeze(0);
        let image = (InputSpace::reference().to_rgb_pixels(&x) / 255.0).squeeze_dim(0);
        let labels = PyDict::new(py);
        for (kind, t) in &sample.targets {
            let value = dense(&t.value);
            let valid = Tensor::from_slice(&t.valid.data).view([1, t.valid.height as i64, t.valid.width as i64]).gt(0);
            let label = if *kind == TaskKind::SegmentSemantic {
                value.to_kind(Kind::Int64).masked_fill(&valid.logical_not(), 255).squeeze_dim(0)
            } else {
                value.masked_fill(&valid.logical_not().expand_as(&value), f64::NAN)
            };
            labels.set_item(kind.name(), tensor::to_py(py, &label)?)?;
        }
        Ok((tensor::to_py(py, &image)?.unbind(), labels, sample.name))
    }
}

/// Writes the paper's Figures 2, 1 and 4 (PNG and SVG) of a results store into `out`, at `eps`
/// grey levels for the per-ε figures; returns the files written.
#[pyfunction]
fn figures(py: Python<'_>, db: PathBuf, out: PathBuf, eps: f64) -> PyResult<Vec<String>> {
    let written = without_gil(py, || -> mtrobust::Result<Vec<PathBuf>> {
        let store = Store::open_read_only(&db)?;
        let view = mtrobust::report::paper::view::View::load(&store, None, "linf")?;
        mtrobust::report::paper::figures::write_figures(&view, eps, &out)
    })
    .map_err(raise(py))?;
    Ok(written.into_iter().map(|p| p.display().to_string()).collect())
}

/// The grey-level budget that is exactly `eps` units of images in `0..range`.
#[pyfunction]
fn eps_grey(eps: f64, range: f64) -> f64 {
    InputSpace::scaled_rgb(range).eps_from_input(eps)
}

/// Checks an attack configuration (its JSON form) as the core will run it.
#[pyfunction]
fn check_attack(py: Python<'_>, config: &str) -> PyResult<()> {
    let config: AttackConfig = serde_json::from_str(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
    config.check().map_err(raise(py))
}

/// The members of the `standard` ensemble (JSON) for a model predicting `kinds` (core task names):
/// the one definition the CLI and studies use.
#[pyfunction]
fn standard_ensemble(kinds: Vec<String>, n_iter: usize, n_queries: usize) -> PyResult<String> {
    let kinds =
        kinds.iter().map(|k| k.parse::<mtrobust::task::TaskKind>()).collect::<Result<Vec<_>, _>>().map_err(PyValueError::new_err)?;
    let ensemble = mtrobust::attack::Ensemble::standard(&kinds, n_iter, n_queries);
    serde_json::to_string(&ensemble.members).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Renders `n` synthetic scenes into `path` (`mtrobust data synth`).
#[pyfunction]
fn synth(py: Python<'_>, path: PathBuf, n: usize, size: usize, seed: u64, test_fraction: f64) -> PyResult<()> {
    let options = mtrobust::data::synth::export::SynthOptions { n, size, seed, test_fraction };
    without_gil(py, || mtrobust::data::synth::export::write_dataset(&path, &options, &mut Silent).map(|_| ())).map_err(raise(py))
}

/// The version of the core the extension was built from.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Net>()?;
    m.add_class::<Dataset>()?;
    m.add_function(wrap_pyfunction!(study, m)?)?;
    m.add_function(wrap_pyfunction!(results, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(eps_grey, m)?)?;
    m.add_function(wrap_pyfunction!(check_attack, m)?)?;
    m.add_function(wrap_pyfunction!(standard_ensemble, m)?)?;
    m.add_function(wrap_pyfunction!(figures, m)?)?;
    m.add("MtrobustError", m.py().get_type::<failure::MtrobustError>())?;
    Ok(())
}
