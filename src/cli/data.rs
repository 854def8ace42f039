//! `mtrobust data synth`: the built-in procedurally rendered multi-task dataset.
use super::GlobalArgs;
use super::progress::Progress;
use clap::{Args, Subcommand};
use mtrobust::data::synth::export::{SynthOptions, write_dataset};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Render indoor scenes with aligned segmentation, depth, normals, keypoints and edges, and
    /// write them in the Tiny-Taskonomy format (train/test split, preview.png).
    #[command(
        after_help = "Examples:\n  mtrobust data synth --out data/synth --n 2000 --size 128 --seed 7\n  mtrobust data synth --out /tmp/tiny --n 64 --size 64"
    )]
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory (new or empty: files already there are never replaced).
    #[arg(long)]
    out: PathBuf,
    /// Number of scenes (train + test).
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Seed of the scene generator.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Fraction of scenes in the test split.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
}

pub fn run(cmd: DataCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Synth(a) => {
            let mut progress = Progress::new(global.quiet);
            let opts = SynthOptions { n: a.n, size: a.size, seed: a.seed, test_fraction: a.test_fraction };
            let started = std::time::Instant::now();
            let m = write_dataset(&a.out, &opts, &mut progress)?;
            outln!(
                "wrote {} train + {} test scenes of {}x{} px to {} in {:.1} s (classes: {}); preview: {}",
                m.train,
                m.test,
                a.size,
                a.size,
                a.out.display(),
                started.elapsed().as_secs_f64(),
                m.classes.join(", "),
                a.out.join("preview.png").display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
