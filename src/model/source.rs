//! Where a model comes from: an mtrobust checkpoint (`.safetensors` with its `.json` sidecar), or
//! a TorchScript module with the model spec that describes it.
use super::{Model, checkpoint};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tch::Device;

/// A model's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// The checkpoint's weights, or the TorchScript module.
    pub path: PathBuf,
    /// The model spec of a TorchScript module; `None` for a checkpoint.
    pub spec: Option<PathBuf>,
}

impl ModelSource {
    /// A checkpoint (`spec` `None`) or a TorchScript module with its spec.
    pub fn new(path: impl Into<PathBuf>, spec: Option<PathBuf>) -> Self {
        ModelSource { path: path.into(), spec }
    }

    fn is_checkpoint(path: &Path) -> bool {
        path.extension().and_then(|e| e.to_str()) == Some("safetensors")
    }

    /// Checks that a spec comes with a TorchScript module and only with one.
    ///
    /// # Errors
    /// A spec for a checkpoint, or a non-checkpoint file without a spec.
    pub fn check(&self) -> Result<()> {
        match (&self.spec, Self::is_checkpoint(&self.path)) {
            (Some(spec), true) => Err(Error::config(
                "model spec",
                format!(
                    "{} is an mtrobust checkpoint, described by its .json sidecar; the spec {} is for TorchScript modules only",
                    self.path.display(),
                    spec.display()
                ),
            )),
            (None, false) => Err(Error::config(
                "model spec",
                format!(
                    "{} is not an mtrobust checkpoint (.safetensors); if it is a TorchScript module, give its model spec \
                     (`--model-spec spec.toml`, or `spec = \"spec.toml\"` in a study's [[model]]) naming its tasks, outputs \
                     and input normalisation; a TreeMTL training checkpoint is converted with `mtrobust import treemtl`",
                    self.path.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The files whose contents identify the model: weights and sidecar, or module and spec.
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.spec {
            Some(spec) => vec![self.path.clone(), spec.clone()],
            None => vec![self.path.clone(), checkpoint::sidecar_path(&self.path)],
        }
    }

    /// Loads the model onto `device` with a JSON description: the checkpoint's sidecar, or
    /// `{"format": "torchscript", "module", "spec"}`.
    ///
    /// # Errors
    /// See [`ModelSource::check`], [`Model::load`] and [`Model::load_script`].
    pub fn load(&self, device: Device) -> Result<(Model, serde_json::Value)> {
        self.check()?;
        match &self.spec {
            None => {
                let (model, sidecar) = Model::load(&self.path, device)?;
                Ok((model, serde_json::to_value(&sidecar).expect("serialisable")))
            }
            Some(spec) => {
                let model = Model::load_script(&self.path, spec, device)?;
                let written = model.script().map(|s| s.spec().clone());
                let description = serde_json::json!({
                    "format": "torchscript", "module": self.path.display().to_string(), "spec": written,
                });
                Ok((model, description))
            }
        }
    }
}
