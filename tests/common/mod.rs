//! Helpers for the end-to-end tests: run the built `mtrobust` binary in a temp dir.
#![allow(dead_code)]
use std::path::Path;
use std::process::{Command, Output};

/// Runs `mtrobust ARGS` in `dir` with progress off; returns the output.
pub fn mtrobust(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtrobust"))
        .args(["--quiet", "--device", "cpu"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the mtrobust binary runs")
}

/// Like [`mtrobust`], asserting exit code 0; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mtrobust(dir, args);
    assert!(
        out.status.success(),
        "mtrobust {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Asserts that `mtrobust ARGS` exits with `code` and that stderr mentions every `needle`.
pub fn fails(dir: &Path, args: &[&str], code: i32, needles: &[&str]) {
    let out = mtrobust(dir, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "mtrobust {args:?}: stderr:\n{err}");
    assert!(!err.contains("panicked"), "mtrobust {args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "mtrobust {args:?}: stderr lacks `{n}`:\n{err}");
    }
}

/// The largest absolute value of a tensor.
pub fn max_abs(t: &tch::Tensor) -> f64 {
    f64::try_from(t.abs().max()).unwrap()
}

/// `max |a − b| ≤ 1e-5 · max |b|` (equivalence with PyTorch references).
pub fn assert_close(a: &tch::Tensor, b: &tch::Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}");
    let (diff, scale) = (max_abs(&(a - b)), max_abs(b));
    assert!(scale > 0.0, "{what}: the reference is all zeros, which proves nothing");
    assert!(diff <= 1e-5 * scale, "{what}: max difference {diff:e} against a scale of {scale:e}");
}

/// Outputs, a weighted loss and the input gradient of `model` equal the PyTorch references saved
/// in `io` (keys `x`, `out.<task>`, `w.<task>`, `loss`, `grad`).
pub fn assert_matches_pytorch(model: &mtrobust::model::Model, io: &Path) {
    use tch::{Device, Kind, Tensor};
    let io: std::collections::HashMap<String, Tensor> = mtrobust::model::torchfile::read_state_dict(io).unwrap().into_iter().collect();
    let x = io["x"].detach().set_requires_grad(true);
    model.check_on(&x).unwrap();
    let out = model.forward_t(&x, false).unwrap();
    assert_eq!(out.len(), model.tasks().len());
    let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
    for spec in model.tasks() {
        let name = spec.kind.name();
        let y = out.get(spec.kind).unwrap();
        assert_close(y, &io[&format!("out.{name}")], &format!("output {name}"));
        loss += (y * &io[&format!("w.{name}")]).sum(Kind::Float);
    }
    assert_close(&loss, &io["loss"], "loss");
    let grad = Tensor::run_backward(&[loss], &[&x], false, false).pop().unwrap();
    assert_close(&grad, &io["grad"], "input gradient");
}
