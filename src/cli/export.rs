//! `mtrobust export treemtl`: writes a checkpoint's weights with TreeMTL key names as a `.pt`
//! state dict, for cross-checks in the reference code (`model.load_state_dict(torch.load(F))`).
use super::GlobalArgs;
use anyhow::Context;
use clap::{Args, Subcommand};
use mtrobust::model::Model;
use mtrobust::model::treemtl::{Scheme, export};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a checkpoint as a TreeMTL state dict (a torch.save `.pt` file).
    #[command(after_help = "The default scheme is the reference's (docs/REFERENCE.md §2.6): Deeplab_ASPP_Layout for resnet34 on the\n\
                      NYUv2 tasks and for the small backbone, MTSeqModel otherwise.\n\n\
                      Examples:\n  mtrobust export treemtl --model runs/nyu9.safetensors --out nyu9.pt\n  \
                      mtrobust export treemtl --model runs/mbv2.safetensors --scheme seq --out mbv2.pt")]
    Treemtl(TreemtlArgs),
}

#[derive(Debug, Args)]
pub struct TreemtlArgs {
    /// The mtrobust checkpoint (`.safetensors` with its `.json` sidecar).
    #[arg(long)]
    model: PathBuf,
    /// Key names to write (default: the class the reference builds for this model).
    #[arg(long, value_enum)]
    scheme: Option<Scheme>,
    /// Where to write the state dict (`.pt`, `.pth` or `.model`).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing file at --out.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: ExportCommand, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let ExportCommand::Treemtl(args) = cmd;
    let ext = args.out.extension().and_then(|e| e.to_str()).unwrap_or("");
    anyhow::ensure!(
        matches!(ext, "pt" | "pth" | "model"),
        "--out {}: export writes a torch.save file; name it `.pt`, `.pth` or `.model`",
        args.out.display()
    );
    mtrobust::files::check_new_output(&args.out, args.force).context("--out")?;
    let (model, _) = Model::load(&args.model, tch::Device::Cpu)?;
    let config = model.config()?;
    let scheme = args.scheme.unwrap_or_else(|| Scheme::default_for(config));
    export(&model, scheme, &args.out)?;
    outln!("wrote {} ({} keys)", args.out.display(), scheme.class_name());
    Ok(ExitCode::SUCCESS)
}
