//! A live `torch.nn.Module` as an mtrobust network ([`TaskNet`]): the forward re-acquires the
//! GIL, hands the input to the module as a `torch.Tensor` (no copy: the autograd graph the module
//! builds is the one the core's backward runs through), and picks each task's output from the
//! dict, tuple or list the module returns, checking it against the task before the core sees it.
//! Backwards run from the core with the GIL released (torch's engine refuses otherwise).
use crate::failure;
use crate::tensor::{from_py, to_py};
use mtrobust::error::{Error, Result};
use mtrobust::model::TaskNet;
use mtrobust::model::script::ScriptInput;
use mtrobust::task::{TaskMap, TaskSet, TaskSpec};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::cell::Cell;
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

/// Where a task's output is in what the module returns.
#[derive(Debug, Clone)]
pub enum OutputKey {
    /// A dict's key.
    Key(String),
    /// A tuple's or list's position.
    Index(usize),
}

/// How a batch becomes the module's input.
pub enum Feed {
    /// Batches already in the module's pixel units (the caller's images): `(x − mean) / std`
    /// when a normalisation is given, else `x` itself.
    Own { mean: Option<Tensor>, std: Option<Tensor> },
    /// Batches of the data loaders (the reference input space), mapped as a TorchScript
    /// module's spec maps them, so both give the same numbers.
    Loader(ScriptInput),
}

/// One task of the module.
pub struct NetTask {
    pub spec: TaskSpec,
    /// The caller's name for it.
    pub name: String,
    pub key: OutputKey,
}

/// The module and what the core needs to know about it.
pub struct PyNet {
    pub module: Py<PyAny>,
    pub tasks: Vec<NetTask>,
    pub specs: Vec<TaskSpec>,
    pub feed: Feed,
    pub device: Device,
    pub kind: Kind,
    pub params: i64,
    /// `Python module pkg.Net`.
    pub label: String,
    /// Whether the next forward checks its outputs for NaN and infinities (the first of each call:
    /// a device synchronisation per forward otherwise).
    pub check_finite: Rc<Cell<bool>>,
}

impl PyNet {
    fn error(&self, reason: String) -> Error {
        Error::config(&self.label, reason)
    }

    /// `x` as the module's input.
    fn input(&self, x: &Tensor) -> Tensor {
        match &self.feed {
            Feed::Own { mean: None, std: None } => x.shallow_clone(),
            Feed::Own { mean, std } => {
                let centred = match mean {
                    Some(m) => x - m,
                    None => x.shallow_clone(),
                };
                match std {
                    Some(s) => centred / s,
                    None => centred,
                }
            }
            Feed::Loader(input) => input.module_input(x, &mtrobust::data::InputSpace::reference()),
        }
    }

    /// Task `n`'s output in `out`.
    fn pick<'py>(&self, out: &Bound<'py, PyAny>, n: usize, task: &NetTask) -> Result<Bound<'py, PyAny>> {
        let name = &task.name;
        if let Ok(dict) = out.downcast::<PyDict>() {
            let key = match &task.key {
                OutputKey::Key(k) => k.clone(),
                OutputKey::Index(_) => name.clone(),
            };
            return match dict.get_item(&key) {
                Ok(Some(v)) => Ok(v),
                _ => {
                    let keys: Vec<String> = dict.keys().iter().map(|k| k.to_string()).collect();
                    Err(self.error(format!(
                        "its dict output has no key \"{key}\" for task `{name}` (keys {keys:?}); name the tasks as the forward's dict does"
                    )))
                }
            };
        }
        let items: Option<Vec<Bound<'py, PyAny>>> = if let Ok(t) = out.downcast::<PyTuple>() {
            Some(t.iter().collect())
        } else if let Ok(l) = out.downcast::<PyList>() {
            Some(l.iter().collect())
        } else {
            None
        };
        if let Some(items) = items {
            let i = match &task.key {
                OutputKey::Index(i) => *i,
                OutputKey::Key(_) => n,
            };
            return items.get(i).cloned().ok_or_else(|| {
                self.error(format!(
                    "it returns {} outputs; task `{name}` is number {} of the tasks given to mt.wrap, so it needs output {i}",
                    items.len(),
                    n + 1
                ))
            });
        }
        if self.tasks.len() == 1 {
            return Ok(out.clone());
        }
        let kind = out.get_type().name().map(|s| s.to_string()).unwrap_or_default();
        Err(self.error(format!(
            "its forward returned a {kind}; a multi-task module must return a dict keyed by task name or a tuple/list in the order of the tasks given to mt.wrap"
        )))
    }

    /// Task `task`'s output, checked: a floating `[B, channels, h, w]` tensor for `x`'s batch.
    fn checked(&self, y: &Bound<'_, PyAny>, task: &NetTask, batch: i64) -> Result<Tensor> {
        let what = || format!("{}: the output of task `{}`", self.label, task.name);
        let y = from_py(y, &what).map_err(|e| Python::with_gil(|py| Error::config(what(), e.value(py).to_string())))?;
        let size = y.size();
        if size.len() != 4 || size[0] != batch || size[1] != task.spec.channels {
            return Err(Error::Shape {
                what: what(),
                expected: format!("[{batch}, {}, height, width]", task.spec.channels),
                got: format!("{size:?}"),
            });
        }
        if !y.is_floating_point() {
            return Err(Error::config(what(), format!("is a {:?} tensor; predictions must be floating point", y.kind())));
        }
        if self.check_finite.get() && !bool::try_from(y.f_isfinite()?.f_all()?)? {
            return Err(Error::non_finite(what(), "has NaN or infinite values; the module (its weights or its forward) is broken"));
        }
        Ok(y)
    }
}

impl TaskNet for PyNet {
    fn tasks(&self) -> &[TaskSpec] {
        &self.specs
    }

    fn forward(&self, x: &Tensor, _wanted: TaskSet) -> Result<TaskMap<Tensor>> {
        let input = self.input(x);
        let batch = x.size().first().copied().unwrap_or(0);
        let out = Python::with_gil(|py| -> Result<TaskMap<Tensor>> {
            // Ctrl-C lands here, between two steps of an attack.
            py.check_signals().map_err(|e| {
                failure::stash(e);
                self.error("interrupted".into())
            })?;
            let arg = to_py(py, &input).map_err(|e| self.error(failure::describe(py, &e)))?;
            let out = self.module.bind(py).call1((arg,)).map_err(|e| {
                let text = format!("its forward raised {}", failure::describe(py, &e));
                failure::stash(e);
                self.error(text)
            })?;
            let mut picked = TaskMap::new();
            for (n, task) in self.tasks.iter().enumerate() {
                let y = self.pick(&out, n, task)?;
                picked.insert(task.spec.kind, self.checked(&y, task, batch)?);
            }
            Ok(picked)
        });
        self.check_finite.set(false);
        out
    }

    fn device(&self) -> Device {
        self.device
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn param_count(&self) -> i64 {
        self.params
    }

    fn name(&self) -> String {
        self.label.clone()
    }
}
