//! TreeMTL checkpoints (docs/REFERENCE.md §2.6): the reference's `.model` files hold a state dict
//! under `state_dict` whose keys follow one of two module structures — `Deeplab_ASPP_Layout`
//! (NYUv2 ResNet34, `deeplab.rs`) or `MTSeqModel` (every other backbone and dataset, `seq.rs`). Both
//! number the backbone's block copies `backbone.mtl_blocks.{i}` in the order our tree creates its
//! nodes (§2.5), and both name the heads `heads.{task}.fc{1..4}.conv{1,2,3}` as we do, so the
//! mapping is explicit, name by name, per block. [`import`] loads such a file strictly;
//! [`export`] writes one.
mod deeplab;
mod export;
mod import;
mod seq;

pub use export::export;
pub use import::{import, strip_module_prefix};

use super::backbone::{BackboneKind, BlockSpec};
use super::tree::ModelConfig;
use crate::error::{Error, Result};
use crate::task::nyuv2_tasks;

/// Which of the reference's module structures a checkpoint's keys follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `Deeplab_ASPP_Layout`: `backbone.mtl_blocks.{i}.residual_block.{block.conv1,…,ds.0,…}`.
    Deeplab,
    /// `MTSeqModel`: `backbone.mtl_blocks.{i}.compute_nodes.{j}.basicOp.…`.
    Seq,
}

impl Scheme {
    /// The flag value (`deeplab`, `seq`).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Deeplab => "deeplab",
            Scheme::Seq => "seq",
        }
    }

    /// The reference class whose keys the scheme reproduces.
    pub fn class_name(self) -> &'static str {
        match self {
            Scheme::Deeplab => "Deeplab_ASPP_Layout",
            Scheme::Seq => "MTSeqModel",
        }
    }

    /// The class the reference builds for this model (docs/REFERENCE.md §2.6): `Deeplab_ASPP_Layout`
    /// for ResNet34 on the NYUv2 tasks, `MTSeqModel` otherwise; the small backbone, which the
    /// reference does not have, uses the Deeplab names (it is made of the same blocks).
    pub fn default_for(config: &ModelConfig) -> Scheme {
        match config.backbone {
            BackboneKind::Resnet34 if config.tasks == nyuv2_tasks() => Scheme::Deeplab,
            BackboneKind::Small => Scheme::Deeplab,
            _ => Scheme::Seq,
        }
    }

    /// The scheme of a state dict's backbone keys; `None` if it has no TreeMTL backbone keys.
    ///
    /// # Errors
    /// Keys of both schemes at once.
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Option<Scheme>, String> {
        let (mut deeplab, mut seq) = (None, None);
        for k in keys {
            if k.starts_with("backbone.mtl_blocks.") {
                if k.contains(".residual_block.") {
                    deeplab.get_or_insert(k);
                } else if k.contains(".compute_nodes.") {
                    seq.get_or_insert(k);
                }
            }
        }
        match (deeplab, seq) {
            (Some(a), Some(b)) => Err(format!("mixes Deeplab_ASPP_Layout keys (`{a}`) and MTSeqModel keys (`{b}`)")),
            (Some(_), None) => Ok(Some(Scheme::Deeplab)),
            (None, Some(_)) => Ok(Some(Scheme::Seq)),
            (None, None) => Ok(None),
        }
    }
}

/// One TreeMTL state-dict entry and the variable of ours it holds; `ours` is `None` for a batch
/// norm's `num_batches_tracked` counter, which only training uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub ours: Option<String>,
    pub theirs: String,
}

/// Collects the pairs of one block or head, relative to a prefix on each side.
pub(crate) struct Pairs<'a> {
    out: &'a mut Vec<KeyPair>,
    ours: String,
    theirs: String,
}

impl Pairs<'_> {
    /// A bias-free convolution.
    pub fn conv(&mut self, ours: &str, theirs: &str) {
        self.param(ours, theirs, "weight");
    }

    /// A convolution with a bias (the heads).
    pub fn conv_bias(&mut self, ours: &str, theirs: &str) {
        self.param(ours, theirs, "weight");
        self.param(ours, theirs, "bias");
    }

    /// A batch norm, its running statistics and its (unused) batch counter.
    pub fn bn(&mut self, ours: &str, theirs: &str) {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            self.param(ours, theirs, p);
        }
        self.out.push(KeyPair { ours: None, theirs: format!("{}{theirs}.num_batches_tracked", self.theirs) });
    }

    fn param(&mut self, ours: &str, theirs: &str, leaf: &str) {
        self.out.push(KeyPair { ours: Some(format!("{}{ours}.{leaf}", self.ours)), theirs: format!("{}{theirs}.{leaf}", self.theirs) });
    }
}

/// Every entry of the TreeMTL state dict of a model with `config` under `scheme`, in the order
/// PyTorch's `state_dict()` lists them (backbone blocks, then heads).
///
/// # Errors
/// A scheme the backbone cannot be written in (Deeplab names for MobileNetV2).
pub fn key_map(config: &ModelConfig, scheme: Scheme) -> Result<Vec<KeyPair>> {
    let specs = config.backbone.fine_blocks();
    let fine = config.layout.to_fine(config.backbone.coarse_counts())?;
    let mut out = Vec::new();
    let mut node = 0;
    for (level, sets) in fine.blocks().iter().enumerate() {
        for _ in sets {
            let mut pairs = Pairs { out: &mut out, ours: format!("tree.{node}."), theirs: format!("backbone.mtl_blocks.{node}.") };
            let spec: &BlockSpec = &specs[level];
            match scheme {
                Scheme::Deeplab => deeplab::block(spec, &mut pairs).map_err(|reason| {
                    Error::parameter("scheme", format!("{reason}; backbone `{}` checkpoints use MTSeqModel keys", config.backbone.name()))
                })?,
                Scheme::Seq => seq::block(spec, &mut pairs),
            }
            node += 1;
        }
    }
    for task in &config.tasks {
        let name = task.kind.name();
        let mut pairs = Pairs { out: &mut out, ours: format!("heads.{name}."), theirs: format!("heads.{name}.") };
        for b in 1..=config.head.rates.len() {
            for c in 1..=3 {
                let leaf = format!("fc{b}.conv{c}");
                pairs.conv_bias(&leaf, &leaf);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InputSpace;
    use crate::model::{HeadConfig, Model, layout_at};
    use tch::Device;

    fn config(backbone: BackboneKind, index: usize) -> ModelConfig {
        ModelConfig {
            backbone,
            tasks: nyuv2_tasks(),
            layout: layout_at(3, 5, index).unwrap(),
            head: HeadConfig { width: 2, rates: vec![6, 12, 18, 24], dropout: 0.5 },
        }
    }

    /// Every variable of the model is mapped exactly once, whatever the backbone and scheme.
    #[test]
    fn maps_every_variable_once() {
        for (backbone, scheme) in [
            (BackboneKind::Small, Scheme::Deeplab),
            (BackboneKind::Small, Scheme::Seq),
            (BackboneKind::Resnet34, Scheme::Deeplab),
            (BackboneKind::Resnet34, Scheme::Seq),
            (BackboneKind::Mobilenetv2, Scheme::Seq),
        ] {
            let cfg = config(backbone, 9);
            let m = Model::new(cfg.clone(), InputSpace::reference(), Device::Cpu, 0).unwrap();
            let map = key_map(&cfg, scheme).unwrap();
            let mut ours: Vec<String> = map.iter().filter_map(|p| p.ours.clone()).collect();
            ours.sort();
            let mut vars: Vec<String> = m.vs.variables().into_keys().collect();
            vars.sort();
            assert_eq!(ours, vars, "{backbone:?} {scheme:?}");
            let theirs: std::collections::HashSet<&str> = map.iter().map(|p| p.theirs.as_str()).collect();
            assert_eq!(theirs.len(), map.len(), "TreeMTL keys are distinct");
        }
    }

    /// The key names of docs/REFERENCE.md §2.6, worked out by hand for ResNet34 layout #9.
    #[test]
    fn resnet34_keys_follow_the_reference() {
        let cfg = config(BackboneKind::Resnet34, 9);
        let find =
            |scheme, ours: &str| key_map(&cfg, scheme).unwrap().into_iter().find(|p| p.ours.as_deref() == Some(ours)).unwrap().theirs;
        // Layout #9 is [[{1}, {0, 2}], [{1}, {0, 2}], [{1}, {2}, {0}], …]: two copies of fine blocks 0–3
        // (nodes 0–7, two per level), then three of fine block 4 (nodes 8–10), the first with a downsample.
        assert_eq!(find(Scheme::Deeplab, "tree.0.conv.weight"), "backbone.mtl_blocks.0.residual_block.0.weight");
        assert_eq!(find(Scheme::Deeplab, "tree.0.bn.running_var"), "backbone.mtl_blocks.0.residual_block.1.running_var");
        assert_eq!(find(Scheme::Deeplab, "tree.8.conv2.weight"), "backbone.mtl_blocks.8.residual_block.block.conv2.weight");
        assert_eq!(find(Scheme::Deeplab, "tree.10.downsample.bn.bias"), "backbone.mtl_blocks.10.residual_block.ds.1.bias");
        assert_eq!(find(Scheme::Seq, "tree.1.bn.weight"), "backbone.mtl_blocks.1.compute_nodes.1.basicOp.weight");
        // Fine block 4: [ds-conv, ds-BN, conv1, BN1, ReLU, conv2, BN2, Add, ReLU].
        assert_eq!(find(Scheme::Seq, "tree.9.downsample.conv.weight"), "backbone.mtl_blocks.9.compute_nodes.0.basicOp.weight");
        assert_eq!(find(Scheme::Seq, "tree.8.conv1.weight"), "backbone.mtl_blocks.8.compute_nodes.2.basicOp.weight");
        assert_eq!(find(Scheme::Seq, "tree.8.bn2.running_mean"), "backbone.mtl_blocks.8.compute_nodes.6.basicOp.running_mean");
        // Fine block 1: [conv1, BN1, ReLU, conv2, BN2, Add, ReLU].
        assert_eq!(find(Scheme::Seq, "tree.3.conv2.weight"), "backbone.mtl_blocks.3.compute_nodes.3.basicOp.weight");
        assert_eq!(find(Scheme::Seq, "heads.normal.fc4.conv3.bias"), "heads.normal.fc4.conv3.bias");
        // All-shared: one stem BN, two BNs in each of the 16 BasicBlocks, and the shortcut BNs of fine blocks 4, 8, 14.
        let all_shared = config(BackboneKind::Resnet34, 0);
        let counters = key_map(&all_shared, Scheme::Deeplab).unwrap().iter().filter(|p| p.ours.is_none()).count();
        assert_eq!(counters, 1 + 2 * 16 + 3);
    }

    #[test]
    fn mobilenet_residual_block_and_deeplab_refusal() {
        let cfg = config(BackboneKind::Mobilenetv2, 0);
        let map = key_map(&cfg, Scheme::Seq).unwrap();
        // Fine block 6 is the first residual bottleneck: [conv, BN, ReLU, dw, BN, ReLU, conv, BN, Add].
        let get = |ours: &str| map.iter().find(|p| p.ours.as_deref() == Some(ours)).unwrap().theirs.clone();
        assert_eq!(get("tree.6.depthwise.conv.weight"), "backbone.mtl_blocks.6.compute_nodes.3.basicOp.weight");
        assert_eq!(get("tree.6.project.bn.weight"), "backbone.mtl_blocks.6.compute_nodes.7.basicOp.weight");
        assert_eq!(get("tree.31.bn.bias"), "backbone.mtl_blocks.31.compute_nodes.1.basicOp.bias");
        let err = key_map(&cfg, Scheme::Deeplab).unwrap_err().to_string();
        assert!(err.contains("MTSeqModel") && err.contains("mobilenetv2"), "{err}");
    }

    #[test]
    fn detects_the_scheme_from_keys() {
        assert_eq!(Scheme::detect(["backbone.mtl_blocks.0.residual_block.0.weight"]), Ok(Some(Scheme::Deeplab)));
        assert_eq!(
            Scheme::detect(["heads.normal.fc1.conv1.weight", "backbone.mtl_blocks.3.compute_nodes.0.basicOp.weight"]),
            Ok(Some(Scheme::Seq))
        );
        assert_eq!(Scheme::detect(["fc.weight"]), Ok(None));
        assert!(
            Scheme::detect(["backbone.mtl_blocks.0.residual_block.0.weight", "backbone.mtl_blocks.1.compute_nodes.0.basicOp.weight"])
                .is_err()
        );
    }
}
