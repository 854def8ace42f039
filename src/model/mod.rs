//! Models: TreeMTL layouts, backbones as fine blocks, ASPP heads, the branched tree network,
//! and checkpoints.
pub mod backbone;
pub mod blocks;
pub mod checkpoint;
pub mod enumerate;
pub mod head;
pub mod layout;
pub mod torchfile;
pub mod tree;
pub mod treemtl;

pub use backbone::BackboneKind;
pub use checkpoint::Sidecar;
pub use enumerate::{enumerate_layouts, index_of, layout_at};
pub use head::HeadConfig;
pub use layout::Layout;
pub use tree::{ModelConfig, TreeNet};

use crate::data::InputSpace;
use crate::error::Result;
use crate::task::{TaskMap, TaskSet};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// A network with its variables and the input space it expects.
pub struct Model {
    pub vs: VarStore,
    pub net: TreeNet,
    pub input: InputSpace,
    /// TreeMTL model index of the layout, when known.
    pub layout_index: Option<usize>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("net", &self.net).field("device", &self.vs.device()).finish()
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
        Ok(Model { vs, net, input, layout_index: None })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        self.net.config()
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The floating-point kind of the variables.
    pub fn kind(&self) -> Kind {
        self.vs.kind()
    }

    /// Converts every variable to `kind` (float64 for finite-difference checks).
    pub fn set_kind(&mut self, kind: Kind) {
        self.vs.set_kind(kind);
    }

    /// All task outputs.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> TaskMap<Tensor> {
        self.net.forward_t(x, train)
    }

    /// The outputs of the tasks in `tasks` only (their paths through the tree).
    pub fn forward_tasks(&self, x: &Tensor, tasks: TaskSet, train: bool) -> TaskMap<Tensor> {
        self.net.forward_tasks(x, tasks, train)
    }

    /// The sidecar describing this model.
    pub fn sidecar(&self, provenance: Option<serde_json::Value>) -> Sidecar {
        Sidecar {
            format: checkpoint::SIDECAR_FORMAT,
            mtrobust: env!("CARGO_PKG_VERSION").to_string(),
            model: self.config().clone(),
            input: self.input.clone(),
            layout_index: self.layout_index,
            provenance,
        }
    }

    /// Saves weights (`path`, `.safetensors`) and sidecar (`path` with `.json`).
    ///
    /// # Errors
    /// I/O failures or a path without the `.safetensors` extension.
    pub fn save(&self, path: &Path, provenance: Option<serde_json::Value>) -> Result<()> {
        checkpoint::save(&self.vs, &self.sidecar(provenance), path)
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
