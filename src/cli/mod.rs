//! Argument parsing and dispatch. Errors are printed once to stderr as `error: …` with their
//! causes; exit codes: 0 success, 1 finished but a sanity check failed, 2 usage/data/checkpoint/torch errors
//! (and a stdout that cannot be written, e.g. a full disk; a closed pipe, as in `| head`, is not an error).
#[macro_use]
mod output;
mod arch;
mod attack;
mod attack_args;
mod bench;
mod data;
mod data_args;
mod demo;
mod export;
mod import;
mod model;
mod picture;
mod precision_args;
mod progress;
mod report;
mod study;
mod train;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

/// Adversarial robustness of multi-task vision models.
#[derive(Debug, Parser)]
#[command(name = "mtrobust", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where tensors live: auto (CUDA if present), cpu, cuda, cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch (default: the physical cores, or OMP_NUM_THREADS when set).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Print no progress (results and errors still go out).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Models: `model info` prints a layout's tree and parameter counts, `model init` writes a fresh checkpoint.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Datasets: `data synth` renders the built-in multi-task scene dataset.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train a branched multi-task model, clean or adversarially (FAT).
    Train(Box<train::TrainArgs>),
    /// Attack a checkpoint and report per-task metrics before/after and ARP.
    Attack(Box<attack::AttackCmdArgs>),
    /// Clean per-task metrics of a checkpoint.
    Eval(Box<attack::EvalArgs>),
    /// A small study on the built-in data: render scenes, train three models (all-shared to
    /// independent), attack them into runs/demo/results.sqlite, write the paper's tables and
    /// figures. Uses one libtorch thread unless --threads is given.
    Demo(Box<demo::DemoArgs>),
    /// Tables from report.json files alone (several are compared against the first), or with
    /// --db the paper's tables and figures from a results store.
    Report(report::ReportArgs),
    /// Figure 6: one sample's adversarial inputs, perturbations and predictions per direction and ε.
    Picture(Box<picture::PictureArgs>),
    /// Studies: many models × attacks × directions × ε × seeds into a SQLite results store, resumable and shardable.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Results stores: merge shards, export cells as CSV/JSON, list what is done.
    #[command(subcommand)]
    Results(study::ResultsCommand),
    /// Bring your own model: `import treemtl` converts a TreeMTL checkpoint into an mtrobust checkpoint.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// `export treemtl` writes a checkpoint with TreeMTL key names (a torch.save `.pt` state dict).
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Time the floor (forward + backward to the input) and one iteration of every step rule ×
    /// direction against it, with throughput, FLOPs and peak memory (see BENCHMARKS.md).
    Bench(Box<bench::BenchArgs>),
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.global.threads {
        Some(0) => {
            Err(anyhow::anyhow!("--threads: 0 threads cannot run anything; give at least 1, or leave it out for one per physical core"))
        }
        Some(n) => {
            tch::set_num_threads(n.min(i32::MAX as usize) as i32);
            run(cli)
        }
        None => {
            // Hyper-threads share one core's vector units: more threads than cores only add contention.
            if std::env::var_os("OMP_NUM_THREADS").is_none()
                && let Some(n) = physical_cores()
            {
                tch::set_num_threads(n as i32);
            }
            run(cli)
        }
    };
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    };
    match output::finish() {
        None => code,
        // The reader went away (`| head`): nothing is lost that it wanted, so no error, like ripgrep.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Some(e) => {
            eprintln!("error: cannot write the results to stdout: {e}; the files written by the command are complete");
            ExitCode::from(2)
        }
    }
}

/// The error with every cause, a library parameter named as its flag: the library says `n_iter`
/// (the study file's key), the command line `--n-iter`. Parameters under a context (a study
/// entry) keep the study file's spelling.
fn message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<mtrobust::Error>() {
        Some(mtrobust::Error::Parameter { name, reason }) => {
            let causes: String = e.chain().skip(1).map(|c| format!(": {c}")).collect();
            format!("{}: {reason}{causes}", attack_args::flag(name))
        }
        _ => format!("{e:#}"),
    }
}

/// Physical CPU cores (distinct core ids per package in /proc/cpuinfo; Linux only).
fn physical_cores() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut cores = std::collections::HashSet::new();
    let mut package = None;
    for line in info.lines() {
        let mut kv = line.splitn(2, ':').map(str::trim);
        match (kv.next(), kv.next()) {
            (Some("physical id"), Some(v)) => package = Some(v.to_string()),
            (Some("core id"), Some(v)) => {
                cores.insert((package.clone(), v.to_string()));
            }
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Model(cmd) => model::run(cmd, &cli.global),
        Command::Data(cmd) => data::run(cmd, &cli.global),
        Command::Train(args) => train::run(*args, &cli.global),
        Command::Attack(args) => attack::run(*args, &cli.global),
        Command::Eval(args) => attack::run_eval(*args, &cli.global),
        Command::Demo(args) => demo::run(*args, &cli.global),
        Command::Report(args) => report::run(args, &cli.global),
        Command::Picture(args) => picture::run(*args, &cli.global),
        Command::Study(cmd) => study::run(cmd, &cli.global),
        Command::Results(cmd) => study::run_results(cmd, &cli.global),
        Command::Import(cmd) => import::run(cmd, &cli.global),
        Command::Export(cmd) => export::run(cmd, &cli.global),
        Command::Bench(args) => bench::run(*args, &cli.global),
    }
}
