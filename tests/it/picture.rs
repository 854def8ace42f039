//! `mtrobust picture`: the Figure-6 grid for one sample of a tiny synthetic dataset.

use crate::common::{fails, ok};

#[test]
fn picture_grid_has_a_row_per_attack_and_a_column_per_task() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["data", "synth", "--out", "data", "--n", "12", "--size", "32", "--seed", "3"]);
    ok(d, &["model", "init", "--tasks", "segm:10,normal,depth,keyp,edge", "--index", "0", "--seed", "1", "--out", "m.safetensors"]);
    let args = [
        "--threads",
        "1",
        "picture",
        "--model",
        "m.safetensors",
        "--data",
        "data",
        "--sample",
        "1",
        "--eps",
        "0,4,16",
        "--direction",
        "single:segm",
        "--direction",
        "gbmta",
        "--n-iter",
        "2",
        "--out",
        "pics/fig6.png",
    ];
    let out = ok(d, &args);
    assert!(out.contains("ground truth, clean and 4 attacked rows"), "{out}");
    let img = image::open(d.join("pics/fig6.png")).unwrap().to_rgb8();
    // 32-px tiles enlarged ×4 to 128 px, 6-px gaps, a 230-px label column and a 28-px header:
    // 7 columns (input, δ, 5 tasks) and 6 rows (truth, clean, 2 directions × 2 budgets).
    assert_eq!((img.width(), img.height()), (230 + 7 * 134, 28 + 6 * 134));
    // The clean input tile (row 1) and the ε = 16 one (row 4) differ; the δ tile of row 1 is blank.
    let tile = |row: u32, col: u32| image::imageops::crop_imm(&img, 230 + col * 134, 28 + row * 134, 128, 128).to_image();
    assert_ne!(tile(1, 0), tile(4, 0), "the attack changed the input");
    assert!(tile(1, 1).pixels().all(|p| p.0 == [255, 255, 255]), "no perturbation on the clean row");
    assert!(tile(4, 1).pixels().any(|p| p.0 != [255, 255, 255]));
    fails(d, &["picture", "--model", "m.safetensors", "--data", "data", "--sample", "99"], 2, &["--sample 99", "has 2 samples"]);
}
