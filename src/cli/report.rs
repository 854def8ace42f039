//! `mtrobust report`: tables rebuilt from `report.json` files alone (no model, no data, no GPU), or
//! with `--db` the paper's tables and figures from a results store.
use super::GlobalArgs;
use anyhow::Context;
use clap::Args;
use mtrobust::report::{RunRecord, SCHEMA_VERSION, compare, table};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust report runs/attack/report.json
  mtrobust report runs/eval-clean/report.json runs/eval-fat/report.json --name clean --name FAT-GB-MTA
  mtrobust report --db results.sqlite --eps 8 --out paper")]
pub struct ReportArgs {
    /// Reports written by `attack`, `eval` or `demo`; with several, the first is the baseline of
    /// the comparison.
    #[arg(required_unless_present = "db", conflicts_with = "db")]
    reports: Vec<PathBuf>,
    /// Row names for the models, in order (default: the report's directory).
    #[arg(long)]
    name: Vec<String>,
    /// A results store (`study run --db`): print the paper's tables (and with --out write them
    /// as Markdown/CSV/LaTeX, with the figures).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Budget of the tables, in grey levels (the figures show every budget).
    #[arg(long, default_value_t = 8.0, requires = "db")]
    eps: f64,
    /// Norm of the cells to show.
    #[arg(long, default_value = "linf", requires = "db")]
    norm: String,
    /// Dataset of the cells (path, path:split or id prefix) when the store holds several.
    #[arg(long, requires = "db")]
    dataset: Option<String>,
    /// Directory for the tables (`<table>.md/.csv/.tex`, `tables.md`) and figures: a new or empty
    /// one, or one that holds an earlier report (replaced with --force).
    #[arg(long, requires = "db")]
    out: Option<PathBuf>,
    /// Replace the tables and figures of an earlier report in --out.
    #[arg(long, requires = "out")]
    force: bool,
}

fn run_store(db: &std::path::Path, a: &ReportArgs) -> anyhow::Result<ExitCode> {
    use mtrobust::report::paper;
    if !db.exists() {
        anyhow::bail!("{}: no such results store; write one with `mtrobust study run STUDY.toml --db {}`", db.display(), db.display());
    }
    if let Some(out) = &a.out {
        check_report_dir(out, a.force)?;
    }
    let store = mtrobust::study::Store::open_read_only(db)?;
    let view = paper::View::load(&store, a.dataset.as_deref(), &a.norm)?;
    view.check_eps(a.eps)?;
    let tables = paper::tables::all(&view, a.eps);
    out!("{}", paper::markdown(&tables));
    if let Some(out) = &a.out {
        let written = paper::write_tables(&tables, out)?;
        let figures = paper::figures::write_figures(&view, a.eps, out)?;
        eprintln!("wrote {} table files to {} (tables.md holds them all)", written.len(), out.display());
        for f in &figures {
            eprintln!("figure: {}", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A report folder holds only tables and figures (`*.md/.csv/.tex`, `*.png/.svg`); those of an
/// earlier report are replaced only with `force`, anything else is refused.
fn check_report_dir(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let is_report = |p: &std::path::Path| {
        p.is_file() && !p.is_symlink() && p.extension().is_some_and(|e| ["md", "csv", "tex", "png", "svg"].iter().any(|x| e == *x))
    };
    mtrobust::files::refuse_foreign_entries(out, is_report).context("--out")?;
    let earlier = std::fs::read_dir(out).map(|d| d.flatten().any(|e| is_report(&e.path()))).unwrap_or(false);
    anyhow::ensure!(
        !earlier || force,
        "--out: {} holds an earlier report; pass --force to replace its tables and figures, or choose another directory",
        out.display()
    );
    Ok(())
}

pub fn run(a: ReportArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if let Some(db) = &a.db {
        return run_store(db, &a);
    }
    let mut records = Vec::new();
    for (i, path) in a.reports.iter().enumerate() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let record: RunRecord = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not an mtrobust report (schema version {SCHEMA_VERSION}); reports are the report.json files of attack/eval/demo",
                path.display()
            )
        })?;
        let name = a.name.get(i).cloned().unwrap_or_else(|| {
            path.parent().and_then(|p| p.file_name()).map_or(path.display().to_string(), |n| n.to_string_lossy().to_string())
        });
        records.push((name, record));
    }
    if records.len() == 1 {
        let e = &records[0].1.evaluation;
        out!("{}", table::render(e));
        if !e.attacked.is_empty() {
            outln!();
            out!("{}", table::render_arp(e));
        }
    } else {
        out!("{}", compare::render(&records));
    }
    Ok(ExitCode::SUCCESS)
}
