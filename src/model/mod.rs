//! Models: TreeMTL layouts, backbones as fine blocks, ASPP heads, the branched tree network,
//! and checkpoints; or a TorchScript module with a model spec.
//!
//! ```
//! use mtrobust::data::InputSpace;
//! use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
//! use mtrobust::task::{TaskKind, parse_tasks};
//! use tch::{Device, Kind, Tensor};
//!
//! let tasks = parse_tasks("segm:5,depth,normal")?;
//! // TreeMTL layout #0 of 3 tasks over 5 blocks: everything shared.
//! let layout = layout_at(tasks.len(), 5, 0)?;
//! let config = ModelConfig { backbone: BackboneKind::Small, tasks, layout, head: HeadConfig { width: 8, rates: vec![1, 2], dropout: 0.0 } };
//! let model = Model::new(config, InputSpace::reference(), Device::Cpu, 0)?;
//! let out = model.forward_t(&Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false)?;
//! assert_eq!(out.get(TaskKind::SegmentSemantic).unwrap().size()[..2], [2, 5]);
//! assert_eq!(out.get(TaskKind::Normal).unwrap().size()[1], 3);
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod backbone;
pub mod blocks;
pub mod checkpoint;
pub mod enumerate;
pub mod head;
pub mod layout;
pub mod precision;
pub mod script;
pub mod shim;
mod source;
pub mod torchfile;
pub mod tree;
pub mod treemtl;

pub use backbone::BackboneKind;
pub use checkpoint::Sidecar;
pub use enumerate::{enumerate_layouts, index_of, layout_at};
pub use head::HeadConfig;
pub use layout::Layout;
pub use precision::Precision;
pub use script::ScriptNet;
pub use source::ModelSource;
pub use tree::{ModelConfig, TreeNet};

use crate::data::InputSpace;
use crate::error::{Error, Result};
use crate::task::{TaskMap, TaskSet, TaskSpec};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// A multi-task network that mtrobust did not build: a TorchScript module, a Python
/// `nn.Module`, any tch module. It only has to map an input batch to per-task outputs; the
/// attacks, evaluation and studies take it through [`Model::from_net`] like a tree network.
///
/// ```
/// use mtrobust::model::{Model, TaskNet};
/// use mtrobust::task::{TaskKind, TaskMap, TaskSet, TaskSpec};
/// use mtrobust::data::InputSpace;
/// use tch::{Device, Kind, Tensor, nn, nn::Module};
///
/// // Any tch module with per-task outputs: here one 1×1 convolution per task.
/// struct TwoHeads { seg: nn::Conv2D, depth: nn::Conv2D, tasks: Vec<TaskSpec> }
/// impl TaskNet for TwoHeads {
///     fn tasks(&self) -> &[TaskSpec] { &self.tasks }
///     fn forward(&self, x: &Tensor, _wanted: TaskSet) -> mtrobust::Result<TaskMap<Tensor>> {
///         Ok([(TaskKind::SegmentSemantic, self.seg.forward(x)), (TaskKind::DepthZbuffer, self.depth.forward(x))].into_iter().collect())
///     }
///     fn device(&self) -> Device { Device::Cpu }
///     fn kind(&self) -> Kind { Kind::Float }
///     fn param_count(&self) -> i64 { 4 * 3 + 4 + 3 + 1 }
///     fn name(&self) -> String { "two 1×1 heads".into() }
/// }
/// let vs = nn::VarStore::new(Device::Cpu);
/// let tasks = vec![TaskSpec { kind: TaskKind::SegmentSemantic, channels: 4 }, TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 }];
/// let net = TwoHeads { seg: nn::conv2d(vs.root() / "seg", 3, 4, 1, Default::default()), depth: nn::conv2d(vs.root() / "depth", 3, 1, 1, Default::default()), tasks };
/// let model = Model::from_net(Box::new(net), InputSpace::reference());
///
/// // Attack it with PGD along GB-MTA: labelled images in the model's input space.
/// use mtrobust::attack::{Attack, AttackConfig, BatchContext};
/// use mtrobust::data::{Batch, Target};
/// use mtrobust::task::{Task, parse_tasks};
/// let opts = (Kind::Float, Device::Cpu);
/// let (lo, hi) = model.input.bound_tensors(Kind::Float, Device::Cpu);
/// let x = &lo + (&hi - &lo) * Tensor::rand([2, 3, 8, 8], opts);
/// let valid = Tensor::ones([2, 1, 8, 8], opts);
/// let mut targets = TaskMap::new();
/// targets.insert(TaskKind::SegmentSemantic, Target { value: Tensor::randint(4, [2, 1, 8, 8], opts), valid: valid.copy() });
/// targets.insert(TaskKind::DepthZbuffer, Target { value: Tensor::rand([2, 1, 8, 8], opts), valid });
/// let batch = Batch { x, targets, names: vec!["a".into(), "b".into()] };
/// let tasks: Vec<Task> = parse_tasks("segm:4,depth")?.into_iter().map(Task::new).collect();
/// let outcome = Attack::new(AttackConfig::default())?.run(&model, &tasks, &batch, BatchContext::at(0))?;
/// assert!(outcome.checks.passed() && outcome.checks.max_perturbation <= 8.0 + 1e-4);
/// # Ok::<(), mtrobust::Error>(())
/// ```
pub trait TaskNet {
    /// The tasks it predicts, in output order.
    fn tasks(&self) -> &[TaskSpec];
    /// The `[B, C_t, h, w]` outputs of (at least) the tasks in `wanted` for `x`, a batch in the
    /// model's input space. It runs in eval mode; gradients flow to `x` when it requires them.
    ///
    /// # Errors
    /// Whatever the network fails with (libtorch, Python exceptions), as an [`Error`].
    fn forward(&self, x: &Tensor, wanted: TaskSet) -> Result<TaskMap<Tensor>>;
    /// Where its weights live.
    fn device(&self) -> Device;
    /// The floating-point kind of its weights.
    fn kind(&self) -> Kind;
    /// Converts its weights to `kind` (float64 for finite-difference checks).
    ///
    /// # Errors
    /// A network that cannot be converted (the default).
    fn set_kind(&mut self, kind: Kind) -> Result<()> {
        Err(Error::config(self.name(), format!("cannot be converted to {kind:?}")))
    }
    /// Number of parameters.
    fn param_count(&self) -> i64;
    /// How errors and reports name it, e.g. `TorchScript module m.pt`.
    fn name(&self) -> String;
}

/// The network of a model.
pub enum Network {
    /// mtrobust's branched network (variables in the model's `VarStore`).
    Tree(TreeNet),
    /// A TorchScript module: full forward only, no training, no TreeMTL export.
    Script(ScriptNet),
    /// Any other network ([`TaskNet`]): full forward only, no training, no TreeMTL export.
    External(Box<dyn TaskNet>),
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::Tree(t) => t.fmt(f),
            Network::Script(s) => s.fmt(f),
            Network::External(n) => write!(f, "External({})", n.name()),
        }
    }
}

impl Network {
    /// The network as a [`TaskNet`], unless it is the tree network.
    fn task_net(&self) -> Option<&dyn TaskNet> {
        match self {
            Network::Tree(_) => None,
            Network::Script(s) => Some(s),
            Network::External(n) => Some(n.as_ref()),
        }
    }
}

/// A network with its variables and the input space it expects.
pub struct Model {
    /// The tree network's variables (empty for a TorchScript model, whose weights live in the module).
    pub vs: VarStore,
    pub net: Network,
    pub input: InputSpace,
    /// TreeMTL model index of the layout, when known.
    pub layout_index: Option<usize>,
    /// How the forward computes (see [`Precision`]); set with [`Model::set_precision`].
    precision: Precision,
    /// Inputs (and 4-d weights) in channels-last memory format; see [`Model::set_channels_last`].
    channels_last: bool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("net", &self.net).field("device", &self.device()).finish()
    }
}

impl Model {
    /// A freshly initialised model; weights are drawn from libtorch's generator seeded with `seed`.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(config: ModelConfig, input: InputSpace, device: Device, seed: u64) -> Result<Model> {
        let vs = VarStore::new(device);
        let net = {
            let _rng = crate::rng::torch_rng(seed);
            TreeNet::new(&vs.root(), config)?
        };
        Ok(Model { vs, net: Network::Tree(net), input, layout_index: None, precision: Precision::Fp32, channels_last: false })
    }

    /// A TorchScript module (`path`) described by the spec file `spec`, for attacks and evaluation.
    /// Its inputs are in the reference input space, like every data loader's.
    ///
    /// # Errors
    /// An unreadable or invalid spec, or a file that is not a TorchScript module.
    pub fn load_script(path: &Path, spec: &Path, device: Device) -> Result<Model> {
        let resolved = script::ScriptSpec::read(spec)?;
        let net = ScriptNet::load(path, resolved, device)?;
        Ok(Model {
            vs: VarStore::new(device),
            net: Network::Script(net),
            input: InputSpace::reference(),
            layout_index: None,
            precision: Precision::Fp32,
            channels_last: false,
        })
    }

    /// A model of any network that maps batches in `input` space to per-task outputs.
    pub fn from_net(net: Box<dyn TaskNet>, input: InputSpace) -> Model {
        let device = net.device();
        Model {
            vs: VarStore::new(device),
            net: Network::External(net),
            input,
            layout_index: None,
            precision: Precision::Fp32,
            channels_last: false,
        }
    }

    /// The tasks the model predicts, in output order.
    pub fn tasks(&self) -> &[TaskSpec] {
        match &self.net {
            Network::Tree(t) => &t.config().tasks,
            Network::Script(s) => TaskNet::tasks(s),
            Network::External(n) => n.tasks(),
        }
    }

    /// The tree network.
    ///
    /// # Errors
    /// A TorchScript model, which has none.
    pub fn tree(&self) -> Result<&TreeNet> {
        match &self.net {
            Network::Tree(t) => Ok(t),
            Network::Script(_) | Network::External(_) => Err(Error::config(
                self.name(),
                "this needs an mtrobust checkpoint (.safetensors): a TorchScript or external model has no TreeMTL \
                 backbone, layout or trainable variables",
            )),
        }
    }

    /// The architecture.
    ///
    /// # Errors
    /// A TorchScript model, which has no TreeMTL architecture.
    pub fn config(&self) -> Result<&ModelConfig> {
        Ok(self.tree()?.config())
    }

    /// The TorchScript module, if the model is one.
    pub fn script(&self) -> Option<&ScriptNet> {
        match &self.net {
            Network::Script(s) => Some(s),
            Network::Tree(_) | Network::External(_) => None,
        }
    }

    /// Whether the model has per-task paths (a tree network); other networks run their whole
    /// forward for every task subset.
    pub fn has_task_paths(&self) -> bool {
        matches!(self.net, Network::Tree(_))
    }

    /// How errors and reports name the network: `tree network`, `TorchScript module m.pt`, or an
    /// external network's own name.
    pub fn name(&self) -> String {
        match self.net.task_net() {
            None => "tree network".into(),
            Some(n) => n.name(),
        }
    }

    /// Trainable parameters (tree: backbone copies and heads; other networks: every parameter).
    pub fn param_count(&self) -> i64 {
        match &self.net {
            Network::Tree(t) => t.backbone_params() + t.head_params().iter().sum::<i64>(),
            n => n.task_net().map_or(0, |n| n.param_count()),
        }
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        match self.net.task_net() {
            None => self.vs.device(),
            Some(n) => n.device(),
        }
    }

    /// The floating-point kind of the variables.
    pub fn kind(&self) -> Kind {
        match self.net.task_net() {
            None => self.vs.kind(),
            Some(n) => n.kind(),
        }
    }

    /// Converts every variable to `kind` (float64 for finite-difference checks).
    ///
    /// # Errors
    /// An external network that cannot be converted.
    pub fn set_kind(&mut self, kind: Kind) -> Result<()> {
        match &mut self.net {
            Network::Tree(_) => {
                self.vs.set_kind(kind);
                Ok(())
            }
            Network::Script(s) => s.set_kind(kind),
            Network::External(n) => n.set_kind(kind),
        }
    }

    /// How the forward computes.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Sets how the forward (and so the backward) computes; see [`Precision`]. bf16 on a model
    /// converted to float64 is refused (autocast would silently drop the float64 checks).
    ///
    /// # Errors
    /// bf16 or tf32 on a float64 model.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if !precision.is_default() && self.kind() != Kind::Float {
            return Err(Error::parameter("precision", format!("{precision} needs a float32 model; this one is {:?}", self.kind())));
        }
        self.precision = precision;
        Ok(())
    }

    /// Whether inputs and 4-d weights are in channels-last memory format.
    pub fn channels_last(&self) -> bool {
        self.channels_last
    }

    /// Channels-last memory format (NHWC strides; same values): every 4-d variable of a tree
    /// network is re-laid out in place and every input is converted before the forward. Faster
    /// convolutions on CUDA (cuDNN's NHWC kernels, above all with bf16); not worth it on CPU.
    /// A TorchScript module keeps its own weights' layout; only its inputs are converted.
    /// Meant for attacks, evaluation and benchmarks, not before saving a checkpoint.
    pub fn set_channels_last(&mut self, on: bool) {
        if on && matches!(self.net, Network::Tree(_)) {
            for v in self.vs.variables().values() {
                shim::channels_last_in_place(v);
            }
        }
        self.channels_last = on;
    }

    /// Runs `f` on `x` with this model's precision and memory format; outputs come back in the
    /// model's floating-point kind.
    fn compute(&self, x: &Tensor, f: impl FnOnce(&Tensor) -> Result<TaskMap<Tensor>>) -> Result<TaskMap<Tensor>> {
        if matches!(self.device(), Device::Cuda(_)) {
            shim::set_tf32(self.precision == Precision::Tf32);
        }
        let converted;
        let x = if self.channels_last && x.dim() == 4 {
            converted = shim::channels_last(x);
            &converted
        } else {
            x
        };
        let out = match self.precision {
            Precision::Bf16 => {
                let _autocast = shim::autocast_bf16(self.device());
                f(x)?
            }
            Precision::Fp32 | Precision::Tf32 => f(x)?,
        };
        let kind = self.kind();
        if self.precision == Precision::Bf16 || self.channels_last {
            // Back to the model's kind and to plain strides, so what follows is unchanged.
            out.try_map(|_, t| Ok(if t.kind() == kind { t.f_contiguous()? } else { t.f_to_kind(kind)?.f_contiguous()? }))
        } else {
            Ok(out)
        }
    }

    /// All task outputs.
    ///
    /// # Errors
    /// What the network fails with (libtorch: out of memory; a TorchScript or external module:
    /// its own failure, or outputs that do not match its tasks), naming the network.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<TaskMap<Tensor>> {
        self.forward_tasks(x, TaskSet::all(self.tasks().len()), train)
    }

    /// The outputs of the tasks in `tasks` only (their paths through the tree). A TorchScript or
    /// external network has no per-task path: it runs the full forward and keeps the wanted outputs.
    ///
    /// # Errors
    /// See [`Model::forward_t`].
    pub fn forward_tasks(&self, x: &Tensor, tasks: TaskSet, train: bool) -> Result<TaskMap<Tensor>> {
        self.compute(x, |x| match self.net.task_net() {
            None => {
                let Network::Tree(t) = &self.net else { unreachable!("task_net is None only for the tree") };
                t.forward_tasks(x, tasks, train)
                    .map_err(|e| Error::context(format!("{} forward on a {:?} input", self.name(), x.size()), e))
            }
            Some(net) => {
                let all = net.forward(x, tasks)?;
                let mut out = TaskMap::new();
                for (id, spec) in self.tasks().iter().enumerate() {
                    if tasks.contains(id) {
                        out.insert(spec.kind, checked_output(net, spec, all.get(spec.kind), x)?);
                    }
                }
                Ok(out)
            }
        })
    }

    /// Checks that the model runs on `x` (a batch of data) and gives what it promises: for a
    /// TorchScript or external network, every task's output with the right shape and finite values.
    /// Tree models are built from their configuration and need no check.
    ///
    /// # Errors
    /// Outputs that do not match the tasks, non-finite outputs, or a module that fails on `x`.
    pub fn check_on(&self, x: &Tensor) -> Result<()> {
        let Some(net) = self.net.task_net() else { return Ok(()) };
        let _guard = tch::no_grad_guard();
        let out = self.forward_t(&x.to_kind(self.kind()).to_device(self.device()), false)?;
        for (kind, y) in out.iter() {
            if !bool::try_from(y.f_isfinite()?.f_all()?)? {
                return Err(Error::NonFinite {
                    what: format!("{}: the output of task `{kind}`", net.name()),
                    detail: "has NaN or infinite values on the first batch of the data".into(),
                });
            }
        }
        Ok(())
    }

    /// The sidecar describing this model.
    ///
    /// # Errors
    /// A TorchScript model, which has no TreeMTL architecture to describe.
    pub fn sidecar(&self, provenance: Option<serde_json::Value>) -> Result<Sidecar> {
        Ok(Sidecar {
            format: checkpoint::SIDECAR_FORMAT,
            mtrobust: env!("CARGO_PKG_VERSION").to_string(),
            model: self.config()?.clone(),
            input: self.input.clone(),
            layout_index: self.layout_index,
            provenance,
        })
    }

    /// Saves weights (`path`, `.safetensors`) and sidecar (`path` with `.json`).
    ///
    /// # Errors
    /// I/O failures, a path without the `.safetensors` extension, or a TorchScript model.
    pub fn save(&self, path: &Path, provenance: Option<serde_json::Value>) -> Result<()> {
        checkpoint::save(&self.vs, &self.sidecar(provenance)?, path)
    }

    /// Rebuilds a model from a checkpoint alone.
    ///
    /// # Errors
    /// Missing or malformed files, or weights that do not fit the architecture in the sidecar.
    pub fn load(path: &Path, device: Device) -> Result<(Model, Sidecar)> {
        let sidecar = checkpoint::read_sidecar(path)?;
        let mut model = Model::new(sidecar.model.clone(), sidecar.input.clone(), device, 0)?;
        model.layout_index = sidecar.layout_index;
        let hint = format!(
            "the sidecar describes backbone `{}` with layout `{}`; the weights must come from that architecture",
            sidecar.model.backbone.name(),
            sidecar.model.layout
        );
        checkpoint::load_weights(&mut model.vs, path, &hint)?;
        Ok((model, sidecar))
    }
}

/// The output of `spec`'s task from an external network, checked: present, `[B, channels, h, w]`
/// for the batch `x`, floating point. Every forward checks it, so a module that changes its
/// output on a later batch is an error naming it, never a panic further on.
fn checked_output(net: &dyn TaskNet, spec: &TaskSpec, y: Option<&Tensor>, x: &Tensor) -> Result<Tensor> {
    let what = || format!("{}: the output of task `{}`", net.name(), spec.kind);
    let y = y.ok_or_else(|| Error::config(what(), "is missing from what its forward returned"))?;
    let size = y.size();
    let batch = x.size().first().copied().unwrap_or(0);
    if size.len() != 4 || size[0] != batch || size[1] != spec.channels {
        return Err(Error::Shape {
            what: what(),
            expected: format!("[{batch}, {}, height, width]", spec.channels),
            got: format!("{size:?}"),
        });
    }
    if !y.is_floating_point() {
        return Err(Error::config(what(), format!("is a {:?} tensor; predictions must be floating point", y.kind())));
    }
    Ok(y.shallow_clone())
}
