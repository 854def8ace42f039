//! A TorchScript module as a multi-task network: mtrobust's inputs are mapped to the module's
//! input space (a differentiable affine map, so gradients reach the attack's input), the module
//! runs its full forward, and the spec picks each task's output from the dict, tuple or list it
//! returns. There is no per-task path: every forward, Single-x attacks included, runs the whole
//! module.
use super::spec::{OutputKey, ResolvedSpec, ScriptSpec};
use crate::data::InputSpace;
use crate::error::{Error, Result};
use crate::model::TaskNet;
use crate::task::{TaskMap, TaskSet, TaskSpec};
use std::path::{Path, PathBuf};
use tch::{CModule, Device, IValue, Kind, Tensor};

/// A loaded TorchScript module with its spec.
pub struct ScriptNet {
    module: CModule,
    spec: ScriptSpec,
    tasks: Vec<TaskSpec>,
    outputs: Vec<Option<OutputKey>>,
    path: PathBuf,
    device: Device,
    kind: Kind,
    params: i64,
    /// The input space mtrobust's batches are in (the data loaders' reference space).
    space: InputSpace,
}

impl std::fmt::Debug for ScriptNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptNet").field("path", &self.path).field("tasks", &self.tasks).finish()
    }
}

impl ScriptNet {
    /// Loads `path` onto `device` in eval mode with its parameters frozen.
    ///
    /// # Errors
    /// A file that is not a TorchScript module.
    pub fn load(path: &Path, spec: ResolvedSpec, device: Device) -> Result<ScriptNet> {
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            Error::checkpoint(
                path,
                format!(
                    "not a TorchScript module ({first}); save one with `torch.jit.script(model).save(path)` or \
                     `torch.jit.trace(model, example).save(path)`"
                ),
            )
        })?;
        module.set_eval();
        let named = module.named_parameters()?;
        let kind = named
            .iter()
            .map(|(_, p)| p.kind())
            .find(|k| matches!(k, Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double))
            .unwrap_or(Kind::Float);
        let mut params = 0;
        for (_, p) in &named {
            params += p.numel() as i64;
            // Only input gradients are wanted; frozen weights keep autograd from computing theirs.
            let _ = p.set_requires_grad(false);
        }
        let ResolvedSpec { spec, tasks, outputs } = spec;
        Ok(ScriptNet { module, spec, tasks, outputs, path: path.to_path_buf(), device, kind, params, space: InputSpace::reference() })
    }

    /// The spec as written.
    pub fn spec(&self) -> &ScriptSpec {
        &self.spec
    }

    /// The module file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `x` (in `space`, as the data loaders produce it) as the module's input:
    /// `(pixel · pixel_range / 255 − mean) / std` per channel in the module's channel order.
    pub fn module_input(&self, x: &Tensor, space: &InputSpace) -> Tensor {
        self.spec.input.module_input(x, space)
    }

    /// Runs the module on `x` and picks every task's output, checking each is a
    /// `[batch, channels, h, w]` tensor with the spec's channel count.
    ///
    /// # Errors
    /// A module that fails on `x`, or outputs that do not match the spec.
    pub fn try_forward(&self, x: &Tensor, space: &InputSpace) -> Result<TaskMap<Tensor>> {
        let input = IValue::Tensor(self.module_input(x, space));
        let out = self.module.forward_is(&[input]).map_err(|e| self.error(format!("its forward failed on a {:?} input: {e}", x.size())))?;
        let mut picked = TaskMap::new();
        for (n, (task, key)) in self.tasks.iter().zip(&self.outputs).enumerate() {
            let y = self.pick(&out, n, task, key.as_ref())?;
            let what = format!("the output of task `{}`", task.kind);
            let size = y.size();
            if size.len() != 4 || size[0] != x.size()[0] {
                return Err(self.error(format!("{what} has shape {size:?}; expected [{}, {}, height, width]", x.size()[0], task.channels)));
            }
            if size[1] != task.channels {
                return Err(self.error(format!(
                    "{what} has {} channels but the spec says {} (`channels` of task `{}`)",
                    size[1], task.channels, task.kind
                )));
            }
            if !y.is_floating_point() {
                return Err(self.error(format!("{what} is a {:?} tensor; predictions must be floating point", y.kind())));
            }
            picked.insert(task.kind, y);
        }
        Ok(picked)
    }

    fn error(&self, reason: String) -> Error {
        Error::config(self.name(), reason)
    }

    /// The output of task number `n` in `out`.
    fn pick(&self, out: &IValue, n: usize, task: &TaskSpec, key: Option<&OutputKey>) -> Result<Tensor> {
        let name = task.kind.name();
        let fix = format!("set `output` of task `{name}` in the spec");
        let indexed = |items: Vec<&IValue>, what: &str| -> Result<Tensor> {
            let i = match key {
                Some(OutputKey::Index(i)) => *i,
                None => n,
                Some(OutputKey::Key(k)) => {
                    return Err(self.error(format!(
                        "it returns a {what}, not a dict, so task `{name}` cannot take output \"{k}\"; {fix} to an index"
                    )));
                }
            };
            let item = items.get(i).ok_or_else(|| {
                self.error(format!("it returns a {what} of {} outputs; task `{name}` asks for output {i}; {fix}", items.len()))
            })?;
            self.tensor(item, &format!("output {i}"))
        };
        match out {
            IValue::GenericDict(entries) => {
                let keys: Vec<String> = entries.iter().map(|(k, _)| dict_key(k)).collect();
                let k = match key {
                    Some(OutputKey::Key(k)) => k.clone(),
                    None => name.to_string(),
                    Some(OutputKey::Index(i)) => {
                        return Err(self
                            .error(format!("it returns a dict (keys {keys:?}), so task `{name}` cannot take output {i}; {fix} to a key")));
                    }
                };
                let at = keys
                    .iter()
                    .position(|have| *have == k)
                    .ok_or_else(|| self.error(format!("its dict output has no key \"{k}\" for task `{name}` (keys {keys:?}); {fix}")))?;
                self.tensor(&entries[at].1, &format!("output \"{k}\""))
            }
            IValue::Tuple(items) | IValue::GenericList(items) => indexed(items.iter().collect(), "tuple or list"),
            IValue::TensorList(ts) => {
                let items: Vec<IValue> = ts.iter().map(|t| IValue::Tensor(t.shallow_clone())).collect();
                indexed(items.iter().collect(), "list")
            }
            IValue::Tensor(t) if self.tasks.len() == 1 && matches!(key, None | Some(OutputKey::Index(0))) => Ok(t.shallow_clone()),
            other => Err(self.error(format!(
                "it returns {}; a multi-task module must return a dict, tuple or list of per-task tensors",
                describe(other)
            ))),
        }
    }

    fn tensor(&self, v: &IValue, what: &str) -> Result<Tensor> {
        match v {
            IValue::Tensor(t) => Ok(t.shallow_clone()),
            other => Err(self.error(format!("its {what} is {}, not a tensor", describe(other)))),
        }
    }
}

impl TaskNet for ScriptNet {
    fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    fn forward(&self, x: &Tensor, _wanted: TaskSet) -> Result<TaskMap<Tensor>> {
        self.try_forward(x, &self.space)
    }

    fn device(&self) -> Device {
        self.device
    }

    /// The floating-point kind of the module's parameters (float when it has none).
    fn kind(&self) -> Kind {
        self.kind
    }

    fn set_kind(&mut self, kind: Kind) -> Result<()> {
        self.module.to(self.device, kind, false);
        self.kind = kind;
        Ok(())
    }

    fn param_count(&self) -> i64 {
        self.params
    }

    fn name(&self) -> String {
        format!("TorchScript module {}", self.path.display())
    }
}

fn dict_key(k: &IValue) -> String {
    match k {
        IValue::String(s) => s.clone(),
        IValue::Int(i) => i.to_string(),
        other => describe(other),
    }
}

fn describe(v: &IValue) -> String {
    match v {
        IValue::Tensor(t) => format!("a single tensor of shape {:?}", t.size()),
        IValue::Tuple(items) => format!("a tuple of {}", items.len()),
        IValue::GenericList(items) => format!("a list of {}", items.len()),
        IValue::TensorList(items) => format!("a list of {} tensors", items.len()),
        IValue::GenericDict(items) => format!("a dict of {}", items.len()),
        IValue::None => "None".into(),
        other => format!("{other:?}").split(['(', ' ']).next().unwrap_or("a value").to_string(),
    }
}
