//! Snapshot tests of `mtrobust report`: the Markdown tables of `report --db` (stdout), their CSV
//! files, and the text tables of `report report.json` (one report, and two compared), each
//! against a committed file under `tests/snapshots/`. The inputs have hand-picked numbers (see
//! `common/paper_store.rs` and `record` below), so the snapshots were checked by hand once.
//!
//! On an intended change of the output: `UPDATE_SNAPSHOTS=1 cargo test --release --test it report_snapshot`
//! rewrites the files; review them with `git diff tests/snapshots` before committing.
use crate::paper_store;

use crate::common::ok;
use mtrobust::attack::{AttackConfig, PassCounts};
use mtrobust::eval::{ConditionReport, EvalOptions, Evaluation, Warning, arp_with};
use mtrobust::report::RunRecord;
use mtrobust::report::paper::{View, tables, write_tables};
use mtrobust::study::Store;
use mtrobust::task::{MetricValue, TaskKind, TaskMap};
use std::path::{Path, PathBuf};

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name)
}

/// Compares `actual` with the snapshot `name`, or rewrites it under `UPDATE_SNAPSHOTS=1`.
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    let update = "UPDATE_SNAPSHOTS=1 cargo test --release --test it report_snapshot";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; write it with `{update}`", path.display()));
    if expected == actual {
        return;
    }
    let (want, got): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut diff = String::new();
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if w == g => {}
            (w, g) => {
                diff += &format!("line {}:\n", i + 1);
                if let Some(w) = w {
                    diff += &format!("  - {w}\n");
                }
                if let Some(g) = g {
                    diff += &format!("  + {g}\n");
                }
            }
        }
    }
    if diff.is_empty() {
        diff = "(only line endings or the final newline differ)\n".into();
    }
    panic!(
        "{} differs from the output (- snapshot, + now):\n{diff}If the change is intended, update the snapshots with `{update}` \
         and review `git diff tests/snapshots`.",
        path.display()
    );
}

#[test]
fn report_db_markdown_and_csv_match_their_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    paper_store::build(&d.join("r.sqlite"));
    // What `report --db` prints is the Markdown of every table.
    assert_snapshot("report_db/tables.md", &ok(d, &["report", "--db", "r.sqlite"]));
    // The CSV files `report --db --out` writes (the same function, without drawing the figures).
    let view = View::load(&Store::open(&d.join("r.sqlite")).unwrap(), None, "linf").unwrap();
    let all = tables::all(&view, 8.0);
    write_tables(&all, &d.join("paper")).unwrap();
    assert_eq!(all.len(), 5, "table 1, per-task, transfer, FAT ARP and FAT clean");
    for t in &all {
        let file = format!("{}.csv", t.id);
        assert_snapshot(&format!("report_db/{file}"), &std::fs::read_to_string(d.join("paper").join(&file)).unwrap());
    }
}

const SEGM: TaskKind = TaskKind::SegmentSemantic;
const DEPT: TaskKind = TaskKind::DepthZbuffer;

fn metrics(miou: f64, abs_err: f64) -> TaskMap<Vec<MetricValue>> {
    [(SEGM, vec![MetricValue::new("mIoU", miou, true)]), (DEPT, vec![MetricValue::new("abs_err", abs_err, false)])].into_iter().collect()
}

fn condition(label: String, attack: Option<AttackConfig>, m: TaskMap<Vec<MetricValue>>, losses: (f64, f64)) -> ConditionReport {
    ConditionReport {
        label,
        attack,
        samples: 4,
        metrics: m,
        losses: [(SEGM, losses.0), (DEPT, losses.1)].into_iter().collect(),
        objective: None,
        counts: None,
        checks: None,
        arp: None,
        ensemble: None,
    }
}

/// A report of PGD Single-Segm and GB-MTA at ε = 8 on a two-task model whose clean mIoU and
/// abs_err are `clean`; the attacks bring them to `segm` and `gbmta`.
fn record(clean: (f64, f64), segm: (f64, f64), gbmta: (f64, f64)) -> RunRecord {
    let clean = condition("clean".into(), None, metrics(clean.0, clean.1), (1.0, 0.5));
    let attacked = [("single:segm", segm, (3.0, 0.75), (1.0, 3.0)), ("gbmta", gbmta, (2.0, 1.0), (0.5, 2.5))]
        .into_iter()
        .map(|(direction, m, losses, objective)| {
            let config = AttackConfig { direction: direction.parse().unwrap(), eps: 8.0, ..Default::default() };
            let mut r = condition(config.label(), Some(config), metrics(m.0, m.1), losses);
            r.arp = Some(arp_with(&clean.metrics, &r.metrics, EvalOptions::default().convention).0);
            r.objective = Some(objective);
            r.counts = Some(PassCounts { forward: 10, backward: 10 });
            r
        })
        .collect();
    let warnings = vec![Warning::ZeroGradient { label: "pgd/gbmta/linf/eps=8".into(), samples: 1 }];
    let evaluation = Evaluation { options: EvalOptions::default(), clean, attacked, warnings };
    RunRecord::new("cpu".into(), "m.safetensors".into(), "small".into(), "data:test".into(), 1.0, evaluation)
}

#[test]
fn report_json_tables_match_their_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let write = |dir: &str, r: &RunRecord| {
        std::fs::create_dir_all(d.join(dir)).unwrap();
        std::fs::write(d.join(dir).join("report.json"), serde_json::to_string_pretty(r).unwrap()).unwrap();
    };
    // Clean mIoU 0.5 and abs_err 0.2. Single-Segm: mIoU 0.5 → 0.3 (ARP-segm 40 %), abs_err
    // 0.2 → 0.25 (ARP-dept 25 %), ARP 32.5, transfer 25/40 = 0.625. GB-MTA: 0.5 → 0.4 (20 %) and
    // 0.2 → 0.3 (50 %), ARP 35.
    write("clean", &record((0.5, 0.2), (0.3, 0.25), (0.4, 0.3)));
    // A second model, clean mIoU 0.4 (−20 %) and abs_err 0.25 (−25 %): cost 22.5 %. Its attacks:
    // Single-Segm 0.4 → 0.2 (50 %), 0.25 → 0.25 (0 %): ARP 25; GB-MTA 0.4 → 0.3 (25 %), 0.25 → 0.3 (20 %): ARP 22.5.
    write("fat", &record((0.4, 0.25), (0.2, 0.25), (0.3, 0.3)));
    assert_snapshot("report_json/single.txt", &ok(d, &["report", "clean/report.json"]));
    assert_snapshot("report_json/compare.txt", &ok(d, &["report", "clean/report.json", "fat/report.json"]));
}
