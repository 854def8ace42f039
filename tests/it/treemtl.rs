//! TreeMTL checkpoints against PyTorch. `tests/fixtures_treemtl.py` builds tiny models with the
//! module structure of both reference classes, so PyTorch itself writes the `Deeplab_ASPP_Layout`
//! and `MTSeqModel` keys, and saves a fixed input, the outputs and the input gradient of a fixed
//! linear loss; here the checkpoints are imported and must reproduce both to 1e-5 (relative). The
//! committed fixtures are used as they are; the script only runs when they are missing.

use crate::common::{assert_matches_pytorch, fails, max_abs, ok};
use mtrobust::model::torchfile::{read_state_dict, write_state_dict};
use mtrobust::model::treemtl::{Scheme, export, import};
use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig};
use mtrobust::task::parse_tasks;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const DEEPLAB_LAYOUT: &str = "[[{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{1, 2}, {0}]]";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<PathBuf> {
    let p = repo().join(".venv/bin/python");
    p.exists().then_some(p)
}

/// Runs the fixture script into `dir` (with `extra` arguments).
fn generate(dir: &Path, extra: &[&str]) {
    let py = python().expect("fixtures are missing and .venv/bin/python (with torch) is not there to make them");
    let out =
        std::process::Command::new(py).arg(repo().join("tests/fixtures_treemtl.py")).arg(dir).args(extra).output().expect("python runs");
    assert!(out.status.success(), "fixture script failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn fixtures() -> PathBuf {
    let dir = repo().join("tests/data/treemtl");
    if !["deeplab.model", "deeplab_io.pt", "seq.model", "seq_io.pt"].iter().all(|f| dir.join(f).exists()) {
        generate(&dir, &[]);
    }
    dir
}

fn config(backbone: BackboneKind, tasks: &str, layout: &str, width: i64) -> ModelConfig {
    ModelConfig {
        backbone,
        tasks: parse_tasks(tasks).unwrap(),
        layout: layout.parse().unwrap(),
        head: HeadConfig { width, rates: vec![1, 2, 3, 4], dropout: 0.1 },
    }
}

fn deeplab_config() -> ModelConfig {
    config(BackboneKind::Small, "segm:10,normal,depth", DEEPLAB_LAYOUT, 4)
}

fn seq_config() -> ModelConfig {
    config(BackboneKind::Small, "normal,depth", "[[{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}]]", 4)
}

#[test]
fn deeplab_aspp_layout_checkpoints_match_pytorch() {
    let dir = fixtures();
    let (model, scheme) = import(&dir.join("deeplab.model"), deeplab_config(), None, Device::Cpu).unwrap();
    assert_eq!(scheme, Scheme::Deeplab);
    assert_matches_pytorch(&model, &dir.join("deeplab_io.pt"));
}

#[test]
fn mtseqmodel_checkpoints_match_pytorch() {
    let dir = fixtures();
    let (model, scheme) = import(&dir.join("seq.model"), seq_config(), Some(Scheme::Seq), Device::Cpu).unwrap();
    assert_eq!(scheme, Scheme::Seq);
    assert_matches_pytorch(&model, &dir.join("seq_io.pt"));
}

#[test]
fn the_same_tensors_load_from_safetensors_and_bare_data_parallel_state_dicts() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let tensors = read_state_dict(&dir.join("deeplab.model")).unwrap();
    let st = tmp.path().join("w.safetensors");
    Tensor::write_safetensors(&tensors, &st).unwrap();
    // A bare state dict, saved from under nn.DataParallel (every key prefixed with `module.`).
    let pt = tmp.path().join("w.pt");
    let prefixed: Vec<(String, Tensor)> = tensors.iter().map(|(k, t)| (format!("module.{k}"), t.shallow_clone())).collect();
    write_state_dict(&pt, &prefixed).unwrap();
    for path in [st, pt] {
        let (model, _) = import(&path, deeplab_config(), None, Device::Cpu).unwrap();
        assert_matches_pytorch(&model, &dir.join("deeplab_io.pt"));
    }
}

fn variables(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn export_round_trips_bit_identically_and_rewrites_the_reference_file() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = import(&dir.join("deeplab.model"), deeplab_config(), None, Device::Cpu).unwrap();
    // Ours → TreeMTL keys (either scheme) → ours: every variable bit-identical.
    for scheme in [Scheme::Deeplab, Scheme::Seq] {
        let path = tmp.path().join(format!("{scheme:?}.pt"));
        export(&a, scheme, &path).unwrap();
        let (b, found) = import(&path, deeplab_config(), None, Device::Cpu).unwrap();
        assert_eq!(found, scheme);
        for ((na, ta), (nb, tb)) in variables(&a).iter().zip(variables(&b).iter()) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "{scheme:?}: {na} changed");
        }
    }
    // Exported with the reference's keys, the file holds exactly the keys PyTorch wrote and the same values.
    let reference = read_state_dict(&dir.join("deeplab.model")).unwrap();
    let ours: HashMap<String, Tensor> = read_state_dict(&tmp.path().join("Deeplab.pt")).unwrap().into_iter().collect();
    assert_eq!(ours.len(), reference.len());
    for (k, t) in &reference {
        let o = ours.get(k).unwrap_or_else(|| panic!("export lacks {k}"));
        if k.ends_with("num_batches_tracked") {
            assert_eq!(o.kind(), Kind::Int64);
        } else {
            assert!(o.equal(&t.to_kind(Kind::Float)), "{k}");
        }
    }
}

fn import_error(file: &str, cfg: ModelConfig) -> String {
    import(&fixtures().join(file), cfg, None, Device::Cpu).unwrap_err().to_string()
}

#[test]
fn checkpoints_of_another_architecture_are_refused_by_name() {
    // Another layout: the missing key and both block counts are named.
    let all_shared =
        config(BackboneKind::Small, "segm:10,normal,depth", "[[{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}]]", 4);
    let err = import_error("deeplab.model", all_shared);
    assert!(err.contains("holds `backbone.mtl_blocks.5.") && err.contains("6 backbone block copies") && err.contains("has 5"), "{err}");
    // Sets in another order are another numbering: block 4 is {1, 2} in the file but {0} here.
    let swapped =
        config(BackboneKind::Small, "segm:10,normal,depth", "[[{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{0}, {1, 2}]]", 4);
    let (m, _) = import(&fixtures().join("deeplab.model"), swapped, None, Device::Cpu).unwrap();
    let io: HashMap<String, Tensor> = read_state_dict(&fixtures().join("deeplab_io.pt")).unwrap().into_iter().collect();
    let seg = m.forward_t(&io["x"], false).unwrap();
    assert!(max_abs(&(seg.get(mtrobust::task::TaskKind::SegmentSemantic).unwrap() - &io["out.segment_semantic"])) > 1e-3);
    // Other tasks: the missing head is named.
    let err = import_error("deeplab.model", config(BackboneKind::Small, "segm:10,normal,edge", DEEPLAB_LAYOUT, 4));
    assert!(err.contains("lacks `heads.edge_texture.fc1.conv1.weight`"), "{err}");
    // Other class count or head width: the mis-shaped key and both shapes.
    let err = import_error("deeplab.model", config(BackboneKind::Small, "segm:12,normal,depth", DEEPLAB_LAYOUT, 4));
    assert!(err.contains("`heads.segment_semantic.fc1.conv3.weight` has shape [10, 4, 1, 1], the model expects [12, 4, 1, 1]"), "{err}");
    let err =
        import_error("seq.model", config(BackboneKind::Small, "normal,depth", "[[{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}]]", 8));
    assert!(err.contains("check the head width"), "{err}");
    // Another backbone: MobileNetV2 has no Deeplab names.
    let mbv2 = config(BackboneKind::Mobilenetv2, "segm:10,normal,depth", DEEPLAB_LAYOUT, 4);
    assert!(import_error("deeplab.model", mbv2).contains("MTSeqModel"));
    // The wrong scheme on request.
    let err = import(&fixtures().join("seq.model"), seq_config(), Some(Scheme::Deeplab), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("has MTSeqModel keys but the scheme deeplab"), "{err}");
}

#[test]
fn files_that_are_not_state_dicts_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    // The input/output file is a dict of tensors, but without TreeMTL keys.
    let err = import_error("seq_io.pt", seq_config());
    assert!(err.contains("no TreeMTL backbone keys") && err.contains("x, grad"), "{err}");
    // A torch.save zip whose pickle is a list, written by hand.
    let list = tmp.path().join("list.pt");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&list).unwrap());
        zip.start_file("archive/data.pkl", zip::write::FileOptions::default()).unwrap();
        zip.write_all(&[0x80, 2, b']', b'(', b'K', 1, b'K', 2, b'e', b'.']).unwrap();
        zip.finish().unwrap();
    }
    let err = import(&list, seq_config(), None, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("holds a list of 2, not a state dict"), "{err}");
    let text = tmp.path().join("notes.pt");
    std::fs::write(&text, "hello").unwrap();
    let err = import(&text, seq_config(), None, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("neither a torch.save archive"), "{err}");
}

#[test]
fn import_attack_study_and_export_from_the_command_line() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ckpt = dir.join("deeplab.model");
    let ckpt = ckpt.to_str().unwrap();
    let import_args =
        ["import", "treemtl", "--checkpoint", ckpt, "--backbone", "small", "--tasks", "segm:10,normal,depth", "--layout", DEEPLAB_LAYOUT];
    let out = ok(d, &[&import_args[..], &["--head-width", "4", "--out", "m.safetensors"]].concat());
    assert!(out.contains("wrote m.safetensors"), "{out}");
    ok(d, &["data", "synth", "--out", "data", "--n", "6", "--size", "32", "--seed", "1"]);
    let report =
        ok(d, &["attack", "--model", "m.safetensors", "--data", "data", "--eps", "4", "--n-iter", "2", "--format", "json", "--out", "att"]);
    assert!(report.contains("\"attacked\""), "{report}");
    // Both schemes' imports in a study.
    let seq = fixtures().join("seq.model");
    let seq_args = ["import", "treemtl", "--checkpoint", seq.to_str().unwrap(), "--backbone", "small", "--tasks", "normal,depth"];
    ok(d, &[&seq_args[..], &["--head-width", "4", "--out", "s.safetensors"]].concat());
    let study = "[data]\npath = \"data\"\nsplit = \"test\"\nlimit = 2\nbatch_size = 2\n\n\
                 [[model]]\npath = \"m.safetensors\"\nname = \"deeplab\"\n\n[[model]]\npath = \"s.safetensors\"\nname = \"seq\"\n\n\
                 [[attack]]\nrule = \"pgd\"\ndirections = [\"gbmta\"]\neps = [4]\nn_iter = 2\n";
    std::fs::write(d.join("study.toml"), study).unwrap();
    let out = ok(d, &["study", "run", "study.toml", "--db", "results.sqlite"]);
    assert!(out.contains("2 cells: 2 computed now"), "{out}");
    ok(d, &["export", "treemtl", "--model", "m.safetensors", "--out", "m.pt"]);
    let back =
        ["import", "treemtl", "--checkpoint", "m.pt", "--backbone", "small", "--tasks", "segm:10,normal,depth", "--layout", DEEPLAB_LAYOUT];
    ok(d, &[&back[..], &["--head-width", "4", "--out", "back.safetensors"]].concat());
    let (a, _) = Model::load(&d.join("m.safetensors"), Device::Cpu).unwrap();
    let (b, _) = Model::load(&d.join("back.safetensors"), Device::Cpu).unwrap();
    for ((na, ta), (_, tb)) in variables(&a).iter().zip(variables(&b).iter()) {
        assert!(ta.equal(tb), "{na}");
    }
    // Bad input: exit 2, the problem named, nothing written.
    fails(d, &[&import_args[..], &["--out", "bad.safetensors"]].concat(), 2, &["fc1.conv1.weight", "check the head width"]);
    fails(d, &[&import_args[..], &["--head-width", "4", "--index", "3", "--out", "bad.safetensors"]].concat(), 2, &["--index"]);
    let io = dir.join("seq_io.pt");
    fails(d, &["import", "treemtl", "--checkpoint", io.to_str().unwrap(), "--out", "bad.safetensors"], 2, &["no TreeMTL backbone keys"]);
    fails(d, &["export", "treemtl", "--model", "m.safetensors", "--out", "bad.safetensors"], 2, &[".pt"]);
    assert!(!d.join("bad.safetensors").exists() && !d.join("bad.json").exists());
}

/// The full-size backbones, when Python is at hand: generated into a temporary directory (too large
/// to commit) with MTSeqModel keys, all-shared layout, two tasks, heads of width 4. ResNet34 adds
/// what the small backbone lacks: BasicBlocks without a shortcut and the 7×7 ceil-mode stem.
#[test]
fn full_size_backbones_match_pytorch_when_python_is_available() {
    if python().is_none() {
        eprintln!("skipped: no .venv/bin/python to build the full-size fixtures");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), &["mobilenetv2", "resnet34"]);
    for (backbone, name) in [(BackboneKind::Mobilenetv2, "mobilenetv2"), (BackboneKind::Resnet34, "resnet34")] {
        let cfg = config(backbone, "normal,depth", "[[{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}]]", 4);
        let (model, scheme) = import(&tmp.path().join(format!("{name}.model")), cfg, None, Device::Cpu).unwrap();
        assert_eq!(scheme, Scheme::Seq);
        assert_matches_pytorch(&model, &tmp.path().join(format!("{name}_io.pt")));
    }
}

/// A source checkpoint with NaN or infinite weights would become an mtrobust checkpoint that every
/// later command refuses to load: the import refuses it, naming the tensor, and writes nothing.
#[test]
fn checkpoints_with_non_finite_weights_are_refused_at_import() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let tensors = read_state_dict(&dir.join("deeplab.model")).unwrap();
    let victim = "backbone.mtl_blocks.2.residual_block.block.conv1.weight";
    assert!(tensors.iter().any(|(k, _)| k == victim));
    for (bad, name) in [(f64::NAN, "nan"), (f64::INFINITY, "inf"), (f64::NEG_INFINITY, "neginf")] {
        let poisoned: Vec<(String, Tensor)> = tensors
            .iter()
            .map(|(k, t)| {
                let t = t.copy();
                if k == victim {
                    let _ = t.view(-1).get(3).fill_(bad);
                }
                (k.clone(), t)
            })
            .collect();
        let pt = d.join(format!("{name}.pt"));
        write_state_dict(&pt, &poisoned).unwrap();
        let st = d.join(format!("{name}.safetensors"));
        Tensor::write_safetensors(&poisoned, &st).unwrap();
        for path in [&pt, &st] {
            let err = import(path, deeplab_config(), None, Device::Cpu).unwrap_err().to_string();
            assert!(err.contains(&format!("`{victim}` holds 1 NaN or infinite value(s)")), "{err}");
        }
    }
    let pt = d.join("nan.pt");
    let args = [
        "import",
        "treemtl",
        "--checkpoint",
        pt.to_str().unwrap(),
        "--backbone",
        "small",
        "--tasks",
        "segm:10,normal,depth",
        "--layout",
        DEEPLAB_LAYOUT,
        "--head-width",
        "4",
        "--out",
        "m.safetensors",
    ];
    fails(d, &args, 2, &[victim, "NaN or infinite"]);
    assert!(!d.join("m.safetensors").exists() && !d.join("m.json").exists());
}
