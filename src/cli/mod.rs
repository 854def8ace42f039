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

/// A panic inside libtorch's infallible calls (tch's `unwrap` on an error, e.g. an allocation that
/// failed in the metrics' arithmetic): the payload carries the libtorch error.
fn torch_panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    let text = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied())?;
    let at = text.find("Torch(\"")?;
    Some(text[at + 7..].trim_end_matches("\")").replace("\\n", "\n"))
}

/// libtorch's message without its C++ backtrace (`frame #0: …` lines), and a hint when it ran
/// out of memory.
fn torch_message(text: &str) -> String {
    let first = text.split("\nframe #").next().unwrap_or(text).split("\nException raised from").next().unwrap_or(text).trim_end();
    if mtrobust::error::says_out_of_memory(text) {
        format!("{first}\n(out of memory: lower --batch-size, or --limit/--resize)")
    } else {
        first.to_string()
    }
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // libtorch failures that tch reports by panicking become errors (exit 2) below; other panics
    // are bugs and keep Rust's report (exit 101).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if torch_panic_message(info.payload()).is_none() {
            default_hook(info);
        }
    }));
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_with_threads(cli))) {
        Ok(code) => code,
        Err(payload) => match torch_panic_message(payload.as_ref()) {
            // `message` below drops libtorch's C++ frames and adds the memory hint.
            Some(text) => Err(anyhow::anyhow!("libtorch failed: {text}")),
            None => std::panic::resume_unwind(payload),
        },
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

/// Applies `--threads` (or one thread per physical core), then runs the command.
fn run_with_threads(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.global.threads {
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
        _ => torch_message(&format!("{e:#}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_libtorch_panic_becomes_its_first_line_with_a_memory_hint() {
        // What tch's `unwrap` on a failed allocation panics with (Debug of the error: escaped quotes
        // and line breaks, then libtorch's C++ frames).
        let err = tch::TchError::Torch("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 20971520 bytes.\nframe #0: c10::ThrowEnforceNotMet(...) + 0x6a\nframe #1: c10::alloc_cpu(unsigned long)".into());
        let payload: Box<dyn std::any::Any + Send> = Box::new(format!("called `Result::unwrap()` on an `Err` value: {err:?}"));
        let text = torch_panic_message(payload.as_ref()).expect("a libtorch panic");
        let shown = torch_message(&text);
        assert_eq!(
            shown,
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 20971520 bytes.\n\
             (out of memory: lower --batch-size, or --limit/--resize)"
        );
        // Other panics are not libtorch's, and other libtorch errors get no memory hint.
        assert!(torch_panic_message(&"index out of bounds" as &(dyn std::any::Any + Send)).is_none());
        assert_eq!(torch_message("shape mismatch\nframe #0: at::foo"), "shape mismatch");
    }
}
