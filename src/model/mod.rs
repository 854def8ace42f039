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
//! let out = model.forward_t(&Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false);
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

/// The network of a model.
#[derive(Debug)]
pub enum Network {
    /// mtrobust's branched network (variables in the model's `VarStore`).
    Tree(TreeNet),
    /// A TorchScript module: full forward only, no training, no TreeMTL export.
    Script(ScriptNet),
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

    /// The tasks the model predicts, in output order.
    pub fn tasks(&self) -> &[TaskSpec] {
        match &self.net {
            Network::Tree(t) => &t.config().tasks,
            Network::Script(s) => s.tasks(),
        }
    }

    /// The tree network.
    ///
    /// # Errors
    /// A TorchScript model, which has none.
    pub fn tree(&self) -> Result<&TreeNet> {
        match &self.net {
            Network::Tree(t) => Ok(t),
            Network::Script(s) => Err(Error::config(
                format!("TorchScript module {}", s.path().display()),
                "this needs an mtrobust checkpoint (.safetensors): a TorchScript model has no TreeMTL backbone, \
                 layout or trainable variables",
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
            Network::Tree(_) => None,
            Network::Script(s) => Some(s),
        }
    }

    /// Trainable parameters (tree: backbone copies and heads; TorchScript: every parameter).
    pub fn param_count(&self) -> i64 {
        match &self.net {
            Network::Tree(t) => t.backbone_params() + t.head_params().iter().sum::<i64>(),
            Network::Script(s) => s.param_count(),
        }
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        match &self.net {
            Network::Tree(_) => self.vs.device(),
            Network::Script(s) => s.device(),
        }
    }

    /// The floating-point kind of the variables.
    pub fn kind(&self) -> Kind {
        match &self.net {
            Network::Tree(_) => self.vs.kind(),
            Network::Script(s) => s.kind(),
        }
    }

    /// Converts every variable to `kind` (float64 for finite-difference checks).
    pub fn set_kind(&mut self, kind: Kind) {
        match &mut self.net {
            Network::Tree(_) => self.vs.set_kind(kind),
            Network::Script(s) => s.set_kind(kind),
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
            return Err(Error::config("--precision", format!("{precision} needs a float32 model; this one is {:?}", self.kind())));
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
    fn compute(&self, x: &Tensor, f: impl FnOnce(&Tensor) -> TaskMap<Tensor>) -> TaskMap<Tensor> {
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
                f(x)
            }
            Precision::Fp32 | Precision::Tf32 => f(x),
        };
        let kind = self.kind();
        if self.precision == Precision::Bf16 || self.channels_last {
            // Back to the model's kind and to plain strides, so what follows is unchanged.
            out.map(|_, t| if t.kind() == kind { t.contiguous() } else { t.to_kind(kind).contiguous() })
        } else {
            out
        }
    }

    /// All task outputs.
    ///
    /// # Panics
    /// A TorchScript module that fails on an input of a size it did not see in [`Model::check_on`]
    /// (its output structure is checked there).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> TaskMap<Tensor> {
        self.compute(x, |x| match &self.net {
            Network::Tree(t) => t.forward_t(x, train),
            Network::Script(s) => s.forward(x, &self.input),
        })
    }

    /// The outputs of the tasks in `tasks` only (their paths through the tree). A TorchScript
    /// model has no per-task path: it runs the full forward and keeps the wanted outputs.
    pub fn forward_tasks(&self, x: &Tensor, tasks: TaskSet, train: bool) -> TaskMap<Tensor> {
        self.compute(x, |x| match &self.net {
            Network::Tree(t) => t.forward_tasks(x, tasks, train),
            Network::Script(s) => {
                let all = s.forward(x, &self.input);
                self.tasks()
                    .iter()
                    .enumerate()
                    .filter(|(id, _)| tasks.contains(*id))
                    .filter_map(|(_, t)| Some((t.kind, all.get(t.kind)?.shallow_clone())))
                    .collect()
            }
        })
    }

    /// Checks that the model runs on `x` (a batch of data) and gives what it promises: for a
    /// TorchScript model, the spec's outputs with the right channel counts and finite values.
    /// Tree models are built from their configuration and need no check.
    ///
    /// # Errors
    /// Outputs that do not match the spec, or a module that fails on `x`.
    pub fn check_on(&self, x: &Tensor) -> Result<()> {
        match &self.net {
            Network::Tree(_) => Ok(()),
            Network::Script(s) => s.check(x, &self.input),
        }
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
