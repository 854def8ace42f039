//! Argument parsing and dispatch. Errors are printed once to stderr as `error: …` with their
//! causes; exit codes: 0 success, 1 finished but a sanity check failed, 2 usage/data/checkpoint/torch errors.
mod arch;
mod attack;
mod attack_args;
mod data;
mod data_args;
mod demo;
mod model;
mod picture;
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
    /// CPU threads for libtorch (default: libtorch's choice).
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
    /// The whole pipeline on the built-in data: render scenes, train, attack with every direction.
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
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.global.threads {
        tch::set_num_threads(n.max(1) as i32);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
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
    }
}
