//! The flags that pick data: `--data DIR` plus optional reader sizes.
use clap::Args;
use mtrobust::data::{Dataset, Mode, Sizes, open};
use std::path::PathBuf;

/// Which dataset directory and reader sizes.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset directory: NYUv2 or Tiny-Taskonomy (the data root or the dataset folder), or one
    /// made by `mtrobust data synth`.
    #[arg(long)]
    pub data: PathBuf,
    /// NYUv2: square input size (321); Taskonomy: first resize (256). Synthetic data: its own size.
    #[arg(long)]
    pub resize: Option<usize>,
    /// Taskonomy: final input size (224).
    #[arg(long)]
    pub crop: Option<usize>,
}

impl DataArgs {
    /// Opens `split` in `mode`.
    pub fn open(&self, split: &str, mode: Mode) -> anyhow::Result<Dataset> {
        Ok(open(&self.data, split, mode, Sizes { resize: self.resize, crop: self.crop })?)
    }
}
