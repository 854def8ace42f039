//! `mtrobust model info`: a layout's tree, per-block sharing and exact parameter counts.
use super::GlobalArgs;
use super::arch::ArchArgs;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use mtrobust::model::ModelConfig;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print a model's tree, which tasks share each block, and its parameter counts.
    #[command(
        after_help = "Examples:\n  mtrobust model info --backbone resnet34 --tasks nyuv2 --index 9\n  mtrobust model info --backbone small --tasks taskonomy --index 4\n  mtrobust model info --tasks nyuv2 --layout \"[[{0, 1, 2}], [{0, 1, 2}], [{1, 2}, {0}], [{1, 2}, {0}], [{0}, {2}, {1}]]\" --format json"
    )]
    Info(InfoArgs),
    /// Write a freshly initialised checkpoint (a baseline, or a start for `train --init`).
    #[command(
        after_help = "Examples:\n  mtrobust model init --tasks segm:10,normal,depth,keyp,edge --out runs/untrained.safetensors\n  mtrobust model init --backbone resnet34 --tasks nyuv2 --index 9 --out nyu9.safetensors"
    )]
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    arch: ArchArgs,
    /// Where to write the checkpoint (`.safetensors`; the `.json` sidecar goes beside it).
    #[arg(long)]
    out: std::path::PathBuf,
    /// Seed of the weight initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace a checkpoint (or its sidecar) already at --out.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    arch: ArchArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(cmd: ModelCommand, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Info(args) => info(args),
        ModelCommand::Init(args) => init(args, _global),
    }
}

fn init(args: InitArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let device = mtrobust::device::parse_device(&global.device)?;
    mtrobust::model::checkpoint::check_weights_path(&args.out)?;
    // A checkpoint is usually the result of hours of training: never replace one silently.
    let sidecar = mtrobust::model::checkpoint::sidecar_path(&args.out);
    for path in [&args.out, &sidecar] {
        mtrobust::files::check_new_output(path, args.force).context("--out")?;
    }
    let (config, index) = args.arch.config(args.arch.task_specs()?)?;
    let mut model = mtrobust::model::Model::new(config, mtrobust::data::InputSpace::reference(), device, args.seed)?;
    model.layout_index = index;
    model.save(&args.out, Some(serde_json::json!({ "initialised": { "seed": args.seed } })))?;
    outln!("wrote an initialised model to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// One coarse block of the printed table.
#[derive(Debug, serde::Serialize)]
struct CoarseRow {
    coarse: usize,
    fine: (usize, usize),
    sets: Vec<Vec<String>>,
    params: i64,
}

#[derive(Debug, serde::Serialize)]
struct Info {
    backbone: String,
    tasks: Vec<String>,
    layout: String,
    index: Option<usize>,
    blocks: Vec<CoarseRow>,
    backbone_params: i64,
    head_params: Vec<(String, i64)>,
    total_params: i64,
}

fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let tasks = args.arch.task_specs()?;
    let (config, index) = args.arch.config(tasks)?;
    let info = describe(&config, index);
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&info)?),
        Format::Text => print_text(&info),
    }
    Ok(ExitCode::SUCCESS)
}

/// Counts come from the block specs (tested equal to the variables of a built tree), so
/// describing a 130 M-parameter model allocates nothing.
fn describe(config: &ModelConfig, index: Option<usize>) -> Info {
    let names: Vec<&str> = config.tasks.iter().map(|t| t.kind.short()).collect();
    let per_block = config.coarse_block_params();
    let mut blocks = Vec::new();
    let mut start = 0;
    for (c, &n) in config.backbone.coarse_counts().iter().enumerate() {
        let sets = config.layout.blocks()[c].iter().map(|s| s.ids().map(|i| names[i].to_string()).collect()).collect();
        blocks.push(CoarseRow { coarse: c, fine: (start, start + n - 1), sets, params: per_block[c] });
        start += n;
    }
    let head_params: Vec<(String, i64)> =
        config.tasks.iter().zip(config.head_params()).map(|(t, p)| (t.kind.name().to_string(), p)).collect();
    let backbone_params = per_block.iter().sum();
    let total_params = backbone_params + head_params.iter().map(|(_, p)| p).sum::<i64>();
    Info {
        backbone: config.backbone.name().to_string(),
        tasks: config.tasks.iter().map(|t| format!("{}:{}", t.kind.name(), t.channels)).collect(),
        layout: config.layout.to_string(),
        index,
        blocks,
        backbone_params,
        head_params,
        total_params,
    }
}

fn group(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn print_text(info: &Info) {
    outln!("backbone  {}", info.backbone);
    outln!("tasks     {}", info.tasks.iter().enumerate().map(|(i, t)| format!("{i}={t}")).collect::<Vec<_>>().join("  "));
    match info.index {
        Some(i) => outln!("layout    #{i} {}", info.layout),
        None => outln!("layout    {}", info.layout),
    }
    outln!();
    outln!("{:<7} {:<7} {:<44} {:>13}", "coarse", "fine", "task groups (one copy of the block each)", "params");
    for b in &info.blocks {
        let fine = if b.fine.0 == b.fine.1 { b.fine.0.to_string() } else { format!("{}-{}", b.fine.0, b.fine.1) };
        let sets = b.sets.iter().map(|s| format!("[{}]", s.join(" "))).collect::<Vec<_>>().join(" ");
        outln!("{:<7} {:<7} {:<44} {:>13}", b.coarse, fine, sets, group(b.params));
    }
    outln!("{:<60} {:>13}", "backbone", group(info.backbone_params));
    for (name, p) in &info.head_params {
        outln!("{:<60} {:>13}", format!("head {name}"), group(*p));
    }
    outln!("{:<60} {:>13}", "total", group(info.total_params));
}
