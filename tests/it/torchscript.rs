//! TorchScript models against PyTorch. `tests/fixtures_torchscript.py` scripts a module returning a
//! dict and traces one returning a tuple (each with its own input normalisation), and saves a fixed
//! input in mtrobust's input space, the outputs and the input gradient of a fixed linear loss; here
//! the modules load with their specs (`tests/data/torchscript/*.toml`) and must reproduce both to
//! 1e-5 (relative). The committed fixtures are used as they are; the script only runs when they are
//! missing. Then the command line: attack, eval and a study on such models, and bad specs refused.
//! Last, a gradient-masked module (`masked.pt`: a zero-derivative rounding of its input), on which
//! gradient attacks cannot move and the gradient-free Square attack still raises the objective.

use crate::common::{assert_matches_pytorch, fails, ok};
use mtrobust::model::torchfile::read_state_dict;
use mtrobust::model::{Model, ModelSource};
use mtrobust::task::{TaskKind, TaskSet};
use std::path::{Path, PathBuf};
use tch::Device;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    let dir = repo().join("tests/data/torchscript");
    let names = ["dict.pt", "dict_io.pt", "tuple.pt", "tuple_io.pt", "masked.pt", "later_raises.pt", "later_reshapes.pt", "hungry.pt"];
    if !names.iter().all(|f| dir.join(f).exists()) {
        let py = repo().join(".venv/bin/python");
        assert!(py.exists(), "fixtures are missing and .venv/bin/python (with torch) is not there to make them");
        let out = std::process::Command::new(py).arg(repo().join("tests/fixtures_torchscript.py")).arg(&dir).output().expect("python runs");
        assert!(out.status.success(), "fixture script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

fn load(name: &str) -> Model {
    let dir = fixtures();
    Model::load_script(&dir.join(format!("{name}.pt")), &dir.join(format!("{name}.toml")), Device::Cpu).unwrap()
}

#[test]
fn a_scripted_module_with_dict_outputs_matches_pytorch() {
    let model = load("dict");
    let kinds: Vec<TaskKind> = model.tasks().iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TaskKind::SegmentSemantic, TaskKind::Normal, TaskKind::DepthZbuffer]);
    assert_eq!(model.tasks()[0].channels, 10);
    assert_matches_pytorch(&model, &fixtures().join("dict_io.pt"));
}

#[test]
fn a_traced_module_with_tuple_outputs_in_another_order_matches_pytorch() {
    let model = load("tuple");
    assert_matches_pytorch(&model, &fixtures().join("tuple_io.pt"));
}

#[test]
fn a_task_subset_runs_the_full_forward_and_keeps_the_wanted_outputs() {
    let model = load("dict");
    let x = read_state_dict(&fixtures().join("dict_io.pt")).unwrap().into_iter().find(|(k, _)| k == "x").unwrap().1;
    let _guard = tch::no_grad_guard();
    let all = model.forward_t(&x, false).unwrap();
    let some = model.forward_tasks(&x, TaskSet::from_ids([0, 2]), false).unwrap();
    assert_eq!(some.keys().collect::<Vec<_>>(), [TaskKind::SegmentSemantic, TaskKind::DepthZbuffer]);
    for (kind, y) in some.iter() {
        assert!(y.equal(all.get(kind).unwrap()), "{kind}");
    }
    // A TorchScript model cannot be trained or exported as TreeMTL.
    assert!(model.config().unwrap_err().to_string().contains("no TreeMTL backbone"));
    assert!(model.save(Path::new("never.safetensors"), None).is_err());
    assert!(!Path::new("never.safetensors").exists());
}

/// The error of loading `module` with a spec made of `spec`, then checking it on the fixture input.
fn spec_error(module: &str, spec: &str) -> String {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("spec.toml");
    std::fs::write(&path, spec).unwrap();
    let x = read_state_dict(&dir.join(format!("{module}_io.pt"))).unwrap().into_iter().find(|(k, _)| k == "x").unwrap().1;
    let source = ModelSource::new(dir.join(format!("{module}.pt")), Some(path));
    match source.load(Device::Cpu) {
        Err(e) => e.to_string(),
        Ok((model, _)) => model.check_on(&x).expect_err("the spec does not match the module").to_string(),
    }
}

#[test]
fn specs_that_do_not_match_the_module_are_refused_with_the_problem_named() {
    let rgb = "[input]\nchannel_order = \"rgb\"\npixel_range = 1.0\n";
    let seg = |extra: &str| format!("{rgb}[[task]]\nname = \"segm\"\nchannels = 10\n{extra}");
    let e = spec_error("dict", &seg("output = \"segmentation\"\n[[task]]\nname = \"depth\"\n"));
    assert!(e.contains("no key \"depth_zbuffer\" for task `depth_zbuffer`") && e.contains("\"normals\""), "{e}");
    let e = spec_error("dict", &format!("{rgb}[[task]]\nname = \"segm\"\nchannels = 7\noutput = \"segmentation\"\n"));
    assert!(e.contains("has 10 channels but the spec says 7"), "{e}");
    let e = spec_error("dict", &seg("output = 0\n"));
    assert!(e.contains("returns a dict") && e.contains("to a key"), "{e}");
    let e = spec_error("tuple", &format!("{rgb}[[task]]\nname = \"depth\"\noutput = 2\n"));
    assert!(e.contains("tuple or list of 2 outputs; task `depth_zbuffer` asks for output 2"), "{e}");
    let e = spec_error("tuple", &format!("{rgb}[[task]]\nname = \"depth\"\noutput = \"depth\"\n"));
    assert!(e.contains("not a dict"), "{e}");
    let e = spec_error("tuple", &format!("{rgb}[[task]]\nname = \"sky\"\n"));
    assert!(e.contains("spec.toml: [[task]] #1 (`sky`): unknown task `sky`"), "{e}");
    let e = spec_error("tuple", "[[task]]\nname = \"depth\"\n");
    assert!(e.contains("missing field `input`"), "{e}");
    // The input gradient fixture is a torch.save file, not a TorchScript module.
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("s.toml");
    std::fs::write(&spec, format!("{rgb}[[task]]\nname = \"depth\"\n")).unwrap();
    let e = Model::load_script(&fixtures().join("dict_io.pt"), &spec, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("not a TorchScript module"), "{e}");
}

#[test]
fn torchscript_models_are_attacked_evaluated_and_studied_from_the_command_line() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for f in ["dict.pt", "dict.toml", "tuple.pt"] {
        std::fs::copy(dir.join(f), d.join(f)).unwrap();
    }
    ok(d, &["data", "synth", "--out", "data", "--n", "4", "--size", "32", "--seed", "1", "--test-fraction", "0.5"]);
    let model = ["--model", "dict.pt", "--model-spec", "dict.toml", "--data", "data"];
    let attack = [
        "attack",
        "--eps",
        "4",
        "--n-iter",
        "2",
        "--direction",
        "single:depth",
        "--direction",
        "gbmta",
        "--format",
        "json",
        "--out",
        "att",
    ];
    let report = ok(d, &[&attack[..], &model[..]].concat());
    assert!(report.contains("\"attacked\"") && report.contains("torchscript dict.pt"), "{report}");
    assert!(d.join("att/report.json").exists());
    let eval = ok(d, &[&["eval", "--format", "csv", "--out", "ev"][..], &model[..]].concat());
    assert!(eval.contains("segment_semantic") || eval.contains("segm"), "{eval}");
    // The spec is part of the run's identity: another normalisation is another run.
    let spec = std::fs::read_to_string(d.join("dict.toml")).unwrap();
    std::fs::write(d.join("dict2.toml"), spec.replace("std = [0.229, 0.224, 0.225]", "std = [0.25, 0.25, 0.25]")).unwrap();
    let other = ["eval", "--out", "ev", "--model", "dict.pt", "--model-spec", "dict2.toml", "--data", "data"];
    fails(d, &other, 2, &["another run"]);
    // A spec may name only some of the outputs: the tuple module's depth alone.
    std::fs::write(
        d.join("depth.toml"),
        "[input]\nchannel_order = \"bgr\"\npixel_range = 255.0\nmean = [100.0, 110.0, 120.0]\nstd = [58.0, 58.0, 58.0]\n\n\
         [[task]]\nname = \"depth\"\noutput = 0\n",
    )
    .unwrap();
    let study = "[data]\npath = \"data\"\nsplit = \"test\"\nbatch_size = 2\n\n\
                 [[model]]\npath = \"dict.pt\"\nspec = \"dict.toml\"\n\n[[model]]\npath = \"tuple.pt\"\nspec = \"depth.toml\"\n\n\
                 [[attack]]\nrule = \"pgd\"\ndirections = [\"all\"]\neps = [4]\nn_iter = 2\n";
    std::fs::write(d.join("study.toml"), study).unwrap();
    // 3 Single-x + Total, SignTotal, GB-MTA for the dict model; 1 + 3 for depth alone.
    let out = ok(d, &["study", "run", "study.toml", "--db", "results.sqlite"]);
    assert!(out.contains("10 cells: 10 computed now"), "{out}");
    let models = ok(d, &["results", "list", "--db", "results.sqlite"]);
    assert!(models.contains("dict") && models.contains("tuple") && models.contains("torchscript"), "{models}");

    // Bad input: exit 2, the problem named, nothing written.
    let bad = |spec: &str, needles: &[&str]| {
        std::fs::write(d.join("bad.toml"), spec).unwrap();
        let args = ["attack", "--model", "dict.pt", "--model-spec", "bad.toml", "--data", "data", "--eps", "4", "--out", "bad"];
        fails(d, &args, 2, needles);
        assert!(!d.join("bad").exists());
    };
    let rgb = "[input]\nchannel_order = \"rgb\"\npixel_range = 1.0\n";
    bad(
        &format!(
            "{rgb}[[task]]\nname = \"segm\"\nchannels = 10\noutput = \"segmentation\"\n[[task]]\nname = \"depth\"\noutput = \"normals\"\n"
        ),
        &["dict.pt", "task `depth_zbuffer` has 3 channels but the spec says 1"],
    );
    bad(&format!("{rgb}[[task]]\nname = \"sky\"\n"), &["bad.toml", "unknown task `sky`"]);
    fails(d, &["attack", "--model", "dict.pt", "--data", "data", "--eps", "4", "--out", "bad"], 2, &["--model-spec"]);
    assert!(!d.join("bad").exists());
    std::fs::write(d.join("bad_study.toml"), study.replace("spec = \"depth.toml\"\n", "spec = \"dict.toml\"\n")).unwrap();
    fails(d, &["study", "run", "bad_study.toml", "--db", "bad.sqlite"], 2, &["tuple.pt", "not a dict", "output \"segmentation\""]);
    assert!(!d.join("bad.sqlite").exists());
}

#[test]
fn square_raises_the_objective_where_a_masked_gradient_stops_pgd_and_apgd() {
    use mtrobust::attack::{Apgd, ApgdProfile, Pgd, Rule, Square};
    use mtrobust::{AttackConfig, DirectionSpec, EvalOptions, Task};
    // Every input gradient of masked.pt is exactly 0 (round's derivative), but its outputs move
    // when a pixel crosses one of its 16-grey-level steps, as ±8 does for about half the pixels.
    let model = load("masked");
    let tasks: Vec<Task> = model.tasks().iter().map(|s| Task::new(*s)).collect();
    let n = 4;
    let batch = mtrobust::bench::random_batch(model.tasks(), &model.input, n as i64, (16, 16), Device::Cpu, 3);
    let data = mtrobust::data::InMemory(vec![batch]);
    let apgd = |n_iter| Rule::Apgd(Apgd { n_iter, ..Apgd::default() });
    let rules = [
        Rule::Pgd(Pgd::default()),
        Rule::Apgd(Apgd { n_iter: 10, profile: ApgdProfile::Paper { revised: false } }),
        apgd(10),
        apgd(1),
        Rule::Square(Square { n_queries: 100, ..Square::default() }),
    ];
    let mut attacks = Vec::new();
    for direction in [DirectionSpec::Gbmta, DirectionSpec::Total] {
        for rule in &rules {
            let config = AttackConfig { rule: rule.clone(), direction: direction.clone(), eps: 8.0, ..AttackConfig::default() };
            attacks.push(mtrobust::Attack::new(config).unwrap());
        }
    }
    let eval = mtrobust::evaluate(&model, &tasks, &data, &attacks, EvalOptions::default(), &mut mtrobust::observe::Silent, None).unwrap();
    let report: Vec<_> = eval.attacked.iter().map(|r| (r.objective.unwrap(), r.checks.clone().unwrap(), r.counts.unwrap())).collect();
    for (r, (objective, checks, _)) in eval.attacked.iter().zip(&report) {
        eprintln!(
            "{:<55} objective {:>9.5} → {:>9.5}  zero-gradient {}  unmoved {}",
            r.label, objective.0, objective.1, checks.zero_gradient_samples, checks.unmoved_samples
        );
    }
    for (d, direction) in ["gbmta", "total"].iter().enumerate() {
        let at = |i: usize| &report[d * rules.len() + i];
        // PGD (no random start) and paper APGD (starts at x): a zero gradient steps nowhere; every
        // sample is flagged, the objective is exactly the clean one, and the checks fail.
        for (i, name) in [(0, "pgd"), (1, "apgd paper")] {
            let ((f0, f1), checks, _) = at(i);
            assert_eq!(f1, f0, "{name}/{direction}");
            assert_eq!((checks.zero_gradient_samples, checks.unmoved_samples), (n, n), "{name}/{direction}");
            assert_eq!(
                checks.failures(),
                [format!("the attack left all {n} sample(s) unperturbed, so the metrics say nothing about robustness")]
            );
        }
        // AutoAttack's APGD starts at a random point of the ball's surface and never leaves it:
        // 10 iterations end where 1 does.
        let ((_, f_apgd), checks, _) = at(2);
        assert_eq!(checks.zero_gradient_samples, n, "apgd/{direction}");
        assert_eq!(*f_apgd, at(3).0.1, "apgd/{direction}: the gradient steps moved the input");
        // Square reads losses only: it raises the objective above the clean one and above APGD's
        // random start, with forwards only ([clean losses for GB-MTA] + stripes + 100 queries).
        let ((f0, f1), checks, counts) = at(4);
        assert!(f1 > f0 && f1 > f_apgd, "square/{direction}: {f0} → {f1} (apgd: {f_apgd})");
        assert!(checks.passed(), "square/{direction}: {:?}", checks.failures());
        assert_eq!((checks.zero_gradient_samples, checks.unmoved_samples), (0, 0));
        assert_eq!((counts.forward, counts.backward), (usize::from(d == 0) + 1 + 100, 0), "square/{direction}");
    }
}

#[test]
fn a_module_that_fails_or_changes_shape_on_a_later_batch_is_an_error_naming_module_batch_and_cause() {
    // Both modules pass the first-batch checks (batches of 4 and of 1) and misbehave on a batch of
    // 3 only: 7 samples in batches of 4 make batch 1 that batch.
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for f in ["later_raises.pt", "later_reshapes.pt", "later.toml"] {
        std::fs::copy(dir.join(f), d.join(f)).unwrap();
    }
    ok(d, &["data", "synth", "--out", "data", "--n", "12", "--size", "32", "--seed", "1"]);
    for (module, cause) in [("later_raises.pt", "this module refuses batches of 3"), ("later_reshapes.pt", "depth")] {
        for command in ["eval", "attack"] {
            let out = format!("out-{command}-{module}");
            let args = [
                command,
                "--model",
                module,
                "--model-spec",
                "later.toml",
                "--data",
                "data",
                "--split",
                "train",
                "--limit",
                "7",
                "--batch-size",
                "4",
                "--out",
                &out,
            ];
            fails(d, &args, 2, &[module, "batch 1", cause]);
        }
    }
}

#[test]
fn bench_times_a_torchscript_module_and_refuses_architecture_flags_with_it() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (pt, toml) = (dir.join("dict.pt"), dir.join("dict.toml"));
    let (pt, toml) = (pt.to_str().unwrap(), toml.to_str().unwrap());
    let common = ["--size", "16", "--batch-size", "2", "--repeats", "1", "--iterations", "1", "-q"];
    let mut args =
        vec!["bench", "--model", pt, "--model-spec", toml, "--attack", "pgd,fgsm", "--direction", "gbmta,single:depth", "--format", "json"];
    args.extend(common);
    let report: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &args)).unwrap();
    assert_eq!(report["model"], "torchscript dict.pt");
    assert_eq!((report["batch"].as_i64(), report["size"].as_i64()), (Some(2), Some(16)));
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["attack"].as_str().unwrap()).collect();
    // single:depth names a task of the spec: the tasks come from the module's spec file.
    assert_eq!(names, ["pgd/gbmta", "pgd/single:depth_zbuffer", "fgsm/gbmta", "fgsm/single:depth_zbuffer"]);
    for r in rows {
        assert_eq!((r["forwards"].as_f64(), r["backwards"].as_f64()), (Some(1.0), Some(1.0)), "{r}");
        // Timings are not asserted (a shared machine); the field is there and a number.
        assert!(r["seconds"].as_f64().is_some_and(f64::is_finite), "{r}");
    }
    for flag in [["--tasks", "nyuv2"], ["--backbone", "small"], ["--index", "2"]] {
        let mut bad = vec!["bench", "--model", pt, "--model-spec", toml];
        bad.extend(flag);
        fails(tmp.path(), &bad, 2, &["--model", flag[0]]);
    }
    fails(tmp.path(), &["bench", "--model-spec", toml], 2, &["--model"]);
}

/// libtorch running out of memory inside an attack (PGD, APGD) and in bench (`hungry.pt`
/// asks for 256 TiB per sample on a gradient pass of 4 or more samples: the allocation fails at
/// once on any machine) is exit 2 with libtorch's message, the batch and what to lower — no
/// panic, no C++ backtrace — and the suggested smaller batch then runs.
#[test]
fn out_of_memory_inside_an_attack_or_bench_is_exit_2_with_the_batch_size_hint() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for f in ["hungry.pt", "later.toml"] {
        std::fs::copy(dir.join(f), d.join(f)).unwrap();
    }
    ok(d, &["data", "synth", "--out", "data", "--n", "12", "--size", "32", "--seed", "1"]);
    let model = ["--model", "hungry.pt", "--model-spec", "later.toml"];
    let hint = ["hungry.pt", "can't allocate memory", "lower --batch-size"];
    for (command, extra) in [("attack", &["--n-iter", "2"][..]), ("attack", &["--attack", "apgd", "--n-iter", "2"][..])] {
        let run = |batch: &str| -> Vec<String> {
            let mut args = vec![command];
            args.extend(model);
            args.extend(["--data", "data", "--split", "train", "--limit", "8", "--eps", "4", "--batch-size", batch]);
            args.extend(extra);
            let out = format!("{command}-{batch}-{}", extra.len());
            args.iter().map(|a| a.to_string()).chain(["--out".into(), out]).collect()
        };
        let four = run("4");
        let out = crate::common::mtrobust(d, &four.iter().map(String::as_str).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        for needle in hint {
            assert!(err.contains(needle), "{command}: stderr lacks `{needle}`:\n{err}");
        }
        assert!(!err.contains("panicked") && !err.contains("frame #"), "{command}: {err}");
        let two = run("2");
        ok(d, &two.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let bench = |batch| {
        let mut args = vec!["bench"];
        args.extend(model);
        args.extend([
            "--size",
            "16",
            "--batch-size",
            batch,
            "--attack",
            "pgd",
            "--direction",
            "gbmta",
            "--repeats",
            "1",
            "--iterations",
            "1",
        ]);
        crate::common::mtrobust(d, &args)
    };
    let out = bench("4");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bench: {err}");
    assert!(err.contains("can't allocate memory") && err.contains("lower --batch-size"), "bench: {err}");
    assert!(!err.contains("panicked") && !err.contains("frame #"), "bench: {err}");
    assert!(bench("2").status.success());
}
