//! Studies end to end through the binary: a killed run resumed equals an uninterrupted one row
//! for row, three shards run in parallel and merged equal one unsharded run, bad study files are
//! refused before anything is written, and the store is read back by export/list.

use crate::common::{fails, mtrobust, ok};
use mtrobust::study::Store;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small dataset and two untrained five-task models (all-shared and independent).
fn setup(d: &Path) {
    ok(d, &["data", "synth", "--out", "data", "--n", "24", "--size", "32", "--seed", "3"]);
    ok(d, &["model", "init", "--tasks", "segm:10,normal,depth,keyp,edge", "--index", "0", "--seed", "1", "--out", "m/shared.safetensors"]);
    ok(
        d,
        &[
            "model",
            "init",
            "--tasks",
            "segm:10,normal,depth,keyp,edge",
            "--index",
            "4",
            "--seed",
            "2",
            "--out",
            "m/independent.safetensors",
        ],
    );
    std::fs::write(
        d.join("s.toml"),
        r#"
[data]
path = "data"
limit = 4
batch_size = 3

[[model]]
path = "m/*.safetensors"

[[attack]]
rule = "pgd"
directions = ["all"]
eps = [4, 8]
n_iter = 2

[[attack]]
rule = "apgd"
directions = ["gbmta", "total"]
eps = [8]
n_iter = 3
"#,
    )
    .unwrap();
}

type Row = (String, String, String, Option<f64>, Option<f64>, String);

/// Asserts two stores hold the same cells with the same numbers, naming the first difference.
fn assert_same(got: &[Row], want: &[Row], what: &str) {
    let ids = |v: &[Row]| v.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(want), "{what}: different cells");
    for (g, w) in got.iter().zip(want) {
        assert!(g == w, "{what}: cell {} {} differs:\n got  {:?} {:?} {}\n want {:?} {:?} {}", g.1, g.2, g.3, g.4, g.5, w.3, w.4, w.5);
    }
}

/// The numbers of every stored cell (everything but timings), in a stable order.
fn rows(db: &Path) -> Vec<Row> {
    let store = Store::open(db).unwrap();
    let mut v: Vec<_> = store
        .cells()
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.model, c.label, c.arp, c.transfer, serde_json::to_string(&c.report).unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn study_cmd(d: &Path, db: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtrobust"));
    c.args(["--quiet", "--device", "cpu", "--threads", "1", "study", "run", "s.toml", "--db", db]).args(extra).current_dir(d);
    c
}

fn stored_cells(db: &Path) -> usize {
    if !db.exists() {
        return 0;
    }
    Store::open(db).map(|s| s.cell_ids().map_or(0, |ids| ids.len())).unwrap_or(0)
}

#[test]
fn a_killed_study_resumes_to_exactly_the_uninterrupted_store() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let status = study_cmd(d, "full.sqlite", &[]).status().unwrap();
    assert!(status.success());
    let full = rows(&d.join("full.sqlite"));
    // 2 models × (PGD: (5 single + total + sign-total + gbmta) × 2 ε + APGD: 2) = 36 cells.
    assert_eq!(full.len(), 36);
    assert!(full.iter().all(|r| r.3.is_some_and(f64::is_finite)), "every cell has a finite ARP");

    // Kill -9 at several points: at once, after a few cells, after many.
    let db = d.join("killed.sqlite");
    for kill_after in [0usize, 3, 17] {
        let mut child = study_cmd(d, "killed.sqlite", &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let t = Instant::now();
        while stored_cells(&db) < kill_after && t.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let partial = stored_cells(&db);
    assert!(partial < 36, "the kills interrupted the study ({partial} cells stored)");
    let out = ok(d, &["--threads", "1", "study", "run", "s.toml", "--db", "killed.sqlite"]);
    assert!(out.contains(&format!("{} computed now, {partial} stored before", 36 - partial)), "{out}");
    assert_same(&rows(&db), &full, "resumed store vs uninterrupted");
    // Rerunning a finished study computes nothing.
    assert!(ok(d, &["study", "run", "s.toml", "--db", "killed.sqlite"]).contains("0 computed now, 36 stored before"));

    // Export and list read it back.
    let csv = ok(d, &["results", "export", "--db", "full.sqlite", "--attack", "pgd", "--direction", "gbmta", "--eps", "8"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "header + one row per model:\n{csv}");
    assert!(lines[0].starts_with("model,model_id,dataset,rule,direction,norm,eps,seed,samples,ARP,transfer"), "{csv}");
    for (line, model) in lines[1..].iter().zip(["independent", "shared"]) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!((f[0], f[1].len(), f[2]), (model, 12, "data:test"), "{csv}");
        assert_eq!(f[3..9], ["pgd", "gbmta", "linf", "8", "0", "4"], "{csv}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(d, &["results", "export", "--db", "full.sqlite", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 36);
    let singles = json.as_array().unwrap().iter().filter(|c| c["direction"].as_str().unwrap().starts_with("single:")).count();
    let with_transfer = json.as_array().unwrap().iter().filter(|c| c["transfer"].is_number()).count();
    assert_eq!(with_transfer, singles, "every Single-x cell (and only those) has a transferability");
    let list = ok(d, &["results", "list", "--db", "full.sqlite", "--study", "s.toml"]);
    assert!(list.contains("36 of 36 cells done, 0 missing"), "{list}");
}

#[test]
fn three_shards_in_parallel_merge_into_the_unsharded_store() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    std::fs::write(d.join("s.toml"), std::fs::read_to_string(d.join("s.toml")).unwrap().replace("eps = [4, 8]", "eps = [8]")).unwrap();
    ok(d, &["--threads", "1", "study", "run", "s.toml", "--db", "all.sqlite", "--per-sample"]);
    per_sample_rows_hold_every_sample_and_task(&d.join("all.sqlite"));
    let mut children: Vec<_> = (1..=3)
        .map(|i| {
            let (db, shard) = (format!("shard{i}.sqlite"), format!("{i}/3"));
            study_cmd(d, &db, &["--shard", &shard]).stdout(Stdio::null()).spawn().unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let sizes: Vec<usize> = (1..=3).map(|i| stored_cells(&d.join(format!("shard{i}.sqlite")))).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 20, "the shards partition the 20 cells: {sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    ok(d, &["results", "merge", "merged.sqlite", "shard1.sqlite", "shard2.sqlite", "shard3.sqlite"]);
    assert_same(&rows(&d.join("merged.sqlite")), &rows(&d.join("all.sqlite")), "merged shards vs unsharded");
    // Two runners on one store at once: nothing corrupted, every cell once.
    let mut twins: Vec<_> = (0..2).map(|_| study_cmd(d, "same.sqlite", &[]).stdout(Stdio::null()).spawn().unwrap()).collect();
    for c in &mut twins {
        assert!(c.wait().unwrap().success());
    }
    assert_same(&rows(&d.join("same.sqlite")), &rows(&d.join("all.sqlite")), "two runners on one store vs one runner");
    // Merging again adds nothing; a store whose numbers disagree is refused and OUT is unchanged.
    ok(d, &["results", "merge", "merged.sqlite", "shard2.sqlite"]);
    assert_eq!(rows(&d.join("merged.sqlite")).len(), 20);
    tamper(&d.join("shard1.sqlite"));
    fails(d, &["results", "merge", "merged.sqlite", "shard1.sqlite"], 2, &["different numbers"]);
    assert_same(&rows(&d.join("merged.sqlite")), &rows(&d.join("all.sqlite")), "after a refused merge");
}

/// `--per-sample`: one row per (sample, task) for every cell; the clean losses are the same in
/// every cell of a model, and GB-MTA raises the sum over tasks of the relative loss increase.
fn per_sample_rows_hold_every_sample_and_task(db: &Path) {
    let store = Store::open(db).unwrap();
    let cells = store.cells().unwrap();
    let mut clean_of_model: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for c in &cells {
        let rows = store.samples(&c.id).unwrap();
        assert_eq!(rows.len(), 4 * 5, "{} {}: 4 samples × 5 tasks", c.model, c.label);
        assert!(rows.iter().all(|r| r.loss_clean.is_finite() && r.loss_adv.is_finite()));
        let clean: Vec<f64> = rows.iter().map(|r| r.loss_clean).collect();
        let first = clean_of_model.entry(c.model_id.clone()).or_insert_with(|| clean.clone());
        assert_eq!(*first, clean, "{}: clean per-sample losses differ between cells", c.label);
        if c.direction == "gbmta" {
            let objective: f64 = rows.iter().map(|r| r.loss_adv / r.loss_clean).sum::<f64>() / 4.0;
            assert!(objective > 5.0, "{} {}: mean Σ_t L_adv/L_clean = {objective}", c.model, c.label);
        }
    }
}

/// Changes one stored ARP, as a store computed elsewhere with other numbers would have.
fn tamper(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute("UPDATE cells SET arp = arp + 1 WHERE rowid = (SELECT min(rowid) FROM cells)", []).unwrap();
}

#[test]
fn bad_studies_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let good = std::fs::read_to_string(d.join("s.toml")).unwrap();
    let cases: [(&str, String, &[&str]); 5] = [
        ("unknown key", good.replace("n_iter = 2", "n_iters = 2"), &["n_iters", "line"]),
        ("missing checkpoint", good.replace("m/*.safetensors", "m/none.safetensors"), &["[[model]] `none`", "none.safetensors"]),
        ("empty glob", good.replace("m/*.safetensors", "zz/*.safetensors"), &["matches no file"]),
        ("unknown task", good.replace("[\"gbmta\", \"total\"]", "[\"single:segm\", \"single:bogus\"]"), &["[[attack]] #2", "bogus"]),
        ("bad data", good.replace("path = \"data\"", "path = \"nodata\""), &["[data]", "nodata"]),
    ];
    for (what, text, needles) in cases {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let out = mtrobust(d, &["study", "run", "bad.toml", "--db", "bad.sqlite"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: stderr lacks `{n}`:\n{err}");
        }
        assert!(!d.join("bad.sqlite").exists(), "{what}: nothing may be written");
    }
    // A store that is not ours, and a shard out of range.
    std::fs::write(d.join("notastore.sqlite"), "hello").unwrap();
    fails(d, &["study", "run", "s.toml", "--db", "notastore.sqlite"], 2, &["notastore.sqlite"]);
    fails(d, &["study", "run", "s.toml", "--shard", "4/3"], 2, &["--shard"]);
    // init writes the example once and refuses to overwrite it.
    ok(d, &["study", "init", "--out", "new.toml"]);
    fails(d, &["study", "init", "--out", "new.toml"], 2, &["already exists"]);
}

#[test]
fn results_list_over_a_glob_counts_each_shard_store_and_the_total() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    std::fs::write(d.join("s.toml"), std::fs::read_to_string(d.join("s.toml")).unwrap().replace("eps = [4, 8]", "eps = [8]")).unwrap();
    std::fs::create_dir(d.join("shards")).unwrap();
    let glob = ["results", "list", "--db", "shards/*.sqlite", "--study", "s.toml"];
    fails(d, &glob, 2, &["matches no results store"]);
    // Shard 1 of 2 done; shard 2 started, then stopped after all but two of its cells.
    for i in [1, 2] {
        let status = study_cmd(d, &format!("shards/shard-{i}.sqlite"), &["--shard", &format!("{i}/2")]).status().unwrap();
        assert!(status.success());
    }
    let (n1, n2) = (stored_cells(&d.join("shards/shard-1.sqlite")), stored_cells(&d.join("shards/shard-2.sqlite")));
    assert_eq!(n1 + n2, 20);
    assert!(n2 > 2, "{n2}");
    let conn = rusqlite::Connection::open(d.join("shards/shard-2.sqlite")).unwrap();
    conn.execute("DELETE FROM cells WHERE rowid IN (SELECT rowid FROM cells ORDER BY rowid DESC LIMIT 2)", []).unwrap();
    drop(conn);

    let out = ok(d, &glob);
    assert!(out.contains("study s.toml: 20 cells; 2 stores match shards/*.sqlite"), "{out}");
    assert!(out.contains(&format!("shards/shard-1.sqlite  {n1:>5} cells done\n")), "{out}");
    assert!(out.contains(&format!("shards/shard-2.sqlite  {:>5} cells done\n", n2 - 2)), "{out}");
    assert!(out.contains("total: 18 of 20 cells done, 2 missing"), "{out}");
    assert_eq!(out.matches("  missing: ").count(), 2, "{out}");
    let per_shard = ok(d, &[&glob[..], &["--shards", "2"]].concat());
    assert!(per_shard.contains(&format!("shard 1/2: {n1} of {n1} cells done, 0 missing")), "{per_shard}");
    assert!(per_shard.contains(&format!("shard 2/2: {} of {n2} cells done, 2 missing", n2 - 2)), "{per_shard}");
    // A store that a starting shard has only just created (an empty file) counts as none done and
    // stays untouched: the stores are only read. A file that is not a store is named.
    std::fs::write(d.join("shards/shard-3.sqlite"), "").unwrap();
    let out = ok(d, &glob);
    assert!(out.contains("shards/shard-3.sqlite      0 cells done\n") && out.contains("total: 18 of 20"), "{out}");
    assert_eq!(std::fs::metadata(d.join("shards/shard-3.sqlite")).unwrap().len(), 0);
    std::fs::write(d.join("shards/notes.sqlite"), "not a store").unwrap();
    fails(d, &glob, 2, &["shards/notes.sqlite", "not an mtrobust results store"]);
    // One store by name keeps its own summary, with the shards' counts on request.
    let one = ok(d, &["results", "list", "--db", "shards/shard-1.sqlite", "--study", "s.toml", "--shards", "2"]);
    assert!(one.contains(&format!("{n1} of 20 cells done")) && one.contains(&format!("shard 1/2: {n1} of {n1} cells done")), "{one}");
}

#[test]
fn an_ensemble_block_is_one_cell_per_model_with_its_members_in_table_1_and_report_db() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let mut text = std::fs::read_to_string(d.join("s.toml")).unwrap();
    text += "\n[[ensemble]]\nn_iter = 2\nn_queries = 4\neps = [8]\n";
    std::fs::write(d.join("s.toml"), &text).unwrap();
    ok(d, &["--threads", "1", "study", "run", "s.toml", "--db", "e.sqlite"]);
    let store = Store::open(&d.join("e.sqlite")).unwrap();
    let cells = store.cells().unwrap();
    assert_eq!(cells.len(), 2 * (8 * 2 + 2) + 2, "PGD 8 directions × 2 ε + APGD 2, and one ensemble cell, per model");
    let ensembles: Vec<_> = cells.iter().filter(|c| c.rule == "ensemble:standard").collect();
    assert_eq!(ensembles.len(), 2);
    for c in &ensembles {
        let members = c.report.ensemble.as_ref().expect("the cell holds its members");
        let names: Vec<&str> = members.iter().map(|m| m.report.label.split('/').take(2).last().unwrap()).collect();
        assert_eq!(names.len(), 8, "APGD × GB-MTA, Total, 5 Single-x; Square GB-MTA");
        assert_eq!(members.iter().map(|m| m.wins).sum::<usize>(), 4, "{}", c.model);
        assert!(c.checks_passed && c.direction == "gbmta");
    }
    // Its identity covers its members: other budgets are another cell, the rest is reused.
    std::fs::write(d.join("s.toml"), text.replace("n_queries = 4", "n_queries = 5")).unwrap();
    let out = ok(d, &["--threads", "1", "study", "run", "s.toml", "--db", "e.sqlite"]);
    assert!(out.contains("2 computed now, 36 stored before"), "{out}");
    let report = ok(d, &["report", "--db", "e.sqlite", "--out", "paper"]);
    assert!(report.contains("Ensemble GB-MTA") && report.contains("over the strongest single attack"), "{report}");
    assert!(report.contains("which member gave each sample's worst case") && report.contains("Square GB-MTA"), "{report}");
    assert!(d.join("paper/table_ensemble_standard_members.md").is_file());
}
