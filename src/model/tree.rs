//! The branched multi-task network (docs/REFERENCE.md §2.5): one copy of a backbone block per (level, task set)
//! of the fine layout, whose parent is the first block of the previous level that contains its
//! set, plus one head per task. `forward` computes every shared block once; `forward_tasks` runs
//! only the root-to-leaf paths of the requested tasks.
use super::backbone::BackboneKind;
use super::blocks::Block;
use super::head::{AsppHead, HeadConfig};
use super::layout::Layout;
use crate::error::{Error, Result};
use crate::task::{TaskMap, TaskSet, TaskSpec};
use tch::Tensor;
use tch::nn;

/// Output channels of a head and hidden width, at most: far above any real model (the paper's
/// heads are 1024 wide), low enough that a parameter count cannot overflow and a crafted sidecar
/// is refused before anything is built.
pub const MAX_CHANNELS: i64 = 1 << 16;
/// Dilation rates of a head, at most, and the largest rate (the paper's are 6, 12, 18, 24).
pub const MAX_RATES: usize = 16;
pub const MAX_RATE: i64 = 1024;

/// Everything needed to rebuild a model (saved beside its weights).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    pub backbone: BackboneKind,
    pub tasks: Vec<TaskSpec>,
    /// The coarse layout (five blocks), in TreeMTL's text form.
    #[serde(with = "layout_text")]
    pub layout: Layout,
    pub head: HeadConfig,
}

mod layout_text {
    use super::Layout;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(l: &Layout, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&l.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Layout, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl ModelConfig {
    /// Checks that the layout fits the tasks and the backbone.
    ///
    /// # Errors
    /// A layout for another number of tasks or blocks.
    pub fn check(&self) -> Result<()> {
        if self.layout.n_tasks() != self.tasks.len() {
            return Err(Error::Layout {
                spec: self.layout.to_string(),
                reason: format!("is a layout for {} tasks but the model has {} tasks", self.layout.n_tasks(), self.tasks.len()),
            });
        }
        let coarse = self.backbone.coarse_counts().len();
        if self.layout.n_blocks() != coarse {
            return Err(Error::Layout {
                spec: self.layout.to_string(),
                reason: format!(
                    "has {} blocks; layouts are written over the {coarse} coarse blocks of the backbone",
                    self.layout.n_blocks()
                ),
            });
        }
        if let Some(t) = self.tasks.iter().find(|t| !(1..=MAX_CHANNELS).contains(&t.channels)) {
            return Err(Error::config("tasks", format!("`{}` has {} output channels; a head has 1 to {MAX_CHANNELS}", t.kind, t.channels)));
        }
        let h = &self.head;
        if !(1..=MAX_RATES).contains(&h.rates.len())
            || h.rates.iter().any(|r| !(1..=MAX_RATE).contains(r))
            || !(1..=MAX_CHANNELS).contains(&h.width)
            || !(0.0..1.0).contains(&h.dropout)
        {
            return Err(Error::config(
                "head",
                format!(
                    "an ASPP head needs 1 to {MAX_RATES} rates of 1 to {MAX_RATE}, width 1 to {MAX_CHANNELS} and dropout in [0, 1); \
                     got {} rates {:?}, width {}, dropout {}",
                    h.rates.len(),
                    &h.rates[..h.rates.len().min(MAX_RATES + 1)],
                    h.width,
                    h.dropout
                ),
            ));
        }
        Ok(())
    }

    /// Trainable parameters in all, without building anything (a config that passed
    /// [`ModelConfig::check`] cannot overflow it).
    pub fn param_count(&self) -> i64 {
        self.coarse_block_params().iter().sum::<i64>() + self.head_params().iter().sum::<i64>()
    }

    /// Trainable backbone parameters per coarse block (block copies × block size), without
    /// building anything.
    pub fn coarse_block_params(&self) -> Vec<i64> {
        let specs = self.backbone.fine_blocks();
        let mut start = 0;
        let mut out = Vec::new();
        for (c, &n) in self.backbone.coarse_counts().iter().enumerate() {
            let copies = self.layout.blocks()[c].len() as i64;
            out.push(copies * specs[start..start + n].iter().map(|b| b.param_count()).sum::<i64>());
            start += n;
        }
        out
    }

    /// Trainable parameters of each head, in task order.
    pub fn head_params(&self) -> Vec<i64> {
        let cin = self.backbone.out_channels();
        self.tasks.iter().map(|t| self.head.param_count(cin, t.channels)).collect()
    }
}

/// One block copy in the tree.
pub struct TreeNode {
    /// Fine block index (depth in the tree).
    pub level: usize,
    /// The tasks sharing this copy.
    pub tasks: TaskSet,
    /// Index of the parent node; `None` at level 0 (reads the input).
    pub parent: Option<usize>,
    /// Trainable parameters of this copy.
    pub params: i64,
    block: Box<dyn Block>,
}

/// The branched network.
pub struct TreeNet {
    config: ModelConfig,
    fine: Layout,
    nodes: Vec<TreeNode>,
    heads: Vec<AsppHead>,
}

impl std::fmt::Debug for TreeNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeNet").field("config", &self.config).field("nodes", &self.nodes.len()).finish()
    }
}

impl TreeNet {
    /// Builds the network's variables under `p` (`p/tree/<node>/…`, `p/heads/<task>/…`).
    ///
    /// # Errors
    /// A configuration that fails [`ModelConfig::check`].
    pub fn new(p: &nn::Path, config: ModelConfig) -> Result<Self> {
        config.check()?;
        let specs = config.backbone.fine_blocks();
        let fine = config.layout.to_fine(config.backbone.coarse_counts())?;
        let mut nodes: Vec<TreeNode> = Vec::new();
        let tree = p / "tree";
        for (level, sets) in fine.blocks().iter().enumerate() {
            for &set in sets {
                let parent = if level == 0 {
                    None
                } else {
                    let parent = nodes.iter().position(|n| n.level == level - 1 && n.tasks.is_superset(set));
                    Some(parent.expect("checked layouts nest every set in a parent set"))
                };
                let index = nodes.len();
                nodes.push(TreeNode {
                    level,
                    tasks: set,
                    parent,
                    params: specs[level].param_count(),
                    block: specs[level].build(&tree / index),
                });
            }
        }
        let cin = config.backbone.out_channels();
        let heads = config.tasks.iter().map(|t| AsppHead::new(p / "heads" / t.kind.name(), cin, t.channels, &config.head)).collect();
        Ok(TreeNet { config, fine, nodes, heads })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The fine layout (one entry per backbone fine block).
    pub fn fine_layout(&self) -> &Layout {
        &self.fine
    }

    /// The block copies in creation order.
    pub fn nodes(&self) -> &[TreeNode] {
        &self.nodes
    }

    /// Number of tasks.
    pub fn n_tasks(&self) -> usize {
        self.config.tasks.len()
    }

    /// Trainable parameters of the backbone tree (all block copies).
    pub fn backbone_params(&self) -> i64 {
        self.nodes.iter().map(|n| n.params).sum()
    }

    /// Trainable parameters of each head, in task order.
    pub fn head_params(&self) -> Vec<i64> {
        self.config.head_params()
    }

    /// All task outputs, computing each shared block once.
    ///
    /// # Errors
    /// What libtorch reports (out of memory, an input that is not `[B, 3, H, W]`).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<TaskMap<Tensor>> {
        self.forward_tasks(x, TaskSet::all(self.n_tasks()), train)
    }

    /// The outputs of the tasks in `wanted` only: blocks outside their root-to-leaf paths are
    /// skipped, so a task's path never touches another task's branch or head.
    ///
    /// # Errors
    /// What libtorch reports (out of memory, an input that is not `[B, 3, H, W]`).
    pub fn forward_tasks(&self, x: &Tensor, wanted: TaskSet, train: bool) -> Result<TaskMap<Tensor>> {
        let last = self.fine.n_blocks() - 1;
        let mut outputs: Vec<Option<Tensor>> = Vec::with_capacity(self.nodes.len());
        let mut result = TaskMap::new();
        let mut features: Vec<Option<usize>> = vec![None; self.n_tasks()];
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.tasks.intersects(wanted) {
                outputs.push(None);
                continue;
            }
            let input = match node.parent {
                None => x,
                Some(p) => outputs[p].as_ref().expect("a parent contains its children's tasks, so it ran"),
            };
            outputs.push(Some(node.block.forward(input, train)?));
            if node.level == last {
                for t in node.tasks.ids() {
                    features[t] = Some(i);
                }
            }
        }
        for (t, spec) in self.config.tasks.iter().enumerate() {
            if wanted.contains(t) {
                let f = outputs[features[t].expect("every task has a leaf")].as_ref().expect("leaf ran");
                result.insert(spec.kind, self.heads[t].forward(f, train)?);
            }
        }
        Ok(result)
    }

    /// The output of task `id` alone, through its root-to-leaf path.
    ///
    /// # Errors
    /// What libtorch reports.
    pub fn forward_task(&self, x: &Tensor, id: usize, train: bool) -> Result<Tensor> {
        let kind = self.config.tasks[id].kind;
        let mut out = self.forward_tasks(x, TaskSet::single(id), train)?;
        Ok(out.get_mut(kind).map(|t| t.shallow_clone()).expect("the requested task is computed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InputSpace;
    use crate::model::{Model, layout_at};
    use crate::task::nyuv2_tasks;
    use tch::{Device, Kind};

    fn config(backbone: BackboneKind, index: usize, head: HeadConfig) -> ModelConfig {
        ModelConfig { backbone, tasks: nyuv2_tasks(), layout: layout_at(3, 5, index).unwrap(), head }
    }

    fn trainable(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    #[test]
    fn resnet34_parameter_counts_match_the_spec() {
        // docs/REFERENCE.md §2.5 (backbone only): index 9 → 63,622,528; IND (2) → 63,854,016; AS (0) → 21,284,672;
        // 49 → 34,399,040; 10 and 5 → 62,506,112.
        for (index, want) in [(9, 63_622_528), (2, 63_854_016), (0, 21_284_672), (49, 34_399_040), (10, 62_506_112), (5, 62_506_112)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let tiny = HeadConfig { width: 1, rates: vec![1], dropout: 0.0 };
            let net = TreeNet::new(&vs.root(), config(BackboneKind::Resnet34, index, tiny)).unwrap();
            assert_eq!(net.backbone_params(), want, "index {index}");
            assert_eq!(net.config().coarse_block_params().iter().sum::<i64>(), want, "from the config, index {index}");
            let heads: i64 = net.head_params().iter().sum();
            assert_eq!(trainable(&vs), want + heads, "variables of index {index}");
        }
    }

    #[test]
    fn resnet34_with_paper_heads_has_the_full_count() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = TreeNet::new(&vs.root(), config(BackboneKind::Resnet34, 9, HeadConfig::paper())).unwrap();
        assert_eq!(net.head_params().iter().sum::<i64>(), 69_410_992);
        assert_eq!(trainable(&vs), 63_622_528 + 69_410_992);
    }

    #[test]
    fn one_node_per_level_and_set_with_first_containing_parent() {
        let vs = nn::VarStore::new(Device::Cpu);
        let tiny = HeadConfig { width: 1, rates: vec![1], dropout: 0.0 };
        let net = TreeNet::new(&vs.root(), config(BackboneKind::Resnet34, 9, tiny)).unwrap();
        let fine = net.fine_layout();
        assert_eq!(fine.n_blocks(), 17);
        assert_eq!(net.nodes().len(), fine.blocks().iter().map(Vec::len).sum::<usize>());
        for n in net.nodes() {
            if let Some(p) = n.parent {
                let parent = &net.nodes()[p];
                assert_eq!(parent.level + 1, n.level);
                assert!(parent.tasks.is_superset(n.tasks));
                let first = net.nodes().iter().position(|m| m.level == parent.level && m.tasks.is_superset(n.tasks));
                assert_eq!(first, Some(p));
            }
        }
    }

    #[test]
    fn output_resolutions_follow_the_backbones() {
        let tiny = HeadConfig { width: 4, rates: vec![6, 12], dropout: 0.5 };
        let _guard = tch::no_grad_guard();
        for (backbone, size, want) in [
            (BackboneKind::Resnet34, 321, 41),
            (BackboneKind::Resnet34, 224, 29),
            (BackboneKind::Mobilenetv2, 321, 11),
            (BackboneKind::Small, 128, 16),
        ] {
            let m = Model::new(config(backbone, 0, tiny.clone()), InputSpace::reference(), Device::Cpu, 1).unwrap();
            let x = Tensor::zeros([1, 3, size, size], (Kind::Float, Device::Cpu));
            let out = m.forward_t(&x, false).unwrap();
            assert_eq!(out.get(crate::task::TaskKind::SegmentSemantic).unwrap().size(), vec![1, 40, want, want], "{backbone:?} at {size}");
            assert_eq!(out.get(crate::task::TaskKind::Normal).unwrap().size(), vec![1, 3, want, want]);
        }
    }

    #[test]
    fn a_task_path_equals_the_full_forward_and_ignores_other_branches() {
        let small = BackboneKind::Small;
        let m = Model::new(config(small, 9, small.default_head()), InputSpace::reference(), Device::Cpu, 3).unwrap();
        let x = {
            let _rng = crate::rng::torch_rng(4);
            Tensor::randn([2, 3, 48, 48], (Kind::Float, Device::Cpu)) * 50.0
        };
        let _guard = tch::no_grad_guard();
        let full = m.forward_t(&x, false).unwrap();
        for (id, spec) in m.tasks().iter().enumerate() {
            let path = m.tree().unwrap().forward_task(&x, id, false).unwrap();
            let diff = f64::try_from((&path - full.get(spec.kind).unwrap()).abs().max()).unwrap();
            assert_eq!(diff, 0.0, "task {}", spec.kind);
        }
        // Poison the depth head: segmentation's path must not touch it.
        crate::testutil::poison_head(&m, crate::task::TaskKind::DepthZbuffer);
        let seg = m.tree().unwrap().forward_task(&x, 0, false).unwrap();
        assert!(bool::try_from(seg.isfinite().all()).unwrap());
        let depth = m.tree().unwrap().forward_task(&x, 2, false).unwrap();
        assert!(bool::try_from(depth.isnan().any()).unwrap());
    }

    #[test]
    fn checkpoints_round_trip_and_load_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let small = BackboneKind::Small;
        let a = Model::new(config(small, 9, small.default_head()), InputSpace::reference(), Device::Cpu, 5).unwrap();
        a.save(&path, None).unwrap();
        let (b, sidecar) = Model::load(&path, Device::Cpu).unwrap();
        assert_eq!(&sidecar.model, a.config().unwrap());
        let x = {
            let _rng = crate::rng::torch_rng(6);
            Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu))
        };
        let _guard = tch::no_grad_guard();
        let (ya, yb) = (a.forward_t(&x, false).unwrap(), b.forward_t(&x, false).unwrap());
        for (k, t) in ya.iter() {
            assert!(t.equal(yb.get(k).unwrap()), "{k}");
        }
        // Same weights read into a different layout: the error names a tensor and the sidecar's layout.
        let other = Model::new(config(small, 2, small.default_head()), InputSpace::reference(), Device::Cpu, 5).unwrap();
        let other_path = dir.path().join("other.safetensors");
        other.save(&other_path, None).unwrap();
        std::fs::copy(crate::model::checkpoint::sidecar_path(&path), crate::model::checkpoint::sidecar_path(&other_path)).unwrap();
        let err = Model::load(&other_path, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("tree.") && err.contains("layout"), "{err}");
        // A missing sidecar and a wrong extension are explained.
        std::fs::remove_file(crate::model::checkpoint::sidecar_path(&path)).unwrap();
        assert!(Model::load(&path, Device::Cpu).unwrap_err().to_string().contains("sidecar"));
        assert!(Model::load(&dir.path().join("m.pt"), Device::Cpu).unwrap_err().to_string().contains(".safetensors"));
    }

    #[test]
    fn input_gradient_matches_central_differences_in_float64() {
        use crate::testutil::{random_batch, small_model, tasks_of, three_tasks};
        let specs = three_tasks();
        let mut m = small_model(&specs, 9, 11);
        m.set_kind(Kind::Double).unwrap();
        let tasks = tasks_of(&specs);
        let batch = random_batch(&specs, 2, 24, 12, Kind::Double);
        let loss = |x: &Tensor| {
            let out = m.forward_t(x, false).unwrap();
            crate::task::losses(&tasks, &out, &batch.targets).unwrap().values().map(|p| p.pooled()).sum::<Tensor>()
        };
        let x = batch.x.detach().set_requires_grad(true);
        let grad = Tensor::run_backward(&[loss(&x)], &[&x], false, false).pop().unwrap();
        let _guard = tch::no_grad_guard();
        let flat = grad.flatten(0, -1);
        let n = flat.numel() as i64;
        let h = 1e-4;
        let mut checked = 0;
        for k in 0..40 {
            let idx = (k * 7919 + 13) % n;
            let xp = batch.x.copy();
            let _ = xp.view([-1]).get(idx).f_add_scalar_(h).unwrap();
            let xm = batch.x.copy();
            let _ = xm.view([-1]).get(idx).f_add_scalar_(-h).unwrap();
            let fd = (f64::try_from(loss(&xp)).unwrap() - f64::try_from(loss(&xm)).unwrap()) / (2.0 * h);
            let g = f64::try_from(flat.get(idx)).unwrap();
            assert!((fd - g).abs() <= 1e-6 + 1e-4 * g.abs().max(fd.abs()), "coordinate {idx}: analytic {g:e} vs finite difference {fd:e}");
            checked += (g != 0.0) as usize;
        }
        assert!(checked > 20, "most sampled coordinates should have a non-zero gradient ({checked})");
    }
}
