//! `mtrobust study init|run` and `mtrobust results merge|export|list`: the experiment grid as one
//! resumable, shardable command over a SQLite results store.
use super::GlobalArgs;
use super::progress::Progress;
use clap::{Args, Subcommand, ValueEnum};
use mtrobust::study::export::{Filter, to_csv, to_json};
use mtrobust::study::{RunOptions, Shard, Store, StudyFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Write a commented example study file.
    Init(InitArgs),
    /// Run a study (again, to resume): every cell not yet in the store.
    #[command(after_help = "Examples:
  mtrobust study init --out study.toml
  mtrobust study run study.toml --db results.sqlite
  mtrobust study run study.toml --db shard-3.sqlite --shard 3/8      # one job of a job array
  mtrobust results merge results.sqlite shard-*.sqlite

Kill it at any moment and run the same command again: stored cells are skipped, and the store ends
up holding exactly what an uninterrupted run writes.")]
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it (refuses to replace an existing file).
    #[arg(long, default_value = "study.toml")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The study file (TOML).
    study: PathBuf,
    /// The results store (SQLite; created when absent).
    #[arg(long, default_value = "results.sqlite")]
    db: PathBuf,
    /// Run only shard i of n (1 ≤ i ≤ n): cells are assigned by a hash of their identity.
    #[arg(long)]
    shard: Option<Shard>,
    /// Also store each sample's per-task losses, clean and adversarial.
    #[arg(long)]
    per_sample: bool,
    /// Validate the study and print its cells, run nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Combine stores into OUT, each cell once (a cell with different numbers in two stores is an error).
    Merge(MergeArgs),
    /// Cells of a store as CSV or JSON, optionally filtered.
    Export(ExportArgs),
    /// What a store holds; with --study, which of the study's cells are done and which missing.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The output store (created when absent; written atomically).
    out: PathBuf,
    /// Stores to merge into it.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust results export --db results.sqlite --format csv > cells.csv
  mtrobust results export --db results.sqlite --attack pgd --direction gbmta --eps 8 --format json")]
pub struct ExportArgs {
    #[arg(long, default_value = "results.sqlite")]
    db: PathBuf,
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// Only these models (names; repeatable).
    #[arg(long)]
    model: Vec<String>,
    /// Only these step rules (repeatable).
    #[arg(long)]
    attack: Vec<String>,
    /// Only these directions (`gbmta`, `single:segm`, …; repeatable).
    #[arg(long)]
    direction: Vec<String>,
    /// Only these budgets in grey levels (`8`, `8/255`; comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = budget)]
    eps: Vec<f64>,
}

/// A budget as `attack --eps` reads it (NaN, ∞ and ε ≤ 0 are refused, not matched against nothing).
fn budget(text: &str) -> Result<f64, String> {
    mtrobust::attack::parse_eps(text).map_err(|e| match e {
        mtrobust::Error::Parameter { reason, .. } => reason,
        e => e.to_string(),
    })
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust results list --db results.sqlite --study study.toml
  mtrobust results list --db 'runs/shards/*.sqlite' --study study.toml             # a cluster run's state
  mtrobust results list --db 'runs/shards/*.sqlite' --study study.toml --shards 8  # and each shard's")]
pub struct ListArgs {
    /// The store, or a glob of stores such as a cluster run's shards (quote it: 'runs/shards/*.sqlite');
    /// a glob's stores are only read, so it is safe while shards are still writing them.
    #[arg(long, default_value = "results.sqlite")]
    db: PathBuf,
    /// A study file: count its cells done and missing in the store (or, with a glob, in each store
    /// and in all of them together).
    #[arg(long)]
    study: Option<PathBuf>,
    /// With --study: the study ran as N shards (`--shard i/N`); count each shard's cells done and missing.
    #[arg(long, value_name = "N", requires = "study", value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
}

fn open_existing(db: &Path) -> anyhow::Result<Store> {
    Ok(Store::open_read_only(db)?)
}

pub fn run(cmd: StudyCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        StudyCommand::Init(a) => {
            anyhow::ensure!(
                std::fs::symlink_metadata(&a.out).is_err(),
                "{} already exists; choose another --out (nothing was written)",
                a.out.display()
            );
            mtrobust::files::write_bytes_atomic(&a.out, mtrobust::study::EXAMPLE)?;
            outln!("wrote {}; edit it, then `mtrobust study run {}`", a.out.display(), a.out.display());
            Ok(ExitCode::SUCCESS)
        }
        StudyCommand::Run(a) => run_study(a, global),
    }
}

fn run_study(a: RunArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut progress = Progress::new(global.quiet);
    let study = StudyFile::read(&a.study)?;
    let device_name = match (&study.device, global.device.as_str()) {
        (Some(d), "auto") => d.clone(),
        _ => global.device.clone(),
    };
    let device = mtrobust::device::parse_device(&device_name)?;
    let t = std::time::Instant::now();
    let plan = mtrobust::study::plan(&study)?;
    let planning = t.elapsed().as_secs_f64();
    progress.info(&format!(
        "study {}: {} models × {} samples of {} → {} cells (validated in {planning:.1} s)",
        a.study.display(),
        plan.models.len(),
        plan.dataset.samples,
        plan.data.label(),
        plan.cells.len()
    ));
    if a.dry_run {
        for c in &plan.cells {
            if a.shard.is_none_or(|s| s.owns(&c.id)) {
                outln!("{}\t{}\t{}", &c.id[..12], plan.models[c.model].row.name, c.config.label());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut store = Store::open(&a.db)?;
    let options = RunOptions { device, shard: a.shard, per_sample: a.per_sample };
    let s = mtrobust::study::run(&plan, &mut store, options, &mut progress)?;
    let bookkeeping = s.store_seconds + planning;
    outln!("{} cells: {} computed now, {} stored before → {}", s.cells, s.computed, s.already_done, a.db.display());
    if s.computed > 0 {
        outln!(
            "time: attacks {:.1} s ({:.0} img·it/s), clean passes {:.1} s, loading {:.1} s, bookkeeping {:.2} s ({:.1} % of attack time)",
            s.attack_seconds,
            s.image_iterations / s.attack_seconds.max(1e-9),
            s.clean_seconds,
            s.loading_seconds,
            bookkeeping,
            100.0 * bookkeeping / s.attack_seconds.max(1e-9)
        );
    }
    if !s.failed_checks.is_empty() {
        eprintln!(
            "error: {} cell(s) produced adversarial inputs that failed a sanity check (stored, flagged): {}",
            s.failed_checks.len(),
            s.failed_checks.join("; ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_results(cmd: ResultsCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        ResultsCommand::Merge(a) => merge(a, global),
        ResultsCommand::Export(a) => {
            let store = open_existing(&a.db)?;
            let filter = Filter { models: a.model, rules: a.attack, directions: a.direction, eps: a.eps };
            let cells: Vec<_> = store.cells()?.into_iter().filter(|c| filter.keeps(c)).collect();
            match a.format {
                ExportFormat::Csv => out!("{}", to_csv(&cells)),
                ExportFormat::Json => outln!("{}", to_json(&cells)),
            }
            Ok(ExitCode::SUCCESS)
        }
        ResultsCommand::List(a) => list(a),
    }
}

/// Merges into OUT (created when absent) in one transaction under its write lock: a study may be
/// writing to OUT meanwhile, and no input is merged unless all are.
fn merge(a: MergeArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    for input in &a.inputs {
        anyhow::ensure!(input.is_file(), "{}: no such results store", input.display());
        anyhow::ensure!(
            std::fs::canonicalize(input).ok() != std::fs::canonicalize(&a.out).ok(),
            "{} is both the output and an input",
            input.display()
        );
    }
    let mut store = Store::open(&a.out)?;
    let inputs: Vec<&Path> = a.inputs.iter().map(PathBuf::as_path).collect();
    let s = store.merge(&inputs)?;
    if !global.quiet {
        eprintln!("merged {} input(s): {} new cells, {} already present", a.inputs.len(), s.added, s.duplicates);
    }
    outln!("{}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let pattern = a.db.to_string_lossy();
    if !a.db.exists() && pattern.contains(['*', '?', '[']) {
        return list_stores(&pattern, a.study.as_deref(), a.shards);
    }
    let store = open_existing(&a.db)?;
    let cells = store.cells()?;
    outln!("{}: {} cells", a.db.display(), cells.len());
    for m in store.models()? {
        let mine: Vec<_> = cells.iter().filter(|c| c.model_id == m.id).collect();
        let mut rules: Vec<&str> = mine.iter().map(|c| c.rule.as_str()).collect();
        rules.dedup();
        outln!("  {:<24} {:<12} {:>5} cells  {}", m.name, m.backbone, mine.len(), rules.join(", "));
    }
    if let Some(study) = &a.study {
        let plan = mtrobust::study::plan(&StudyFile::read(study)?)?;
        let done = store.cell_ids()?;
        let missing: Vec<_> = plan.cells.iter().filter(|c| !done.contains(&c.id)).collect();
        outln!(
            "study {}: {} of {} cells done, {} missing",
            study.display(),
            plan.cells.len() - missing.len(),
            plan.cells.len(),
            missing.len()
        );
        if let Some(n) = a.shards {
            list_shards(&plan, &done, n as usize);
        }
        for c in missing.iter().take(20) {
            outln!("  missing: {} {}", plan.models[c.model].row.name, c.config.label());
        }
        if missing.len() > 20 {
            outln!("  … and {} more", missing.len() - 20);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `results list --db GLOB`: each matching store's cells, then the study's progress over all of
/// them together (and per shard with `--shards`). The stores are opened read-only.
fn list_stores(pattern: &str, study: Option<&Path>, shards: Option<u32>) -> anyhow::Result<ExitCode> {
    let mut paths: Vec<PathBuf> =
        glob::glob(pattern).map_err(|e| anyhow::anyhow!("--db {pattern}: not a valid glob: {e}"))?.collect::<Result<_, _>>()?;
    // SQLite's own companions of a store are not stores.
    paths.retain(|p| !["-wal", "-shm", "-journal"].iter().any(|s| p.to_string_lossy().ends_with(s)));
    anyhow::ensure!(!paths.is_empty(), "--db {pattern}: matches no results store");
    paths.sort_by_cached_key(|p| natural_key(&p.to_string_lossy()));
    let stores: Vec<(PathBuf, std::collections::HashSet<String>)> =
        paths.into_iter().map(|p| Ok((p.clone(), mtrobust::study::store::read_cell_ids(&p)?))).collect::<anyhow::Result<_>>()?;
    let all: std::collections::HashSet<String> = stores.iter().flat_map(|(_, ids)| ids.iter().cloned()).collect();
    let width = stores.iter().map(|(p, _)| p.display().to_string().chars().count()).max().unwrap_or(0);
    let Some(study) = study else {
        for (p, ids) in &stores {
            outln!("{:<width$}  {:>5} cells", p.display().to_string(), ids.len());
        }
        outln!("total: {} distinct cells in {} stores", all.len(), stores.len());
        return Ok(ExitCode::SUCCESS);
    };
    let plan = mtrobust::study::plan(&StudyFile::read(study)?)?;
    let planned: std::collections::HashSet<&str> = plan.cells.iter().map(|c| c.id.as_str()).collect();
    outln!("study {}: {} cells; {} stores match {pattern}", study.display(), plan.cells.len(), stores.len());
    for (p, ids) in &stores {
        let mine = ids.iter().filter(|id| planned.contains(id.as_str())).count();
        let other = if mine < ids.len() { format!(" (and {} of another study)", ids.len() - mine) } else { String::new() };
        outln!("  {:<width$}  {mine:>5} cells done{other}", p.display().to_string());
    }
    if let Some(n) = shards {
        list_shards(&plan, &all, n as usize);
    }
    let missing: Vec<_> = plan.cells.iter().filter(|c| !all.contains(&c.id)).collect();
    outln!("total: {} of {} cells done, {} missing", plan.cells.len() - missing.len(), plan.cells.len(), missing.len());
    for c in missing.iter().take(20) {
        outln!("  missing: {} {}", plan.models[c.model].row.name, c.config.label());
    }
    if missing.len() > 20 {
        outln!("  … and {} more", missing.len() - 20);
    }
    Ok(ExitCode::SUCCESS)
}

/// Each shard i/n's cells of the plan that `done` holds: which job of an array is behind.
fn list_shards(plan: &mtrobust::study::Plan, done: &std::collections::HashSet<String>, n: usize) {
    for index in 1..=n {
        let shard = Shard { index, count: n };
        let owned: Vec<_> = plan.cells.iter().filter(|c| shard.owns(&c.id)).collect();
        let stored = owned.iter().filter(|c| done.contains(&c.id)).count();
        outln!("  shard {index}/{n}: {stored} of {} cells done, {} missing", owned.len(), owned.len() - stored);
    }
}

/// Orders `shard-2` before `shard-10`: runs of digits compare as numbers.
fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = s;
    while let Some(first) = rest.chars().next() {
        let digits = first.is_ascii_digit();
        let (head, tail) = rest.split_at(rest.find(|c: char| c.is_ascii_digit() != digits).unwrap_or(rest.len()));
        key.push(if digits { (head.parse().unwrap_or(u64::MAX), String::new()) } else { (0, head.to_string()) });
        rest = tail;
    }
    key
}
