//! `mtrobust report`: tables rebuilt from `report.json` files alone (no model, no data, no GPU).
use super::GlobalArgs;
use anyhow::Context;
use clap::Args;
use mtrobust::report::{RunRecord, SCHEMA_VERSION, compare, table};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust report runs/attack/report.json
  mtrobust report runs/eval-clean/report.json runs/eval-fat/report.json --name clean --name FAT-GB-MTA")]
pub struct ReportArgs {
    /// Reports written by `attack`, `eval` or `demo`; with several, the first is the baseline of
    /// the comparison.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Row names for the models, in order (default: the report's directory).
    #[arg(long)]
    name: Vec<String>,
}

pub fn run(a: ReportArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
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
