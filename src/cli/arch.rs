//! The flags that describe an architecture (`--backbone --tasks --index|--layout --head-width`),
//! shared by `model info` and `train`.
use anyhow::Context;
use clap::Args;
use mtrobust::model::{BackboneKind, Layout, ModelConfig, layout_at};
use mtrobust::task::{TaskSpec, parse_tasks};

/// Which network to build.
#[derive(Debug, Clone, Args)]
pub struct ArchArgs {
    /// Backbone: small (CPU-sized), resnet34 (Deeplab-ResNet34), mobilenetv2.
    #[arg(long, value_enum, default_value_t = BackboneKind::Small)]
    pub backbone: BackboneKind,
    /// Tasks: nyuv2, taskonomy, or a list like `segm:10,normal,depth,keyp,edge` (default: nyuv2
    /// for `model info`; the data's tasks for `train`).
    #[arg(long)]
    pub tasks: Option<String>,
    /// Layout by TreeMTL model index (0 = all-shared; NYUv2 2 / Taskonomy 4 = independent).
    #[arg(long, conflicts_with = "layout")]
    pub index: Option<usize>,
    /// Layout in TreeMTL's text form, e.g. "[[{0, 1, 2}], [{0, 1, 2}], [{1, 2}, {0}], [{1, 2}, {0}], [{0}, {2}, {1}]]".
    #[arg(long)]
    pub layout: Option<String>,
    /// Hidden width of the ASPP heads (default: 1024 for resnet34/mobilenetv2, 32 for small).
    #[arg(long)]
    pub head_width: Option<i64>,
}

impl ArchArgs {
    /// The task list.
    pub fn task_specs(&self) -> anyhow::Result<Vec<TaskSpec>> {
        Ok(parse_tasks(self.tasks.as_deref().unwrap_or("nyuv2"))?)
    }

    /// The model configuration and the layout's TreeMTL index (when known).
    pub fn config(&self, tasks: Vec<TaskSpec>) -> anyhow::Result<(ModelConfig, Option<usize>)> {
        let blocks = self.backbone.coarse_counts().len();
        let (layout, index) = match (&self.layout, self.index) {
            (Some(text), _) => {
                let layout: Layout = text.parse().context("--layout")?;
                let index = mtrobust::model::index_of(&layout);
                (layout, index)
            }
            (None, Some(i)) => (layout_at(tasks.len(), blocks, i)?, Some(i)),
            (None, None) => (Layout::all_shared(tasks.len(), blocks), Some(0)),
        };
        let mut head = self.backbone.default_head();
        if let Some(w) = self.head_width {
            anyhow::ensure!(w >= 1, "--head-width must be at least 1 (got {w})");
            head.width = w;
        }
        let config = ModelConfig { backbone: self.backbone, tasks, layout, head };
        config.check()?;
        Ok((config, index))
    }
}
