//! Output safety of `attack`/`eval`: a run's identity covers every option that changes its
//! numbers, `--force` leaves no file of the replaced run, outputs never write through a symlink,
//! and an output directory in use by another run is refused.

use crate::common::{fails, ok};
use std::path::Path;

fn setup(d: &Path) {
    ok(d, &["data", "synth", "--out", "data", "--n", "16", "--size", "32", "--seed", "3"]);
    ok(d, &["model", "init", "--tasks", "segm:10,normal,depth,keyp,edge", "--out", "m.safetensors"]);
}

const ATTACK: [&str; 12] =
    ["attack", "--model", "m.safetensors", "--data", "data", "--limit", "2", "--n-iter", "2", "--out", "o", "--format"];

fn attack(d: &Path, extra: &[&str]) -> String {
    let mut args = ATTACK.to_vec();
    args.push("json");
    args.extend(extra);
    ok(d, &args)
}

#[test]
fn reruns_with_other_numbers_are_refused_and_force_replaces_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    attack(d, &["--direction", "total"]);
    let report = std::fs::read_to_string(d.join("o/report.json")).unwrap();
    // The same command again is the same run: allowed, same numbers.
    attack(d, &["--direction", "total"]);
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("o/report.json")).unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(first["run_id"], again["run_id"]);
    assert_eq!(first["evaluation"], again["evaluation"]);
    // Any option that changes the numbers makes it another run.
    for other in [["--n-iter", "3"], ["--seed", "1"], ["--limit", "1"], ["--eps", "4"], ["--batch-size", "1"]] {
        let mut args = ATTACK.to_vec();
        args.extend(["json", "--direction", "total"]);
        let i = args.iter().position(|a| *a == other[0]);
        match i {
            Some(i) => args[i + 1] = other[1],
            None => args.extend(other),
        }
        fails(d, &args, 2, &["another run", "--force"]);
    }
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("o/report.json")).unwrap()).unwrap();
    assert_eq!(kept["evaluation"], first["evaluation"], "a refused run leaves the report as it was");
    let before: Vec<String> = dirs(&d.join("o"));
    assert_eq!(before.len(), 1, "{before:?}");
    // A file of the user's in the directory stops even --force, before anything is deleted.
    std::fs::write(d.join("o/notes.txt"), "mine").unwrap();
    let mut args = ATTACK.to_vec();
    args.extend(["json", "--direction", "gbmta", "--force"]);
    fails(d, &args, 2, &["did not write", "`notes.txt`"]);
    assert_eq!(dirs(&d.join("o")), before);
    assert_eq!(std::fs::read_to_string(d.join("o/notes.txt")).unwrap(), "mine");
    // Without it, --force replaces the run and removes the old run's attack folders.
    std::fs::remove_file(d.join("o/notes.txt")).unwrap();
    attack(d, &["--direction", "gbmta", "--force"]);
    let after = dirs(&d.join("o"));
    assert_eq!(after.len(), 1, "only the new run's attack folder: {after:?}");
    assert_ne!(after, before);
}

fn dirs(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn planted_symlinks_and_busy_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    std::fs::create_dir(d.join("o")).unwrap();
    std::fs::write(d.join("precious.npy"), "not yours").unwrap();
    // A symlink planted at a name a run writes is not the run's: refused, neither followed nor removed.
    std::os::unix::fs::symlink(d.join("precious.npy"), d.join("o/clean_batch0000.npy")).unwrap();
    let mut args = ATTACK.to_vec();
    args.extend(["json", "--direction", "total"]);
    fails(d, &args, 2, &["did not write", "`clean_batch0000.npy`"]);
    assert_eq!(std::fs::read_to_string(d.join("precious.npy")).unwrap(), "not yours");
    assert!(std::fs::symlink_metadata(d.join("o/clean_batch0000.npy")).unwrap().file_type().is_symlink());
    assert!(!d.join("o/report.json").exists());
    std::fs::remove_file(d.join("o/clean_batch0000.npy")).unwrap();
    attack(d, &["--direction", "total"]);
    assert!(!std::fs::symlink_metadata(d.join("o/clean_batch0000.npy")).unwrap().file_type().is_symlink());
    // No temporary file is left behind.
    let stray: Vec<String> = std::fs::read_dir(d.join("o"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    // Another process holding the directory's lock makes a run fail at once, writing nothing.
    let lock = std::fs::OpenOptions::new().write(true).open(d.join("o/.mtrobust.lock")).unwrap();
    lock.lock().unwrap();
    let report = std::fs::read_to_string(d.join("o/report.json")).unwrap();
    let mut args = ATTACK.to_vec();
    args.extend(["json", "--direction", "total"]);
    fails(d, &args, 2, &["another mtrobust run is writing into this directory"]);
    assert_eq!(std::fs::read_to_string(d.join("o/report.json")).unwrap(), report);
}
