//! Reliability through the `mtrobust` binary: results are never overwritten, a broken checkpoint
//! or option is refused by name before any work (never a panic, never a number computed from
//! NaN), an attack that moved nothing is not reported as a robust model, a closed or full stdout
//! is handled, SIGTERM checkpoints like Ctrl-C, and error messages name the real problem.

use crate::common::{fails, mtrobust, ok};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Tensor;

const TASKS: &str = "segm:10,normal,depth,keyp,edge";

/// One small dataset (6 train + 2 test scenes of 32² px) and one untrained checkpoint for the
/// whole test binary, in a folder of cargo's test scratch space.
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("reliability-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ok(&dir, &["data", "synth", "--out", "data", "--n", "8", "--size", "32", "--seed", "1"]);
        ok(&dir, &["model", "init", "--tasks", TASKS, "--out", "model.safetensors"]);
        dir
    })
}

fn data() -> String {
    fixture().join("data").display().to_string()
}

/// Copies the fixture checkpoint to `dir/name.safetensors` (+ sidecar), changing its tensors with `edit`.
fn checkpoint_with(dir: &Path, name: &str, edit: impl Fn(&str, &Tensor) -> Option<Tensor>) -> String {
    let tensors = Tensor::read_safetensors(fixture().join("model.safetensors")).unwrap();
    let edited: Vec<(String, Tensor)> = tensors.into_iter().map(|(n, t)| (n.clone(), edit(&n, &t).unwrap_or(t))).collect();
    let path = dir.join(format!("{name}.safetensors"));
    Tensor::write_safetensors(&edited, &path).unwrap();
    std::fs::copy(fixture().join("model.json"), dir.join(format!("{name}.json"))).unwrap();
    path.display().to_string()
}

/// `tensor` with its first value replaced by `v`.
fn with_first(tensor: &Tensor, v: f64) -> Tensor {
    let t = tensor.copy();
    let _ = t.view([-1]).get(0).fill_(v);
    t
}

#[test]
fn results_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // model init over an existing checkpoint (or a lone sidecar).
    std::fs::copy(fixture().join("model.safetensors"), d.join("m.safetensors")).unwrap();
    std::fs::copy(fixture().join("model.json"), d.join("m.json")).unwrap();
    let before = std::fs::read(d.join("m.safetensors")).unwrap();
    let init = ["model", "init", "--tasks", TASKS, "--seed", "1", "--out", "m.safetensors"];
    fails(d, &init, 2, &["m.safetensors: already exists", "--force"]);
    assert_eq!(std::fs::read(d.join("m.safetensors")).unwrap(), before, "weights untouched");
    std::fs::write(d.join("lone.json"), "{}").unwrap();
    fails(d, &["model", "init", "--tasks", TASKS, "--out", "lone.safetensors"], 2, &["lone.json: already exists"]);
    assert!(!d.join("lone.safetensors").exists());
    ok(d, &[&init[..], &["--force"]].concat());
    assert_ne!(std::fs::read(d.join("m.safetensors")).unwrap(), before, "--force replaces it (another seed)");

    // train --out into a folder whose model no run checkpoint explains.
    std::fs::create_dir(d.join("run")).unwrap();
    std::fs::copy(fixture().join("model.safetensors"), d.join("run/model.safetensors")).unwrap();
    std::fs::copy(fixture().join("model.json"), d.join("run/model.json")).unwrap();
    fails(d, &["train", "--data", &data(), "--steps", "1", "--batch-size", "2", "--out", "run"], 2, &["no checkpoints/", "--restart"]);
    assert_eq!(std::fs::read(d.join("run/model.safetensors")).unwrap(), before);
    assert!(!d.join("run/checkpoints").exists() && !d.join("run/log.jsonl").exists());

    // data synth into a folder holding other files, or onto a file.
    std::fs::create_dir(d.join("mine")).unwrap();
    std::fs::write(d.join("mine/preview.png"), "my picture").unwrap();
    fails(
        d,
        &["data", "synth", "--out", "mine", "--n", "4", "--size", "32"],
        2,
        &["mine: holds files mtrobust did not write", "`preview.png`"],
    );
    assert_eq!(std::fs::read_to_string(d.join("mine/preview.png")).unwrap(), "my picture");
    assert!(!d.join("mine/Taskonomy").exists());
    fails(d, &["data", "synth", "--out", "mine/preview.png", "--n", "4", "--size", "32"], 2, &["mine/preview.png: is not a directory"]);
    // An empty folder is fine.
    std::fs::create_dir(d.join("empty")).unwrap();
    ok(d, &["data", "synth", "--out", "empty", "--n", "4", "--size", "32"]);
}

#[test]
fn corrupt_checkpoints_are_refused_naming_the_tensor_or_field() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let eval = |model: &str| ["eval", "--model", model, "--data", &data(), "--out", "ev"].map(String::from);
    let check = |args: &[String], needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(d, &args, 2, needles);
    };
    let nan = checkpoint_with(d, "nan", |n, t| (n == "tree.0.conv.weight").then(|| with_first(t, f64::NAN)));
    check(&eval(&nan), &["`tree.0.conv.weight` holds 1 NaN or infinite value(s)"]);
    let inf = checkpoint_with(d, "inf", |n, t| (n == "heads.segment_semantic.fc1.conv1.bias").then(|| with_first(t, f64::INFINITY)));
    check(&eval(&inf), &["`heads.segment_semantic.fc1.conv1.bias` holds 1 NaN or infinite"]);
    let var = checkpoint_with(d, "var", |n, t| (n == "tree.0.bn.running_var").then(|| with_first(t, -1.0)));
    check(&eval(&var), &["`tree.0.bn.running_var` holds 1 negative variance(s)"]);
    // attack and train --init load through the same check.
    check(&["attack", "--model", &nan, "--data", &data(), "--out", "att"].map(String::from), &["tree.0.conv.weight"]);
    check(
        &["train", "--data", &data(), "--init", &nan, "--steps", "1", "--out", "tr"].map(String::from),
        &["--init", "tree.0.conv.weight"],
    );
    // A sidecar whose input scale would map every image to one point, or flip the budget.
    for scale in ["0", "-1"] {
        let path = checkpoint_with(d, &format!("scale{scale}"), |_, _| None);
        let sidecar = PathBuf::from(&path).with_extension("json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
        json["input"]["scale"] = serde_json::json!(scale.parse::<f64>().unwrap());
        std::fs::write(&sidecar, json.to_string()).unwrap();
        check(&eval(&path), &["`input.scale` is", "positive"]);
    }
    for dir in ["ev", "att", "tr"] {
        assert!(!d.join(dir).exists(), "{dir}: refused before any output");
    }
}

#[test]
fn numeric_options_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture().join("model.safetensors").display().to_string();
    let data = data();
    let attack = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["attack", "--model", &model, "--data", &data, "--out", "out"].map(String::from).to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let train = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["train", "--data", &data, "--steps", "1", "--out", "out"].map(String::from).to_vec();
        if !extra.contains(&"--batch-size") {
            v.extend(["--batch-size", "2"].map(String::from));
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (attack(&["--attack", "mifgsm", "--mi-momentum", "nan"]), vec!["--mi-momentum", "NaN"]),
        (attack(&["--attack", "auto-sage", "--sage-lr", "nan"]), vec!["--sage-lr", "NaN"]),
        (attack(&["--attack", "auto-sage", "--sage-fitting", "-1"]), vec!["--sage-fitting"]),
        (attack(&["--eps", "0"]), vec!["ε must be > 0"]),
        (attack(&["--eps", "-1"]), vec!["--eps", "negative", "must be > 0"]),
        (attack(&["--eps=-1"]), vec!["--eps", "negative"]),
        (attack(&["--eps", "4,-8/255"]), vec!["`-8/255` is negative"]),
        (attack(&["--limit", "0"]), vec!["--limit", "at least 1"]),
        (attack(&["--batch-size", "0"]), vec!["--batch-size", "at least 1"]),
        (attack(&["--threads", "0"]), vec!["--threads", "at least 1"]),
        (attack(&["--step-size", "-1"]), vec!["--step-size"]),
        (attack(&["--attack", "pgd", "--restarts", "3"]), vec!["--restarts: `--attack pgd` does not read it", "it reads --n-iter"]),
        (attack(&["--attack", "apgd", "--apgd-profile", "paper", "--restarts", "3"]), vec!["restarts", "autoattack"]),
        (attack(&["--n-iter", "18446744073709551615"]), vec!["--n-iter", "more than"]),
        (attack(&["--attack", "fgsm", "--n-iter", "3"]), vec!["--n-iter: `--attack fgsm` does not read it (it has no parameters)"]),
        (
            attack(&["--attack", "pgd", "--n-queries", "3"]),
            vec!["--n-queries: `--attack pgd` does not read it (it reads --n-iter, --step-size, --random-start)"],
        ),
        (
            attack(&["--attack", "square", "--n-iter", "3"]),
            vec!["--n-iter: `--attack square` does not read it (it reads --n-queries, --p-init)"],
        ),
        (attack(&["--attack", "square", "--p-init", "0"]), vec!["--p-init", "(0, 1]"]),
        (attack(&["--attack", "square", "--n-queries", "0"]), vec!["--n-queries", "at least one query"]),
        (attack(&["--attack", "square", "--norm", "l2"]), vec!["--norm", "L∞ ball only"]),
        (train(&["--adversarial", "--fat-tau", "2", "--fat-threshold", "nan"]), vec!["--fat-threshold", "NaN"]),
        (train(&["--momentum", "nan"]), vec!["--momentum", "NaN"]),
        (train(&["--optimizer", "adam", "--beta1", "1.5"]), vec!["β₁"]),
        (train(&["--weight-decay", "-1"]), vec!["--weight-decay"]),
        (train(&["--lr", "-1"]), vec!["--lr", "not a positive learning rate"]),
        (train(&["--schedule", "poly:nan"]), vec!["--schedule"]),
        (train(&["--val-limit", "0"]), vec!["--val-limit"]),
        // 6 training scenes: a batch of 100000 is refused instead of growing memory without bound.
        (train(&["--batch-size", "100000"]), vec!["--batch-size", "6 training samples", "at most 6"]),
    ];
    for (args, needles) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(d, &args, 2, needles);
        assert!(!d.join("out").exists(), "{args:?} created its output before refusing");
    }
}

#[test]
fn an_attack_that_moves_no_sample_fails_its_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A zero first convolution (all layouts share it here) makes every output independent of the
    // input: every input gradient is exactly 0, so PGD leaves every sample where it was.
    let model = checkpoint_with(d, "flat", |n, t| (n == "tree.0.conv.weight").then(|| t.zeros_like()));
    let args = ["attack", "--model", &model, "--data", &data(), "--direction", "total", "--eps", "4", "--n-iter", "1", "--out", "att"];
    let out = mtrobust(d, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("left all 2 sample(s) unperturbed"), "{err}");
    let record: mtrobust::report::RunRecord = serde_json::from_str(&std::fs::read_to_string(d.join("att/report.json")).unwrap()).unwrap();
    let checks = record.evaluation.attacked[0].checks.clone().unwrap();
    assert_eq!((checks.samples, checks.unmoved_samples, checks.max_perturbation), (2, 2, 0.0));
    assert!(!checks.passed());
}

#[test]
fn square_attacks_from_the_command_line_with_forwards_only() {
    use mtrobust::attack::{Rule, Square};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture().join("model.safetensors").display().to_string();
    let data = data();
    let args = [
        "attack",
        "--model",
        &model,
        "--data",
        &data,
        "--attack",
        "square",
        "--n-queries",
        "20",
        "--direction",
        "gbmta",
        "--direction",
        "single:depth",
        "--eps",
        "4",
        "--batch-size",
        "1",
        "--out",
        "sq",
    ];
    ok(d, &args);
    let record: mtrobust::report::RunRecord = serde_json::from_str(&std::fs::read_to_string(d.join("sq/report.json")).unwrap()).unwrap();
    let attacked = &record.evaluation.attacked;
    assert_eq!(attacked.len(), 2);
    // Two test scenes in batches of 1; per batch [clean losses, GB-MTA only] + stripes + 20 queries.
    for (a, clean) in attacked.iter().zip([1, 0]) {
        assert_eq!(a.attack.as_ref().unwrap().rule, Rule::Square(Square { n_queries: 20, p_init: 0.8 }), "{}", a.label);
        let counts = a.counts.unwrap();
        assert_eq!((counts.forward, counts.backward), (2 * (clean + 1 + 20), 0), "{}", a.label);
        let checks = a.checks.clone().unwrap();
        assert!(checks.passed(), "{}: {:?}", a.label, checks.failures());
        assert!((checks.max_perturbation - 4.0).abs() < 1e-4, "{}: {checks:?}", a.label);
    }
}

#[cfg(unix)]
#[test]
fn a_closed_or_full_stdout_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let run = |stdout: Stdio| {
        Command::new(env!("CARGO_BIN_EXE_mtrobust"))
            .args(["model", "info", "--format", "json"])
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    // The reader is gone before the first write (`mtrobust … | true`): exit 0, nothing on stderr.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run(Stdio::from(writer));
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stderr).to_string()), (Some(0), String::new()));
    // A full disk is an error that says so.
    if Path::new("/dev/full").exists() {
        let out = run(Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap()));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("cannot write the results to stdout") && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn messages_name_the_real_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A missing checkpoint is named, not its sidecar.
    let out = mtrobust(d, &["attack", "--model", "none.safetensors", "--data", &data()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("none.safetensors: no such file") && !err.contains("none.json"), "{err}");
    // An empty split names the split and the index file.
    let empty = d.join("empty-split");
    std::fs::create_dir_all(empty.join("Taskonomy")).unwrap();
    let index = fixture().join("data/Taskonomy/taskonomy.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    json["test"] = serde_json::json!([]);
    std::fs::write(empty.join("Taskonomy/taskonomy.json"), json.to_string()).unwrap();
    std::fs::copy(fixture().join("data/Taskonomy/semseg_prior_factor.npy"), empty.join("Taskonomy/semseg_prior_factor.npy")).unwrap();
    let model = fixture().join("model.safetensors").display().to_string();
    fails(d, &["eval", "--model", &model, "--data", "empty-split"], 2, &["taskonomy.json: split `test` has no samples"]);
    // A model for 40 classes on 10-class data: `attack` has no --tasks to change.
    ok(d, &["model", "init", "--tasks", "nyuv2", "--out", "nyu.safetensors"]);
    fails(
        d,
        &["attack", "--model", "nyu.safetensors", "--data", &data()],
        2,
        &["segments 40 classes but the data has 10", "a model made for this data"],
    );
}

#[cfg(unix)]
#[test]
fn sigterm_checkpoints_like_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mtrobust"))
        .args(["--quiet", "--device", "cpu", "train", "--data", &data(), "--steps", "100000", "--batch-size", "2", "--log-every", "1"])
        .args(["--val-split", "none", "--checkpoint-every", "100000", "--out", "run"])
        .current_dir(d)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first logged step: the handler is installed by then.
    let log = d.join("run/log.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(true, |t| t.is_empty()) {
        assert!(started.elapsed().as_secs() < 300, "no training step within 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("checkpoint saved"), "{err}");
    // The checkpoint holds every logged step (the run stops after the step in flight).
    let latest = std::fs::read_to_string(d.join("run/checkpoints/latest")).unwrap();
    let step: usize = latest.trim().trim_start_matches("step-").parse().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(step >= 1 && logged == step, "checkpoint at step {step}, {logged} logged steps");
    assert!(d.join("run/model.safetensors").is_file());
}
