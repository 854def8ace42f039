//! `mt.Custom(loss=…, metric=…)`: a task whose loss and metric are Python callables, as a core
//! [`CustomTask`]. Each call re-acquires the GIL; the core checks that what they return is `[B]`.
use crate::failure;
use crate::tensor::{from_py, to_py};
use mtrobust::error::{Error, Result};
use mtrobust::task::CustomTask;
use pyo3::prelude::*;
use tch::Tensor;

/// The callables of one custom task.
pub struct PyCustom {
    pub name: String,
    pub loss: Py<PyAny>,
    /// `None`: the loss is the metric too.
    pub metric: Option<Py<PyAny>>,
    pub metric_name: String,
    pub higher_is_better: bool,
}

impl PyCustom {
    fn call(&self, f: &Py<PyAny>, what: &str, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        let at = || format!("the {what} of task `{}`", self.name);
        Python::with_gil(|py| {
            let fail = |e: PyErr, doing: &str| {
                let text = format!("{doing} {}", failure::describe(py, &e));
                failure::stash(e);
                Error::config(at(), text)
            };
            let (o, t) = (
                to_py(py, output).map_err(|e| fail(e, "cannot pass the output:"))?,
                to_py(py, target).map_err(|e| fail(e, "cannot pass the target:"))?,
            );
            let r = f.bind(py).call1((o, t)).map_err(|e| fail(e, "raised"))?;
            from_py(&r, &|| at()).map_err(|e| Error::config(at(), format!("{}; return a [B] tensor of per-sample values", e.value(py))))
        })
    }
}

impl CustomTask for PyCustom {
    fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        self.call(&self.loss, "loss", output, target)
    }

    fn metric(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        match &self.metric {
            Some(m) => self.call(m, "metric", output, target),
            None => self.call(&self.loss, "loss", output, target),
        }
    }

    fn metric_name(&self) -> String {
        self.metric_name.clone()
    }

    fn higher_is_better(&self) -> bool {
        self.higher_is_better
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
