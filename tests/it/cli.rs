//! End to end through the `mtrobust` binary: data synth → train (and resume) → attack → eval, the
//! JSON report read back with its exact schema, and bad inputs.

use crate::common::{fails, ok};
use mtrobust::report::RunRecord;

#[test]
fn the_pipeline_runs_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(d, &["data", "synth", "--out", "data", "--n", "16", "--size", "32", "--seed", "3"]);
    assert!(out.contains("wrote 13 train + 3 test scenes"), "{out}");
    assert!(d.join("data/preview.png").is_file());

    let train = [
        "train",
        "--data",
        "data",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--val-limit",
        "3",
        "--checkpoint-every",
        "2",
        "--out",
        "run",
        "--index",
        "2",
    ];
    let out = ok(d, &train);
    assert!(out.contains("trained 4 steps") && out.contains("validation"), "{out}");
    assert!(d.join("run/model.safetensors").is_file() && d.join("run/model.json").is_file());
    // Running it again finds the finished run and does nothing more.
    assert!(ok(d, &train).contains("resumed from step 4"));
    // Same directory, other settings: refused with a reason.
    let mut other = train.to_vec();
    other[4] = "6";
    fails(d, &other, 2, &["another configuration", "--restart"]);

    let model = "run/model.safetensors";
    let json = ok(
        d,
        &[
            "attack",
            "--model",
            model,
            "--data",
            "data",
            "--direction",
            "gbmta",
            "--direction",
            "single:depth",
            "--eps",
            "4",
            "--n-iter",
            "3",
            "--format",
            "json",
            "--out",
            "att",
        ],
    );
    let record: RunRecord = serde_json::from_str(&json).expect("the report parses with its exact schema");
    assert_eq!(record.schema_version, mtrobust::report::SCHEMA_VERSION);
    assert_eq!(record.evaluation.attacked.len(), 2);
    for r in &record.evaluation.attacked {
        let c = r.checks.as_ref().unwrap();
        assert!(c.passed() && c.max_perturbation <= 4.0 + 1e-4, "{c:?}");
        assert!(r.arp.is_some());
    }
    // The saved adversarial batch respects the budget against the saved clean batch.
    let clean = mtrobust::data::read_npy(&d.join("att/clean_batch0000.npy")).unwrap();
    let adv = mtrobust::data::read_npy(&d.join("att/pgd_gbmta_linf_eps_4/adv_batch0000.npy")).unwrap();
    assert_eq!(adv.size(), clean.size());
    let delta = f64::try_from((&adv - &clean).abs().max()).unwrap();
    assert!(delta <= 4.0 + 1e-4 && delta > 0.0, "{delta}");
    assert!(d.join("att/pgd_gbmta_linf_eps_4/preview.png").is_file());
    assert!(std::fs::read_to_string(d.join("att/report.csv")).unwrap().lines().next().unwrap().starts_with("version,epsilon"));

    // The standard ensemble: every member's report, wins summing to the samples, the kept
    // examples within the budget; its ARP is at least that of the member of highest ARP only on
    // the score, so the check here is on the score: the worst case's objective dominates.
    let json = ok(
        d,
        &[
            "attack",
            "--model",
            model,
            "--data",
            "data",
            "--ensemble",
            "standard",
            "--n-iter",
            "2",
            "--n-queries",
            "4",
            "--eps",
            "4",
            "--format",
            "json",
            "--out",
            "ens",
        ],
    );
    let record: RunRecord = serde_json::from_str(&json).unwrap();
    let worst = &record.evaluation.attacked[0];
    let members = worst.ensemble.as_ref().expect("members reported");
    let names: Vec<String> = members.iter().map(|m| m.report.label.clone()).collect();
    assert_eq!(names.len(), 2 + record.evaluation.clean.metrics.len() + 1, "{names:?}");
    assert!(names[0].starts_with("apgd/gbmta/") && names.last().unwrap().starts_with("square/gbmta/"), "{names:?}");
    assert_eq!(members.iter().map(|m| m.wins).sum::<usize>(), worst.samples);
    assert!(worst.checks.as_ref().unwrap().passed() && worst.checks.as_ref().unwrap().max_perturbation <= 4.0 + 1e-4);
    let top = members.iter().filter(|m| m.report.label.contains("/gbmta/")).map(|m| m.report.objective.unwrap().1).fold(f64::MIN, f64::max);
    assert!(worst.objective.unwrap().1 >= top - 1e-6, "{:?} vs {top}", worst.objective);
    // A file of members, scored by one task's loss; the table names each member and its wins.
    std::fs::write(
        d.join("mine.toml"),
        "name = 'mine'\n[[member]]\nrule = 'fgsm'\ndirection = 'total'\n[[member]]\nrule = 'square'\nn_queries = 3\ndirection = 'single:depth'\n",
    )
    .unwrap();
    let table = ok(
        d,
        &[
            "attack",
            "--model",
            model,
            "--data",
            "data",
            "--ensemble",
            "mine.toml",
            "--score",
            "single:depth",
            "--eps",
            "4",
            "--out",
            "mine",
        ],
    );
    assert!(table.contains("ensemble mine (2 members, score single:depth_zbuffer)"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("FGSM Total")) && table.lines().any(|l| l.starts_with("Square Single-Dept")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("worst case") && l.contains(" 3 ")), "{table}");
    // Refused before any work: a flag the ensemble does not read, a rule beside it, a bad file.
    fails(
        d,
        &["attack", "--model", model, "--data", "data", "--ensemble", "standard", "--step-size", "1", "--out", "e2"],
        2,
        &["--step-size", "--n-iter"],
    );
    fails(
        d,
        &["attack", "--model", model, "--data", "data", "--ensemble", "mine.toml", "--n-iter", "3", "--out", "e2"],
        2,
        &["--n-iter", "[[member]]"],
    );
    fails(
        d,
        &["attack", "--model", model, "--data", "data", "--ensemble", "standard", "--attack", "pgd", "--out", "e2"],
        2,
        &["cannot be used with"],
    );
    fails(d, &["attack", "--model", model, "--data", "data", "--score", "total", "--out", "e2"], 2, &["--ensemble"]);
    std::fs::write(d.join("bad.toml"), "name = 'bad'\n[[member]]\nrule = 'pgd'\nn_iters = 3\ndirection = 'total'\n").unwrap();
    fails(d, &["attack", "--model", model, "--data", "data", "--ensemble", "bad.toml", "--out", "e2"], 2, &["bad.toml", "n_iters"]);
    fails(
        d,
        &["attack", "--model", model, "--data", "data", "--ensemble", "standard", "--score", "single:albedo", "--out", "e2"],
        2,
        &["--score"],
    );
    assert!(!d.join("e2").exists(), "a refused command leaves no output directory");

    let table = ok(d, &["eval", "--model", model, "--data", "data", "--out", "ev"]);
    assert!(table.contains("mIoU") && table.contains("abs_err"), "{table}");

    // The same command may rerun into its directory; another run may not replace its report.
    fails(
        d,
        &["attack", "--model", model, "--data", "data", "--direction", "total", "--eps", "4", "--n-iter", "2", "--out", "att"],
        2,
        &["already holds the report of another run", "--force"],
    );
    ok(
        d,
        &[
            "attack",
            "--model",
            model,
            "--data",
            "data",
            "--direction",
            "gbmta",
            "--direction",
            "single:depth",
            "--eps",
            "4",
            "--n-iter",
            "3",
            "--out",
            "att",
        ],
    );

    // Tables rebuilt from the JSON reports alone.
    let one = ok(d, &["report", "att/report.json"]);
    assert!(one.contains("ARP") && one.contains("gbmta"), "{one}");
    let both = ok(d, &["report", "ev/report.json", "att/report.json", "--name", "base", "--name", "again"]);
    assert!(both.contains("cost %") && both.lines().any(|l| l.starts_with("again")), "{both}");
    fails(d, &["report", "data/synth.json"], 2, &["not an mtrobust report"]);
}

#[test]
fn model_info_prints_exact_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["model", "info", "--backbone", "resnet34", "--tasks", "nyuv2", "--index", "9"]);
    assert!(out.contains("63,622,528") && out.contains("133,033,520"), "{out}");
    let json = ok(tmp.path(), &["model", "info", "--backbone", "mobilenetv2", "--tasks", "nyuv2", "--index", "0", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["backbone_params"], 2_223_872);
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fails(d, &["model", "info", "--index", "51"], 2, &["51 is out of range", "51 layouts"]);
    fails(d, &["model", "info", "--layout", "[[{0, 1, 2}], [{0}, {1}]]"], 2, &["does not place task(s) {2}"]);
    fails(d, &["train", "--data", "nowhere", "--steps", "1"], 2, &["nowhere", "no such directory", "data synth"]);
    fails(d, &["attack", "--model", "missing.safetensors", "--data", "."], 2, &["missing.safetensors", "sidecar"]);
    fails(d, &["eval", "--model", "weights.pt", "--data", "."], 2, &[".safetensors"]);
    ok(d, &["data", "synth", "--out", "data", "--n", "4", "--size", "32"]);
    fails(d, &["data", "synth", "--out", "data", "--n", "4", "--size", "32"], 2, &["already holds a dataset"]);
    fails(d, &["train", "--data", "data", "--tasks", "nyuv2", "--steps", "1"], 2, &["segm:10"]);
    fails(d, &["train", "--data", "data", "--steps", "1", "--schedule", "cosine"], 2, &["not a schedule"]);
    fails(d, &["train", "--data", "data", "--steps", "1", "--adversarial", "--eps=-3"], 2, &["--eps", "grey levels"]);
    fails(d, &["train", "--data", "data", "--steps", "1", "--adversarial", "--direction", "sideways"], 2, &["not a direction"]);
    fails(d, &["train", "--data", "data", "--split", "validation", "--steps", "1"], 2, &["validation"]);
    // Usage errors are clap's (exit 2 as well).
    fails(d, &["attack", "--attack", "cw"], 2, &["cw"]);
}

#[test]
fn the_demo_runs_end_to_end_and_resumes_from_its_own_output() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let args = ["demo", "--out", "demo", "--n", "24", "--size", "32", "--steps", "6", "--limit", "8", "--eps", "4"];
    let out = ok(d, &args);
    for needle in [
        "| shared-5L | ",
        "| #0 AS/5L | 523.6K |",
        "FGSM GB-MTA",
        "APGD Single-Segm",
        "Transferability",
        "untrained",
        "constant",
        "fig6_adversarial_examples.png",
        "Ensemble GB-MTA",
        "Square GB-MTA",
        "Ensemble (per-sample worst case)",
    ] {
        assert!(out.contains(needle), "demo output lacks `{needle}`:\n{out}");
    }
    let store = mtrobust::study::Store::open(&d.join("demo/results.sqlite")).unwrap();
    let cells = store.cells().unwrap();
    assert_eq!(cells.len(), 75, "3 models × (FGSM, PGD, APGD × (5 Single-x + Total + SignTotal + GB-MTA) + the ensemble) × one ε");
    assert!(cells.iter().all(|c| c.checks_passed));
    for f in
        ["table1_arp.md", "table12_transfer.tex", "fig2_arp_vs_eps.png", "fig4_transfer_vs_sharing.svg", "fig6_adversarial_examples.png"]
    {
        assert!(d.join("demo/report").join(f).is_file(), "demo/report/{f} missing");
    }
    // A second run reuses the data, the trained models and the stored cells, and prints the same.
    assert_eq!(ok(d, &args), out);
    // Other data options in the same directory are refused.
    let mut other = args.to_vec();
    other[4] = "30";
    fails(d, &other, 2, &["other options"]);
    // A file of the user's in --out, or a link among the report's files, is refused untouched.
    std::fs::write(d.join("notes.txt"), "mine").unwrap();
    std::os::unix::fs::symlink(d.join("notes.txt"), d.join("demo/report/table1_arp.md.bak")).unwrap();
    fails(d, &args, 2, &["demo/report", "table1_arp.md.bak", "did not write"]);
    std::fs::remove_file(d.join("demo/report/table1_arp.md.bak")).unwrap();
    std::fs::write(d.join("demo/notes.txt"), "mine").unwrap();
    fails(d, &args, 2, &["--out", "`notes.txt`", "did not write"]);
    assert_eq!(std::fs::read_to_string(d.join("notes.txt")).unwrap(), "mine");
}

/// A tiny NYUv2-format dataset (AdaShare layout) written with the library's writer.
fn write_nyuv2(root: &std::path::Path) {
    use mtrobust::data::Dense;
    use mtrobust::data::nyuv2::{Nyuv2Record, write_index, write_record};
    let (h, w) = (24, 30);
    let mut files = Vec::new();
    for i in 0..3u8 {
        let mut bgr = Dense::filled(3, h, w, 0u8);
        let mut seg = Dense::filled(1, h, w, 0u8);
        let mut normal = Dense::filled(3, h, w, 128u8);
        let mut depth = Dense::filled(1, h, w, 0f32);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    *bgr.at_mut(c, y, x) = ((x * 7 + y * 3 + c * 50 + i as usize * 20) % 256) as u8;
                }
                *seg.at_mut(0, y, x) = if y == 0 { 255 } else { ((x / 8 + i as usize) % 40) as u8 };
                *normal.at_mut(2, y, x) = (100 + x) as u8;
                *depth.at_mut(0, y, x) = if x == 0 { 0.0 } else { 1.0 + 0.1 * y as f32 };
            }
        }
        files.push(write_record(&root.join("NYUv2"), &format!("s{i}"), &Nyuv2Record { bgr, seg, normal, depth }).unwrap());
    }
    write_index(root, &[("train", files.clone()), ("test", files)]).unwrap();
}

#[test]
fn real_dataset_formats_run_through_eval_and_attack() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // NYUv2: 40 classes, raw 8-bit normals, the full metric set; --resize shrinks the 321 default.
    write_nyuv2(&d.join("nyu"));
    ok(d, &["model", "init", "--tasks", "nyuv2", "--out", "nyu.safetensors"]);
    let table = ok(
        d,
        &[
            "attack",
            "--model",
            "nyu.safetensors",
            "--data",
            "nyu",
            "--resize",
            "32",
            "--direction",
            "gbmta",
            "--eps",
            "2",
            "--n-iter",
            "2",
            "--out",
            "nyu-att",
        ],
    );
    for needle in ["mIoU", "Angle Median", "sigma_1.25^3", "gbmta"] {
        assert!(table.contains(needle), "{needle}:\n{table}");
    }
    fails(d, &["eval", "--model", "nyu.safetensors", "--data", "nyu", "--split", "val"], 2, &["val"]);
    // Plain Taskonomy (no synth.json): the reference's one metric per task by default.
    ok(d, &["data", "synth", "--out", "tk", "--n", "6", "--size", "32"]);
    std::fs::remove_file(d.join("tk/synth.json")).unwrap();
    ok(d, &["model", "init", "--tasks", "segm:10,normal,depth,keyp,edge", "--out", "tk.safetensors"]);
    let table = ok(d, &["eval", "--model", "tk.safetensors", "--data", "tk", "--resize", "32", "--crop", "32"]);
    for needle in ["err", "cosine_similarity", "abs_err", "key_err", "edge_err"] {
        assert!(table.contains(needle), "{needle}:\n{table}");
    }
    assert!(!table.contains("mIoU"), "{table}");
}
