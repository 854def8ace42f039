//! `mtrobust import treemtl`: converts a TreeMTL checkpoint (docs/REFERENCE.md §2.6) into an
//! mtrobust checkpoint once; every other command then takes the result.
use super::GlobalArgs;
use super::arch::ArchArgs;
use anyhow::Context;
use clap::{Args, Subcommand};
use mtrobust::model::treemtl::{Scheme, import};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Convert a TreeMTL `.model` (or a `.pt`/`.safetensors` state dict with TreeMTL keys) for the given backbone, tasks and layout.
    #[command(after_help = "The key scheme (Deeplab_ASPP_Layout or MTSeqModel) is read from the file. Loading is strict: a missing,\n\
                      unexpected or mis-shaped key is an error naming it, and nothing is written.\n\n\
                      Examples:\n  mtrobust import treemtl --checkpoint verify_1118/9/segment_semantic_normal_depth_zbuffer.model \\\n      \
                      --backbone resnet34 --tasks nyuv2 --index 9 --out nyu9.safetensors\n  \
                      mtrobust import treemtl --checkpoint tasko.model --backbone resnet34 --tasks taskonomy --index 4 --out tasko4.safetensors")]
    Treemtl(TreemtlArgs),
}

#[derive(Debug, Args)]
pub struct TreemtlArgs {
    /// The TreeMTL checkpoint: a torch.save file (`{'state_dict': …}` or a bare state dict) or a `.safetensors` file.
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    arch: ArchArgs,
    /// Require this key scheme (default: whichever the file uses).
    #[arg(long, value_enum)]
    scheme: Option<Scheme>,
    /// Where to write the mtrobust checkpoint (`.safetensors`; the `.json` sidecar goes beside it).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing checkpoint at --out.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: ImportCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let ImportCommand::Treemtl(args) = cmd;
    mtrobust::model::checkpoint::check_weights_path(&args.out).context("--out")?;
    for path in [args.out.clone(), mtrobust::model::checkpoint::sidecar_path(&args.out)] {
        mtrobust::files::check_new_output(&path, args.force).context("--out")?;
    }
    let device = mtrobust::device::parse_device(&global.device)?;
    let (config, index) = args.arch.config(args.arch.task_specs()?)?;
    let (mut model, scheme) = import(&args.checkpoint, config, args.scheme, device)?;
    model.layout_index = index;
    let provenance = serde_json::json!({
        "imported": { "from": args.checkpoint.display().to_string(), "format": "treemtl", "scheme": scheme.class_name() }
    });
    model.save(&args.out, Some(provenance))?;
    if !global.quiet {
        eprintln!("read {} keys from {}", scheme.class_name(), args.checkpoint.display());
    }
    outln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
