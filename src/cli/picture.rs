//! `mtrobust picture`: the paper's Figure 6 for one sample — adversarial inputs per direction and
//! ε, the perturbation amplified, and each task's prediction clean vs attacked.
use super::GlobalArgs;
use super::attack::load_model;
use super::attack_args::AttackArgs;
use super::data_args::DataArgs;
use clap::Args;
use mtrobust::data::{Loader, Mode, SampleSource};
use mtrobust::task::TaskKind;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust picture --model runs/demo/models/shared/model.safetensors --data runs/demo/data --sample 0 \\
      --eps 0,4,8,16 --direction single:segm --direction total --direction gbmta --out fig6.png")]
pub struct PictureArgs {
    /// Checkpoint (`.safetensors` with its `.json` sidecar).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Split to read the sample from.
    #[arg(long, default_value = "test")]
    split: String,
    /// Index of the sample in the split.
    #[arg(long, default_value_t = 0)]
    sample: usize,
    #[command(flatten)]
    attack: AttackArgs,
    /// Seed of random starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The PNG to write.
    #[arg(long, default_value = "fig6.png")]
    out: PathBuf,
    /// Replace an existing file at --out.
    #[arg(long)]
    force: bool,
}

/// ε = 0 is the clean row, always drawn: it is not an attack.
fn is_zero(e: &str) -> bool {
    let e = e.trim();
    e.strip_suffix("/255").unwrap_or(e).trim().parse::<f64>() == Ok(0.0)
}

pub fn run(a: PictureArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    mtrobust::files::check_new_output(&a.out, a.force).map_err(|e| anyhow::anyhow!("--out: {}", e.chain()))?;
    let model = load_model(&a.model, None, global)?;
    let dataset = a.data.open(&a.split, Mode::Test)?;
    let n = dataset.reader.len();
    if a.sample >= n {
        anyhow::bail!(
            "--sample {}: split `{}` of {} has {n} samples (0..{})",
            a.sample,
            a.split,
            a.data.data.display(),
            n.saturating_sub(1)
        );
    }
    let specs = model.tasks();
    let tasks = dataset.tasks_for(specs)?;
    let kinds: Vec<TaskKind> = specs.iter().map(|s| s.kind).collect();
    let loader = Loader::new(dataset, kinds.clone(), 1, None)?;
    // The same augmentation seed as evaluation reads the sample with.
    let batch = loader.samples(&[(a.sample, a.sample as u64)], model.device())?;
    let mut attack = a.attack.clone();
    attack.eps.retain(|e| !is_zero(e));
    let configs = if attack.eps.is_empty() { Vec::new() } else { attack.configs(&kinds, a.seed)? };
    let img = mtrobust::report::picture::render(&model, &tasks, &batch, &configs)?;
    mtrobust::files::write_png(&a.out, &img)?;
    outln!("wrote {} ({}×{} px: ground truth, clean and {} attacked rows)", a.out.display(), img.width(), img.height(), configs.len());
    Ok(ExitCode::SUCCESS)
}
