//! The README's "Guarantees" through the binary, for the surfaces of issue 18: a merge into a
//! store that a study is writing loses no cell, a checkpoint replaced during a study never puts
//! its numbers under the old identity, every output command refuses an existing file or a
//! foreign folder and never writes through a planted symlink, a full disk leaves no partial or
//! temporary file and the earlier file intact, a foreign SQLite file is refused untouched and a
//! store on a read-only mount is read, a closed or full stdout is no panic, and bad values are
//! refused naming their flag.

use crate::common::{fails, mtrobust, ok};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TASKS: &str = "segm:10,normal,depth,keyp,edge";

/// One small dataset (6 train + 2 test scenes of 32² px), three untrained all-shared checkpoints
/// of the same architecture (seeds 1, 2, 3: `a`, `b`, `c`), and a finished two-cell store of `a`
/// (`s.sqlite`, from `s.toml`), shared by the whole test binary.
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("guarantees-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ok(&dir, &["data", "synth", "--out", "data", "--n", "8", "--size", "32", "--seed", "1"]);
        for (name, seed) in [("a", "1"), ("b", "2"), ("c", "3")] {
            ok(&dir, &["model", "init", "--tasks", TASKS, "--index", "0", "--seed", seed, "--out", &format!("{name}.safetensors")]);
        }
        std::fs::write(dir.join("s.toml"), study(&[("first", &dir.join("a.safetensors"))], "[\"gbmta\", \"total\"]", "[8]")).unwrap();
        ok(&dir, &["study", "run", "s.toml", "--db", "s.sqlite"]);
        dir
    })
}

fn fx(name: &str) -> String {
    fixture().join(name).display().to_string()
}

/// A study file: `models` as (name, checkpoint), one PGD block of 1 iteration on 2 test scenes.
fn study(models: &[(&str, &Path)], directions: &str, eps: &str) -> String {
    let mut text = format!("[data]\npath = \"{}\"\nlimit = 2\nbatch_size = 2\n", fixture_data().display());
    for (name, path) in models {
        text += &format!("\n[[model]]\npath = \"{}\"\nname = \"{name}\"\n", path.display());
    }
    text += &format!("\n[[attack]]\nrule = \"pgd\"\ndirections = {directions}\neps = {eps}\nn_iter = 1\n");
    text
}

/// The fixture's data folder (its path is known before the fixture exists).
fn fixture_data() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("guarantees-{}", std::process::id())).join("data")
}

/// Copies the fixture checkpoint `name` (weights and sidecar) to `dir/to.safetensors`.
fn copy_checkpoint(name: &str, dir: &Path, to: &str) -> PathBuf {
    std::fs::copy(fixture().join(format!("{name}.safetensors")), dir.join(format!("{to}.safetensors"))).unwrap();
    std::fs::copy(fixture().join(format!("{name}.json")), dir.join(format!("{to}.json"))).unwrap();
    dir.join(format!("{to}.safetensors"))
}

/// `mtrobust study run TOML --db DB` in `dir`, in the background.
fn spawn_study(dir: &Path, toml: &str, db: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mtrobust"))
        .args(["--quiet", "--device", "cpu", "--threads", "1", "study", "run", toml, "--db", db])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Cells stored in `db`, counted without writing to it (0 while it is being created).
fn cells(db: &Path, filter: &str) -> usize {
    let Ok(conn) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else { return 0 };
    conn.query_row(&format!("SELECT count(*) FROM cells {filter}"), [], |r| r.get::<_, i64>(0)).map_or(0, |n| n as usize)
}

/// Waits until `db` holds at least one cell (the child must still be running).
fn wait_for_a_cell(child: &mut Child, db: &Path) {
    let t = Instant::now();
    while cells(db, "") == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the study ended before its first cell was stored");
        assert!(t.elapsed() < Duration::from_secs(120), "no cell within 2 minutes");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Takes `db`'s write lock, as a study storing a cell or a merge does: every writer waits.
fn write_lock(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

fn id_of(db: &Path, model: &str) -> String {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("SELECT id FROM models WHERE name=?1", [model], |r| r.get(0)).unwrap()
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Names in `dir` that look like a temporary file of an atomic write.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir).into_iter().filter(|n| n.contains(".tmp-") || n.ends_with(".partial")).collect();
    v.sort();
    v
}

/// Every file under `dir` with its bytes (relative names, sorted).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> =
        walk(dir).into_iter().map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap_or_default())).collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else { continue };
        for e in entries.flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(r);
            } else {
                out.push(r.display().to_string());
            }
        }
    }
    out
}

/// Unmounts a test mount when dropped, even when the test fails.
struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS… DIR`; `None` where this machine does not allow it (not root, no mount).
    fn new(args: &[&str], dir: &Path) -> Option<Mount> {
        let status = Command::new("mount").args(args).arg(dir).stderr(Stdio::null()).status().ok()?;
        status.success().then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_merge_into_a_store_that_a_study_is_writing_loses_no_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Another model's two cells, to merge in.
    std::fs::write(d.join("other.toml"), study(&[("third", &fixture().join("c.safetensors"))], "[\"gbmta\", \"total\"]", "[4]")).unwrap();
    ok(d, &["study", "run", "other.toml", "--db", "other.sqlite"]);
    assert_eq!(cells(&d.join("other.sqlite"), ""), 2);
    // 8 directions × 2 budgets = 16 cells of model `first`.
    std::fs::write(d.join("s.toml"), study(&[("first", &fixture().join("a.safetensors"))], "[\"all\"]", "[4, 8]")).unwrap();
    let db = d.join("out.sqlite");
    let mut child = spawn_study(d, "s.toml", "out.sqlite");
    wait_for_a_cell(&mut child, &db);
    // Hold the store's write lock while the merge starts: when it is released, the study (storing
    // its next cell) and the merge both wait for it, so the merge certainly runs mid-study.
    let lock = write_lock(&db);
    let before: i64 = lock.query_row("SELECT count(*) FROM cells", [], |r| r.get(0)).unwrap();
    assert!(before < 16, "the study finished before the merge could start ({before} cells)");
    let merge = Command::new(env!("CARGO_BIN_EXE_mtrobust"))
        .args(["--device", "cpu", "results", "merge", "out.sqlite", "other.sqlite"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let merged = merge.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(0), "merge: {err}");
    assert!(err.contains("2 new cells"), "{err}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "study: {}", String::from_utf8_lossy(&out.stderr));
    // Exactly the union: every cell of the study and both merged cells, each once.
    assert_eq!(cells(&db, ""), 18);
    assert_eq!(cells(&db, &format!("WHERE model_id='{}'", id_of(&db, "first"))), 16);
    assert_eq!(cells(&db, &format!("WHERE model_id='{}'", id_of(&d.join("other.sqlite"), "third"))), 2);
    let conn = Connection::open(&db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    // A rerun of the study finds all of its cells.
    assert!(ok(d, &["study", "run", "s.toml", "--db", "out.sqlite"]).contains("0 computed now, 16 stored before"));
}

#[test]
fn a_checkpoint_replaced_during_a_study_is_refused_not_stored_under_its_old_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let first = copy_checkpoint("a", d, "first");
    let second = copy_checkpoint("b", d, "second");
    // 16 cells of `first`, then 16 of `second`.
    std::fs::write(d.join("s.toml"), study(&[("first", &first), ("second", &second)], "[\"all\"]", "[4, 8]")).unwrap();
    let db = d.join("s.sqlite");
    let mut child = spawn_study(d, "s.toml", "s.sqlite");
    wait_for_a_cell(&mut child, &db);
    // With the store locked, the study cannot finish `first`: `second` is not loaded yet.
    let lock = write_lock(&db);
    let old_id = id_of(&db, "second");
    let stored: i64 = lock.query_row("SELECT count(*) FROM cells WHERE model_id != ?1", [&old_id], |r| r.get(0)).unwrap();
    assert!(stored < 16, "the study finished `first` before the file could be replaced");
    // A training run replaces the checkpoint (same architecture, other weights), atomically.
    for ext in ["safetensors", "json"] {
        std::fs::copy(fixture().join(format!("c.{ext}")), d.join(format!(".new.{ext}"))).unwrap();
        std::fs::rename(d.join(format!(".new.{ext}")), d.join(format!("second.{ext}"))).unwrap();
    }
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("second") && err.contains("changed since the study was planned"), "{err}");
    // `first` is complete; nothing is stored under `second`'s old identity (nor any other).
    assert_eq!(cells(&db, &format!("WHERE model_id='{}'", id_of(&db, "first"))), 16);
    assert_eq!(cells(&db, &format!("WHERE model_id='{old_id}'")), 0);
    assert_eq!(cells(&db, ""), 16);
}

#[test]
fn import_export_and_picture_refuse_existing_files_and_never_write_through_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let precious = d.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let kept = || assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me", "a link's target was written");
    let link = |name: &str| std::os::unix::fs::symlink(&precious, d.join(name)).unwrap();
    let a = fx("a.safetensors");

    // export treemtl
    let export = |out: &str| ["export", "treemtl", "--model", a.as_str(), "--out", out].map(String::from).to_vec();
    let run = |args: Vec<String>, extra: &[&str]| args.into_iter().chain(extra.iter().map(|s| s.to_string())).collect::<Vec<_>>();
    let call_fails = |args: Vec<String>, needles: &[&str]| fails(d, &args.iter().map(String::as_str).collect::<Vec<_>>(), 2, needles);
    let call_ok = |args: Vec<String>| ok(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    call_ok(export("a.pt"));
    std::fs::write(d.join("old.pt"), "old").unwrap();
    call_fails(export("old.pt"), &["old.pt", "already exists", "--force"]);
    assert_eq!(std::fs::read_to_string(d.join("old.pt")).unwrap(), "old");
    link("link.pt");
    call_fails(export("link.pt"), &["link.pt", "a symlink"]);
    kept();
    call_ok(run(export("link.pt"), &["--force"]));
    kept();
    assert!(!is_symlink(&d.join("link.pt")), "--force replaces the link itself");
    assert!(std::fs::read(d.join("link.pt")).unwrap().starts_with(b"PK\x03\x04"), "a torch.save zip");

    // import treemtl: an existing checkpoint, a link at the weights or at the sidecar.
    let import = |out: &str| {
        ["import", "treemtl", "--checkpoint", "a.pt", "--backbone", "small", "--tasks", TASKS, "--index", "0", "--out", out]
            .map(String::from)
            .to_vec()
    };
    let trained = copy_checkpoint("b", d, "trained");
    let weights = std::fs::read(&trained).unwrap();
    call_fails(import("trained.safetensors"), &["trained.safetensors", "already exists", "--force"]);
    assert_eq!(std::fs::read(&trained).unwrap(), weights, "a trained checkpoint was replaced");
    link("l.safetensors");
    call_fails(import("l.safetensors"), &["l.safetensors", "a symlink"]);
    link("s.json");
    call_fails(import("s.safetensors"), &["s.json", "a symlink"]);
    assert!(!d.join("s.safetensors").exists());
    kept();
    call_ok(run(import("l.safetensors"), &["--force"]));
    kept();
    assert!(!is_symlink(&d.join("l.safetensors")) && d.join("l.json").is_file());

    // picture
    let picture = |out: &str| {
        ["picture", "--model", a.as_str(), "--data", &fx("data"), "--eps", "4", "--n-iter", "1", "--out", out].map(String::from).to_vec()
    };
    std::fs::write(d.join("fig.png"), "old").unwrap();
    call_fails(picture("fig.png"), &["fig.png", "already exists", "--force"]);
    assert_eq!(std::fs::read_to_string(d.join("fig.png")).unwrap(), "old");
    link("link.png");
    call_fails(picture("link.png"), &["link.png", "a symlink"]);
    kept();
    call_ok(run(picture("link.png"), &["--force"]));
    kept();
    assert!(!is_symlink(&d.join("link.png")));
    assert!(std::fs::read(d.join("link.png")).unwrap().starts_with(b"\x89PNG"));
    assert_eq!(temporaries(d), Vec::<String>::new());
}

#[test]
fn report_train_eval_and_stores_refuse_foreign_files_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let precious = d.join("precious.md");
    std::fs::write(&precious, "keep me").unwrap();
    let kept = || assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me", "a link's target was written");
    let store = fx("s.sqlite");
    let data = fx("data");

    // report --out: a link inside the folder, at a name the report writes.
    std::fs::create_dir(d.join("paper")).unwrap();
    std::os::unix::fs::symlink(&precious, d.join("paper/tables.md")).unwrap();
    for force in [&[][..], &["--force"]] {
        fails(d, &[&["report", "--db", &store, "--out", "paper"][..], force].concat(), 2, &["paper", "did not write", "`tables.md`"]);
        kept();
        assert_eq!(walk(&d.join("paper")), ["tables.md"]);
    }

    // train and eval --out: a folder holding a file of the user's.
    for dir in ["run", "ev"] {
        std::fs::create_dir(d.join(dir)).unwrap();
        std::fs::write(d.join(dir).join("notes.txt"), "mine").unwrap();
    }
    fails(d, &["train", "--data", &data, "--steps", "1", "--batch-size", "2", "--out", "run"], 2, &["run", "did not write", "`notes.txt`"]);
    fails(d, &["eval", "--model", &fx("a.safetensors"), "--data", &data, "--out", "ev"], 2, &["ev", "did not write", "`notes.txt`"]);
    for dir in ["run", "ev"] {
        assert_eq!(walk(&d.join(dir)), ["notes.txt"], "{dir}: nothing written");
        assert_eq!(std::fs::read_to_string(d.join(dir).join("notes.txt")).unwrap(), "mine");
    }

    // study run --db and results merge OUT: a link to a store is not written through.
    std::fs::copy(&store, d.join("target.sqlite")).unwrap();
    let bytes = std::fs::read(d.join("target.sqlite")).unwrap();
    std::os::unix::fs::symlink(d.join("target.sqlite"), d.join("link.sqlite")).unwrap();
    std::fs::write(d.join("s.toml"), study(&[("first", &fixture().join("b.safetensors"))], "[\"gbmta\"]", "[8]")).unwrap();
    fails(d, &["study", "run", "s.toml", "--db", "link.sqlite"], 2, &["link.sqlite", "symlink"]);
    std::fs::copy(&store, d.join("in.sqlite")).unwrap();
    fails(d, &["results", "merge", "link.sqlite", "in.sqlite"], 2, &["link.sqlite", "symlink"]);
    assert_eq!(std::fs::read(d.join("target.sqlite")).unwrap(), bytes, "the link's target store was written");
    assert!(is_symlink(&d.join("link.sqlite")));
    for companion in ["target.sqlite-wal", "target.sqlite-journal", "link.sqlite-wal", "link.sqlite-journal"] {
        assert!(!d.join(companion).exists(), "{companion}");
    }
    // Reading through a link is fine.
    assert!(ok(d, &["results", "list", "--db", "link.sqlite"]).contains("2 cells"));
}

#[test]
fn a_full_disk_leaves_no_partial_or_temporary_file_and_the_earlier_file_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let full = d.join("full");
    std::fs::create_dir(&full).unwrap();
    let Some(_mount) = Mount::new(&["-t", "tmpfs", "-o", "size=4m", "tmpfs"], &full) else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let a = fx("a.safetensors");
    // Earlier outputs, written while there was room.
    ok(d, &["export", "treemtl", "--model", &a, "--out", "full/old.pt"]);
    std::fs::write(full.join("fig.png"), "earlier figure").unwrap();
    ok(d, &["report", "--db", &fx("s.sqlite"), "--out", "full/paper"]);
    // Then the disk fills up.
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(full.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
    }
    let before = snapshot(&full);
    let no_space = "No space left on device";
    fails(d, &["export", "treemtl", "--model", &a, "--out", "full/old.pt", "--force"], 2, &["full/old.pt", no_space]);
    fails(
        d,
        &["picture", "--model", &a, "--data", &fx("data"), "--eps", "4", "--n-iter", "1", "--out", "full/fig.png", "--force"],
        2,
        &["full/fig.png", no_space],
    );
    fails(d, &["report", "--db", &fx("s.sqlite"), "--out", "full/paper", "--force"], 2, &["full/paper", no_space]);
    fails(d, &["model", "init", "--tasks", TASKS, "--out", "full/m.safetensors"], 2, &["full/m.", no_space]);
    fails(d, &["data", "synth", "--out", "full/data", "--n", "4", "--size", "32"], 2, &[no_space]);
    let after = snapshot(&full);
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "no new or partial file");
    assert!(before.iter().all(|f| after.contains(f)), "an earlier file changed");
    assert_eq!(temporaries(&full), Vec::<String>::new());
    // A store created on the full disk is refused, and once there is room it is made whole.
    std::fs::write(d.join("s.toml"), std::fs::read_to_string(fixture().join("s.toml")).unwrap()).unwrap();
    let t = Instant::now();
    fails(d, &["study", "run", "s.toml", "--db", "full/new.sqlite"], 2, &["full/new.sqlite", "disk is full"]);
    assert!(t.elapsed() < Duration::from_secs(30), "a full disk is an error at once, not retried as a busy lock");
    std::fs::remove_file(full.join("filler")).unwrap();
    assert!(ok(d, &["study", "run", "s.toml", "--db", "full/new.sqlite"]).contains("2 computed now, 0 stored before"));
}

#[test]
fn foreign_sqlite_files_are_refused_untouched_and_read_only_stores_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let app = d.join("app.db");
    {
        let conn = Connection::open(&app).unwrap();
        conn.execute_batch("CREATE TABLE x (a INTEGER); INSERT INTO x VALUES (42);").unwrap();
    }
    let bytes = std::fs::read(&app).unwrap();
    std::fs::copy(fx("s.sqlite"), d.join("in.sqlite")).unwrap();
    std::fs::write(d.join("s.toml"), std::fs::read_to_string(fixture().join("s.toml")).unwrap()).unwrap();
    let refused = ["app.db", "not an mtrobust results store"];
    fails(d, &["results", "list", "--db", "app.db"], 2, &refused);
    fails(d, &["results", "export", "--db", "app.db"], 2, &refused);
    fails(d, &["report", "--db", "app.db"], 2, &refused);
    fails(d, &["study", "run", "s.toml", "--db", "app.db"], 2, &refused);
    fails(d, &["results", "merge", "app.db", "in.sqlite"], 2, &refused);
    assert_eq!(std::fs::read(&app).unwrap(), bytes, "the foreign file changed");
    for companion in ["app.db-wal", "app.db-shm", "app.db-journal"] {
        assert!(!d.join(companion).exists(), "{companion}");
    }
    let conn = Connection::open_with_flags(&app, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");

    // A store on a read-only mount is read by list, export and report.
    std::fs::create_dir_all(d.join("rw")).unwrap();
    std::fs::create_dir_all(d.join("ro")).unwrap();
    std::fs::copy(fx("s.sqlite"), d.join("rw/s.sqlite")).unwrap();
    let Some(_mount) = Mount::new(&["--bind", "-o", "ro", &d.join("rw").display().to_string()], &d.join("ro")) else {
        eprintln!("skipped the read-only part: cannot bind-mount here (needs root)");
        return;
    };
    assert!(std::fs::write(d.join("ro/probe"), "x").is_err(), "the bind mount is read-only");
    assert!(ok(d, &["results", "list", "--db", "ro/s.sqlite"]).contains("ro/s.sqlite: 2 cells"));
    assert_eq!(ok(d, &["results", "export", "--db", "ro/s.sqlite"]).lines().count(), 3, "header and two cells");
    assert!(!ok(d, &["report", "--db", "ro/s.sqlite"]).is_empty());
    assert_eq!(walk(&d.join("rw")), ["s.sqlite"], "nothing was written beside it");
}

#[cfg(unix)]
#[test]
fn a_closed_or_full_stdout_is_no_panic_for_report_picture_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (store, a, data) = (fx("s.sqlite"), fx("a.safetensors"), fx("data"));
    let commands: Vec<Vec<&str>> = vec![
        vec!["report", "--db", &store],
        vec!["results", "list", "--db", &store],
        vec!["results", "export", "--db", &store, "--format", "json"],
        vec!["picture", "--model", &a, "--data", &data, "--eps", "4", "--n-iter", "1", "--out"],
    ];
    for (i, args) in commands.iter().enumerate() {
        for full in [false, true] {
            let out_png = format!("fig{i}{full}.png");
            let mut args = args.clone();
            if args[0] == "picture" {
                args.push(&out_png);
            }
            let stdout = if full {
                Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap())
            } else {
                let (reader, writer) = std::io::pipe().unwrap();
                drop(reader);
                Stdio::from(writer)
            };
            let out = Command::new(env!("CARGO_BIN_EXE_mtrobust"))
                .args(["--quiet", "--device", "cpu"])
                .args(&args)
                .current_dir(d)
                .stdout(stdout)
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked") && out.status.code() != Some(101), "{args:?} (full: {full}) panicked: {err}");
            if full {
                assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
                assert!(err.contains("cannot write the results to stdout"), "{args:?}: {err}");
            } else {
                assert_eq!(out.status.code(), Some(0), "{args:?} | true: {err}");
            }
            if args[0] == "picture" {
                assert!(d.join(&out_png).is_file(), "the figure is written all the same");
            }
        }
    }
}

#[test]
fn bad_values_are_refused_naming_their_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fails(d, &["results", "export", "--db", &fx("s.sqlite"), "--eps", "nan"], 2, &["--eps", "nan"]);
    fails(d, &["results", "export", "--db", &fx("s.sqlite"), "--eps", "0"], 2, &["--eps"]);
    for (flag, value) in [("--test-fraction", "0"), ("--test-fraction", "1"), ("--n", "1"), ("--size", "8")] {
        let mut args = vec!["data", "synth", "--out", "x"];
        for (f, default) in [("--n", "8"), ("--size", "32"), ("--test-fraction", "0.5")] {
            args.extend([f, if f == flag { value } else { default }]);
        }
        let out = mtrobust(d, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(&format!("{flag}:")), "{flag} {value}: the message names the flag:\n{err}");
        assert!(!d.join("x").exists());
    }
    // 4 scenes at a tenth in the test split: no test scene.
    fails(
        d,
        &["data", "synth", "--out", "x", "--n", "4", "--size", "32", "--test-fraction", "0.1"],
        2,
        &["--test-fraction", "test split empty"],
    );
    // NYUv2's --resize is its square input size: 0 is refused by that name.
    std::fs::create_dir_all(d.join("nyu/NYUv2")).unwrap();
    std::fs::write(d.join("nyu/NYUv2/nyu_v2_3task.json"), r#"{"train": [], "test": []}"#).unwrap();
    ok(d, &["model", "init", "--tasks", "nyuv2", "--out", "nyu.safetensors"]);
    let out = mtrobust(d, &["eval", "--model", "nyu.safetensors", "--data", "nyu", "--resize", "0", "--out", "ev"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--resize: 0 px") && !err.contains("crop"), "{err}");
}
