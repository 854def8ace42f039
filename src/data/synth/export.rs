//! Writes rendered scenes as a Tiny-Taskonomy dataset (the reference's on-disk format,
//! docs/REFERENCE.md §1.3), so the same reader and the same code path serve the built-in data and the real thing.
//!
//! Layout: `OUT/Taskonomy/taskonomy.json` (splits `train`, `test`, `test_small`),
//! `OUT/Taskonomy/semseg_prior_factor.npy` (median-frequency class weights of the train split,
//! like Taskonomy's prior), images under `OUT/Taskonomy/{train,test}/<task>/<stem>.png`, plus
//! `OUT/synth.json` (what was generated, and the reader sizes that keep the native resolution)
//! and `OUT/preview.png` (a contact sheet of the first test scene).
//! Scene `i` is rendered from seed `derive_seed(seed, [i])`; the first `n − n_test` scenes are
//! the train split.
use super::{CLASS_NAMES, RenderedScene, contact_sheet, render_scene};
use crate::data::raw::Dense;
use crate::data::taskonomy::{self, TaskonomyRecord};
use crate::error::{Error, Result};
use crate::observe::{Event, Observer};
use rayon::prelude::*;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SynthOptions {
    /// Number of scenes (train + test).
    pub n: usize,
    /// Image side in pixels.
    pub size: usize,
    pub seed: u64,
    /// Fraction of scenes in the test split.
    pub test_fraction: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions { n: 2000, size: 128, seed: 7, test_fraction: 0.2 }
    }
}

/// `synth.json`: what a generated directory holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthManifest {
    pub generator: String,
    pub options: SynthOptions,
    pub train: usize,
    pub test: usize,
    pub classes: Vec<String>,
    /// Reader sizes that keep the native resolution (Taskonomy's defaults are 256 → 224).
    pub resize: usize,
    pub crop: usize,
    /// Depth is read in metres (the reference's log encoding would make δ metrics meaningless).
    pub depth: crate::data::taskonomy::DepthUnits,
}

/// The manifest file name inside a generated directory.
pub const MANIFEST: &str = "synth.json";

/// Reads `DIR/synth.json` if present.
///
/// # Errors
/// A manifest that exists but cannot be parsed.
pub fn read_manifest(dir: &Path) -> Result<Option<SynthManifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::context(format!("{}: malformed manifest", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn record(s: &RenderedScene) -> TaskonomyRecord {
    let (h, w) = (s.height, s.width);
    let mut rgb = Dense::filled(3, h, w, 0u8);
    let mut normal = Dense::filled(3, h, w, 0u8);
    for (i, (px, n)) in s.rgb.iter().zip(&s.normal).enumerate() {
        let n = taskonomy::encode_normal(*n);
        for c in 0..3 {
            rgb.data[c * h * w + i] = px[c];
            normal.data[c * h * w + i] = n[c];
        }
    }
    let plane = |data: Vec<u16>| Dense { channels: 1, height: h, width: w, data };
    TaskonomyRecord {
        rgb,
        seg: Dense { channels: 1, height: h, width: w, data: s.class.iter().map(|&c| taskonomy::encode_seg(Some(c))).collect() },
        normal,
        depth: plane(s.depth.iter().map(|&d| taskonomy::encode_depth(d)).collect()),
        keypoints: plane(s.keypoints.iter().map(|&k| taskonomy::encode_keypoint(k)).collect()),
        edge: plane(s.edges.iter().map(|&e| taskonomy::encode_edge(e)).collect()),
    }
}

/// Median-frequency balancing: `w_c = median(f) / f_c`, clamped to [0.1, 10] (1 for absent classes).
fn prior_from_counts(counts: &[u64]) -> Vec<f32> {
    let total: u64 = counts.iter().sum();
    let freqs: Vec<f64> = counts.iter().map(|&c| c as f64 / total.max(1) as f64).collect();
    let mut present: Vec<f64> = freqs.iter().copied().filter(|&f| f > 0.0).collect();
    present.sort_by(f64::total_cmp);
    let median = present.get(present.len() / 2).copied().unwrap_or(1.0);
    freqs.iter().map(|&f| if f > 0.0 { (median / f).clamp(0.1, 10.0) as f32 } else { 1.0 }).collect()
}

/// The dataset is written into a new or empty directory only: its files (`preview.png`,
/// `Taskonomy/…`) have common names and would silently replace a user's own.
fn check_empty(out: &Path) -> Result<()> {
    crate::files::refuse_foreign_entries(out, |_| false)
}

/// One written scene: its files, whether it is in the train split, its class pixel counts (train
/// only), and the scene itself when it is the one shown in the preview.
type Written = ([String; 6], bool, Vec<u64>, Option<RenderedScene>);

/// Renders and writes the dataset; reports progress per chunk of scenes.
///
/// # Errors
/// Bad options, an output directory that already holds a dataset, or I/O failures.
pub fn write_dataset(out: &Path, opts: &SynthOptions, observer: &mut dyn Observer) -> Result<SynthManifest> {
    if opts.n < 2 {
        return Err(Error::parameter("n", format!("{} scene(s): at least 2 are needed, one per split", opts.n)));
    }
    if opts.size < 16 {
        return Err(Error::parameter(
            "size",
            format!("{} px: scenes need at least 16 px (the small backbone's output stride is 8)", opts.size),
        ));
    }
    if !(opts.test_fraction > 0.0 && opts.test_fraction < 1.0) {
        return Err(Error::parameter("test_fraction", format!("{} must be in (0, 1): both splits need scenes", opts.test_fraction)));
    }
    let test_scenes = (opts.n as f64 * opts.test_fraction).round() as usize;
    if test_scenes == 0 || test_scenes == opts.n {
        return Err(Error::parameter(
            "test_fraction",
            format!(
                "{} of {} scenes leaves {} split empty; raise the scene count or choose a fraction nearer 0.5",
                opts.test_fraction,
                opts.n,
                if test_scenes == 0 { "the test" } else { "the train" }
            ),
        ));
    }
    if out.join(MANIFEST).exists() || out.join(taskonomy::DIR).join(taskonomy::INDEX_FILE).exists() {
        return Err(Error::parameter(
            "out",
            format!("{} already holds a dataset; choose another directory or delete it first", out.display()),
        ));
    }
    check_empty(out)?;
    let n_test = ((opts.n as f64 * opts.test_fraction).round() as usize).clamp(1, opts.n - 1);
    let n_train = opts.n - n_test;
    let root = out.join(taskonomy::DIR);
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    let mut train_files = Vec::with_capacity(n_train);
    let mut test_files = Vec::with_capacity(n_test);
    let mut counts = vec![0u64; CLASS_NAMES.len()];
    observer.event(Event::Start { what: "render".into(), total: opts.n as u64 });
    const CHUNK: usize = 64;
    for start in (0..opts.n).step_by(CHUNK) {
        let end = (start + CHUNK).min(opts.n);
        let written: Vec<Result<Written>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let scene = render_scene(crate::rng::derive_seed(opts.seed, &[i as u64]), opts.size);
                let is_train = i < n_train;
                let stem = format!("scene{i:06}");
                let dir = if is_train { &train_dir } else { &test_dir };
                let files = taskonomy::write_record(dir, &stem, &record(&scene))?;
                let mut c = vec![0u64; CLASS_NAMES.len()];
                if is_train {
                    for &k in &scene.class {
                        c[k as usize] += 1;
                    }
                }
                let keep = (i == n_train).then_some(scene);
                Ok((files, is_train, c, keep))
            })
            .collect();
        for item in written {
            let (files, is_train, c, keep) = item?;
            if is_train {
                train_files.push(files);
            } else {
                test_files.push(files);
            }
            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
            if let Some(scene) = keep {
                let path = out.join("preview.png");
                crate::files::write_png(&path, &contact_sheet(&scene))?;
            }
        }
        observer.event(Event::Progress { done: end as u64, message: format!("{end}/{} scenes", opts.n) });
    }
    observer.event(Event::Finish);
    let small = test_files.iter().take(100).cloned().collect();
    taskonomy::write_index(out, &[("train", train_files), ("test", test_files), ("test_small", small)], &prior_from_counts(&counts))?;
    let manifest = SynthManifest {
        generator: format!("mtrobust {} procedural scenes", env!("CARGO_PKG_VERSION")),
        options: opts.clone(),
        train: n_train,
        test: n_test,
        classes: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        resize: opts.size,
        crop: opts.size,
        depth: crate::data::taskonomy::DepthUnits::Metres,
    };
    let path = out.join(MANIFEST);
    crate::files::write_bytes_atomic(&path, serde_json::to_string_pretty(&manifest).expect("serialisable"))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_frequency_prior() {
        // frequencies 0.5, 0.25, 0.25, 0 → median of present (sorted 0.25, 0.25, 0.5) = 0.25
        assert_eq!(prior_from_counts(&[2, 1, 1, 0]), vec![0.5, 1.0, 1.0, 1.0]);
    }
}
