//! Tiny-Taskonomy reader and writer in the layout the reference loader `Taskonomy` reads
//! (docs/REFERENCE.md §1.3; masks per §1.4; unlabelled pixels §7 item 23; the 512→256 nearest step §7 item 25).
//!
//! On disk: `<root>/Taskonomy/taskonomy.json` maps split names to
//! `[rgb, seg, normal, depth, keypoints2d, edge]` paths, relative to `<root>/Taskonomy/train`
//! for split `train` and to `<root>/Taskonomy/test` for every other split (`test`,
//! `test_small`, `val`); `<root>/Taskonomy/semseg_prior_factor.npy` holds one float weight per
//! segmentation class. Files: 8-bit RGB image, 8-bit grey seg (raw ids: 0 unlabelled, `c + 1`
//! for class `c`), 8-bit RGB normals (R,G,B = x,y,z), 16-bit grey depth (1/512 m units,
//! ≥ 64500 invalid), keypoints and edges.
//!
//! Decoding (per pixel, at file resolution; nearest resizes commute with it):
//! * seg: `label = max(raw, 1) − 1`; valid iff `label < C` and, with [`Unlabelled::Ignore`],
//!   `raw ≠ 0`; raw 255 is ignored; any other raw id with `label ≥ C` is an error (the prior and
//!   the labels disagree);
//! * normal: `2·(v/255) − 1` per channel, valid where depth is valid;
//! * depth: `ln(1 + d) / ln 65536`, valid iff `d < 64500`;
//! * keypoints: `2·min(v/65536, 0.005)/0.005 − 1`; edges: the same with 0.08; always valid.
//!
//! Image: R,G,B → B,G,R as `f32`, nearest to `resize`² (256), then test mode: bilinear (float)
//! to `crop`² (224) with labels nearest; train mode: random scale, flip (normal x negated),
//! centred zero-pad and random crop to `crop`² ([`Augmentation`]). The B,G,R mean is then
//! subtracted. Invalid and padded pixels hold 0.
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;

use crate::data::codec;
use crate::data::raw::{Dense, RawSample, RawTarget};
use crate::data::reader::{Mode, Reader};
use crate::data::transform::{self, Augmentation};
use crate::error::{Error, Result};
use crate::task::TaskKind;

/// Folder under the data root that holds Taskonomy.
pub const DIR: &str = "Taskonomy";
/// The split index file inside [`DIR`].
pub const INDEX_FILE: &str = "taskonomy.json";
/// The segmentation class-weight file inside [`DIR`].
pub const PRIOR_FILE: &str = "semseg_prior_factor.npy";
/// Raw depth [`encode_depth`] writes for a missing or out-of-range depth.
pub const DEPTH_INVALID: u16 = 65535;
/// Raw depths at or above this are invalid (the reference's `d < 64500` mask).
pub const DEPTH_LIMIT: u16 = 64500;
/// Raw depth units per metre.
pub const DEPTH_UNITS_PER_METRE: f64 = 512.0;
/// Keypoint heat values `v/65536` are clipped to `[0, KEYPOINT_TOP]` before rescaling.
pub const KEYPOINT_TOP: f32 = 0.005;
/// Edge values `v/65536` are clipped to `[0, EDGE_TOP]` before rescaling.
pub const EDGE_TOP: f32 = 0.08;
/// Raw seg id ignored in every mode (the reference losses' `ignore_index`).
pub const SEG_IGNORE: u8 = 255;
/// Default nearest-resize size (docs/REFERENCE.md §1.3).
pub const DEFAULT_RESIZE: usize = 256;
/// Default crop size (docs/REFERENCE.md §1.3).
pub const DEFAULT_CROP: usize = 224;
/// Sub-folders [`write_record`] puts the six files in, in record order.
pub const FOLDERS: [&str; 6] = ["rgb", "segment_semantic", "normal", "depth_zbuffer", "keypoints2d", "edge_texture"];

/// What raw seg id 0 ("unlabelled") becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unlabelled {
    /// An invalid pixel, excluded from loss and metric.
    #[default]
    Ignore,
    /// Class 0, as the reference does (`max(raw, 1) − 1`, docs/REFERENCE.md §7 item 23).
    Class0,
}

/// What depth values the reader yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepthUnits {
    /// The reference's `log(1 + d) / log(65536)` in [0, 1].
    #[default]
    Log,
    /// Metres (`d / 512`): what the synthetic set uses, so that abs/rel error and δ < 1.25^k are
    /// meaningful (on log values every ratio is below 1.25).
    Metres,
}

/// How a Taskonomy split is read and preprocessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskonomyOptions {
    /// Test (deterministic resize) or train (augmentation).
    pub mode: Mode,
    /// Side of the first, nearest resize (256).
    pub resize: usize,
    /// Side of the output (224).
    pub crop: usize,
    /// Tasks to read, in the order the targets are returned (default: all five, docs/REFERENCE.md §1.1).
    pub tasks: Vec<TaskKind>,
    /// What raw seg id 0 becomes (default: ignored).
    pub unlabelled: Unlabelled,
    /// Depth as the reference's log encoding (default) or in metres.
    pub depth: DepthUnits,
}

impl Default for TaskonomyOptions {
    fn default() -> Self {
        TaskonomyOptions {
            mode: Mode::Test,
            resize: DEFAULT_RESIZE,
            crop: DEFAULT_CROP,
            tasks: TaskKind::ALL.to_vec(),
            unlabelled: Unlabelled::Ignore,
            depth: DepthUnits::Log,
        }
    }
}

/// The folder (`train` or `test`) a split's paths are relative to.
pub fn split_folder(split: &str) -> &'static str {
    // The reference picks the train folder for mode `train` only.
    if split == "train" { "train" } else { "test" }
}

/// Decodes raw depth to the reader's value `ln(1 + d) / ln 65536` ∈ [0, 1].
pub fn decode_depth(raw: u16) -> f32 {
    ((1.0 + raw as f64).ln() / 65536f64.ln()) as f32
}

/// Inverts [`decode_depth`] back to metres (`(65536^v − 1) / 512`).
pub fn depth_value_to_metres(value: f32) -> f32 {
    (((value as f64) * 65536f64.ln()).exp_m1() / DEPTH_UNITS_PER_METRE) as f32
}

/// Encodes metres as raw depth (rounded to 1/512 m); negative, non-finite or ≥ 65535/512 m
/// (≈ 128 m) gives [`DEPTH_INVALID`]. Values from 64500/512 ≈ 125.98 m up read back as invalid.
pub fn encode_depth(metres: f32) -> u16 {
    let units = (metres as f64 * DEPTH_UNITS_PER_METRE).round();
    if metres.is_finite() && metres >= 0.0 && units < DEPTH_INVALID as f64 { units as u16 } else { DEPTH_INVALID }
}

/// Decodes a raw 8-bit normal (R,G,B) to x,y,z in [−1, 1] as the reference does, in `f32`.
pub fn decode_normal(raw: [u8; 3]) -> [f32; 3] {
    raw.map(|v| (v as f32 / 255.0) * 2.0 - 1.0)
}

/// Encodes x,y,z in [−1, 1] (clamped) as 8-bit R,G,B: `round((n + 1)/2 · 255)`.
pub fn encode_normal(n: [f32; 3]) -> [u8; 3] {
    n.map(|v| ((v.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0).round() as u8)
}

/// `2·min(raw/65536, top)/top − 1`, the reference's clip-and-rescale, in `f32`.
fn rescale16(raw: u16, top: f32) -> f32 {
    let v = raw as f32 / 65536.0;
    (v.clamp(0.0, top) / top) * 2.0 - 1.0
}

/// Decodes a raw keypoint value to the reader's value in [−1, 1].
pub fn decode_keypoint(raw: u16) -> f32 {
    rescale16(raw, KEYPOINT_TOP)
}

/// Decodes a raw edge value to the reader's value in [−1, 1].
pub fn decode_edge(raw: u16) -> f32 {
    rescale16(raw, EDGE_TOP)
}

/// Encodes a keypoint strength `k` ∈ [0, 1] (clamped) as `round(k · 0.005 · 65536)`; the reader
/// yields `2k − 1`.
pub fn encode_keypoint(k: f32) -> u16 {
    (k.clamp(0.0, 1.0) as f64 * KEYPOINT_TOP as f64 * 65536.0).round() as u16
}

/// Encodes an edge strength `e` ∈ [0, 1] (clamped) as `round(e · 0.08 · 65536)`; the reader
/// yields `2e − 1`.
pub fn encode_edge(e: f32) -> u16 {
    (e.clamp(0.0, 1.0) as f64 * EDGE_TOP as f64 * 65536.0).round() as u16
}

/// Encodes a seg class as its raw id (`class + 1`), or 0 for an unlabelled pixel.
pub fn encode_seg(class: Option<u8>) -> u8 {
    class.map_or(0, |c| c.saturating_add(1))
}

/// Targets in the requested task order.
type Targets = Vec<(TaskKind, RawTarget)>;

/// One split of Tiny-Taskonomy on disk.
#[derive(Debug, Clone)]
pub struct TaskonomyReader {
    dir: PathBuf,
    split_dir: PathBuf,
    split: String,
    records: Vec<[String; 6]>,
    prior: Vec<f32>,
    opts: TaskonomyOptions,
}

impl TaskonomyReader {
    /// Opens split `split` of the dataset at `root` (the data root holding `Taskonomy/`, or the
    /// `Taskonomy` folder itself) and loads the class prior.
    ///
    /// # Errors
    /// [`Error::Data`] if the split index or the prior is missing or malformed, or the index
    /// lacks `split`; [`Error::Config`] for a zero resize or crop, or an empty or repeated task
    /// list.
    pub fn open(root: &Path, split: &str, opts: TaskonomyOptions) -> Result<Self> {
        if opts.resize == 0 {
            return Err(Error::parameter("resize", "0 px: the first resize must be positive (default 256)"));
        }
        if opts.crop == 0 {
            return Err(Error::parameter("crop", "0 px: the crop must be positive (default 224)"));
        }
        if opts.tasks.is_empty() {
            return Err(Error::config(
                "tasks",
                "is empty; list at least one of segment_semantic, normal, depth_zbuffer, keypoints2d, edge_texture",
            ));
        }
        for (i, t) in opts.tasks.iter().enumerate() {
            if opts.tasks[..i].contains(t) {
                return Err(Error::config("tasks", format!("lists `{t}` twice")));
            }
        }
        let dir = codec::locate_dataset(root, DIR, INDEX_FILE)?;
        let records = codec::read_split::<6>(&dir.join(INDEX_FILE), split)?;
        let prior = read_prior(&dir.join(PRIOR_FILE))?;
        let split_dir = dir.join(split_folder(split));
        Ok(TaskonomyReader { dir, split_dir, split: split.to_owned(), records, prior, opts })
    }

    /// The `Taskonomy` folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder the split's paths are relative to (`Taskonomy/train` or `Taskonomy/test`).
    pub fn split_dir(&self) -> &Path {
        &self.split_dir
    }

    /// The split name this reader was opened with.
    pub fn split(&self) -> &str {
        &self.split
    }

    /// The options this reader was opened with.
    pub fn options(&self) -> &TaskonomyOptions {
        &self.opts
    }

    /// Reads the image and the files the requested tasks need, decoded at file resolution.
    fn load(&self, record: &[String; 6]) -> Result<(Dense<f32>, Targets)> {
        let paths = record.each_ref().map(|p| self.split_dir.join(p));
        let rgb = codec::read_rgb8(&paths[0], false)?;
        let bgr = transform::to_f32(&transform::reverse_channels(&rgb));
        let (h, w) = (bgr.height, bgr.width);
        let same_size = |path: &Path, fh: usize, fw: usize| codec::check_same_size(path, (fh, fw), &paths[0], (h, w));
        let read16 = |i: usize| -> Result<Dense<u16>> {
            let d = codec::read_grey16(&paths[i])?;
            same_size(&paths[i], d.height, d.width)?;
            Ok(d)
        };
        let tasks = &self.opts.tasks;
        // Normals use the depth mask, so depth is read for either task.
        let depth_raw = if tasks.contains(&TaskKind::DepthZbuffer) || tasks.contains(&TaskKind::Normal) { Some(read16(3)?) } else { None };
        let depth_ok = |p: usize| depth_raw.as_ref().is_some_and(|d| d.data[p] < DEPTH_LIMIT);
        let plane = h * w;
        let blank = |channels| RawTarget { value: Dense::filled(channels, h, w, 0.0), valid: Dense::filled(1, h, w, 0) };

        let mut out = Vec::with_capacity(tasks.len());
        for &task in tasks {
            let mut t = blank(if task == TaskKind::Normal { 3 } else { 1 });
            match task {
                TaskKind::SegmentSemantic => {
                    let raw = codec::read_grey8(&paths[1])?;
                    same_size(&paths[1], raw.height, raw.width)?;
                    for (p, &v) in raw.data.iter().enumerate() {
                        if let Some(label) = self.seg_label(v, &paths[1], p, w)? {
                            t.value.data[p] = label as f32;
                            t.valid.data[p] = 1;
                        }
                    }
                }
                TaskKind::Normal => {
                    let raw = codec::read_rgb8(&paths[2], false)?;
                    same_size(&paths[2], raw.height, raw.width)?;
                    for p in (0..plane).filter(|&p| depth_ok(p)) {
                        let n = decode_normal([raw.data[p], raw.data[plane + p], raw.data[2 * plane + p]]);
                        for (c, v) in n.into_iter().enumerate() {
                            t.value.data[c * plane + p] = v;
                        }
                        t.valid.data[p] = 1;
                    }
                }
                TaskKind::DepthZbuffer => {
                    if let Some(raw) = &depth_raw {
                        for p in (0..plane).filter(|&p| depth_ok(p)) {
                            t.value.data[p] = match self.opts.depth {
                                DepthUnits::Log => decode_depth(raw.data[p]),
                                DepthUnits::Metres => (raw.data[p] as f64 / DEPTH_UNITS_PER_METRE) as f32,
                            };
                            t.valid.data[p] = 1;
                        }
                    }
                }
                TaskKind::Keypoints2d | TaskKind::EdgeTexture => {
                    let (i, decode): (usize, fn(u16) -> f32) =
                        if task == TaskKind::Keypoints2d { (4, decode_keypoint) } else { (5, decode_edge) };
                    let raw = read16(i)?;
                    t.value.data = raw.data.iter().map(|&v| decode(v)).collect();
                    t.valid.data.fill(1);
                }
            }
            out.push((task, t));
        }
        Ok((bgr, out))
    }

    /// The class of raw seg id `raw` (at flat pixel `p` of a `w`-wide map), `None` if ignored.
    fn seg_label(&self, raw: u8, path: &Path, p: usize, w: usize) -> Result<Option<usize>> {
        let classes = self.prior.len();
        if raw == SEG_IGNORE || (raw == 0 && self.opts.unlabelled == Unlabelled::Ignore) {
            return Ok(None);
        }
        let label = (raw.max(1) - 1) as usize;
        if label >= classes {
            return Err(Error::data(
                path,
                format!(
                    "segmentation id {raw} (class {label}) at row {}, column {} is outside the {classes} \
                     classes of {}; the prior and the labels disagree — regenerate the prior with one \
                     weight per class",
                    p / w,
                    p % w,
                    self.dir.join(PRIOR_FILE).display()
                ),
            ));
        }
        Ok(Some(label))
    }
}

/// Reads the class prior: a non-empty 1-D float array of finite, non-negative weights.
fn read_prior(path: &Path) -> Result<Vec<f32>> {
    let npy = codec::read_npy_f32(path)?;
    if npy.shape.len() != 1 || npy.shape[0] == 0 {
        return Err(Error::data(path, format!("expected a non-empty 1-D array of per-class weights, got shape {:?}", npy.shape)));
    }
    if let Some((i, v)) = npy.data.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < 0.0) {
        return Err(Error::data(path, format!("class weight {i} is {v}; weights must be finite and non-negative")));
    }
    Ok(npy.data)
}

impl Reader for TaskonomyReader {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn tasks(&self) -> &[TaskKind] {
        &self.opts.tasks
    }

    fn seg_classes(&self) -> usize {
        self.prior.len()
    }

    fn class_weights(&self) -> Option<&[f32]> {
        Some(&self.prior)
    }

    fn name(&self, index: usize) -> &str {
        &self.records[index][0]
    }

    fn read(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<RawSample> {
        let record = self.records.get(index).ok_or_else(|| {
            Error::config("index", format!("{index} is out of range; split `{}` has {} samples", self.split, self.records.len()))
        })?;
        let (bgr, targets) = self.load(record)?;
        let (r, c) = (self.opts.resize, self.opts.crop);
        // Everything first goes to resize² with nearest, the image included (docs/REFERENCE.md §7 item 25).
        let bgr = transform::resize_nearest(&bgr, r, r);
        let targets = targets.into_iter().map(|(k, t)| (k, transform::resize_target(&t, r, r)));
        let (mut input, targets): (Dense<f32>, Vec<_>) = match self.opts.mode {
            Mode::Test => {
                (transform::resize_bilinear_f32(&bgr, c, c), targets.map(|(k, t)| (k, transform::resize_target(&t, c, c))).collect())
            }
            Mode::Train => {
                let aug = Augmentation::sample(rng, (r, r), (c, c));
                let input = aug.place(transform::resize_bilinear_f32(&bgr, aug.scaled.0, aug.scaled.1), 0.0);
                let targets = targets
                    .map(|(k, t)| {
                        let mut t = aug.apply_target(&t);
                        if aug.flip && k == TaskKind::Normal {
                            negate_normal_x(&mut t);
                        }
                        (k, t)
                    })
                    .collect();
                (input, targets)
            }
        };
        transform::subtract_bgr_mean(&mut input);
        Ok(RawSample { name: record[0].clone(), input, targets })
    }
}

/// Negates the x-component (channel 0) of decoded normals on valid pixels after a mirror.
fn negate_normal_x(normal: &mut RawTarget) {
    // Channel 0 is the first plane, so zipping with the one-plane mask visits exactly it.
    for (v, &ok) in normal.value.data.iter_mut().zip(&normal.valid.data) {
        if ok == 1 {
            *v = -*v;
        }
    }
}

/// One Taskonomy record to write, every array at the same size.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskonomyRecord {
    /// 3×H×W image, R,G,B.
    pub rgb: Dense<u8>,
    /// 1×H×W raw seg ids (0 unlabelled, `c + 1` for class `c`; see [`encode_seg`]).
    pub seg: Dense<u8>,
    /// 3×H×W encoded normals, R,G,B = x,y,z (see [`encode_normal`]).
    pub normal: Dense<u8>,
    /// 1×H×W raw depth (see [`encode_depth`]).
    pub depth: Dense<u16>,
    /// 1×H×W raw keypoint heat (see [`encode_keypoint`]).
    pub keypoints: Dense<u16>,
    /// 1×H×W raw edge strength (see [`encode_edge`]).
    pub edge: Dense<u16>,
}

/// Writes the six files of one record under `split_dir` (`<root>/Taskonomy/train` or `/test`)
/// as `<folder>/<stem>.png` for each of [`FOLDERS`] and returns the paths relative to
/// `split_dir`, in record order, ready for [`write_index`].
///
/// # Errors
/// [`Error::Config`] for a stem that is empty or escapes the folder; [`Error::Data`] when the
/// arrays disagree in size or channel count; [`Error::Io`] when a file cannot be written.
pub fn write_record(split_dir: &Path, stem: &str, rec: &TaskonomyRecord) -> Result<[String; 6]> {
    codec::check_stem(stem)?;
    let rel = FOLDERS.map(|f| format!("{f}/{stem}.png"));
    let paths = rel.each_ref().map(|r| split_dir.join(r));
    let (h, w) = (rec.rgb.height, rec.rgb.width);
    let sizes = [
        (rec.seg.height, rec.seg.width),
        (rec.normal.height, rec.normal.width),
        (rec.depth.height, rec.depth.width),
        (rec.keypoints.height, rec.keypoints.width),
        (rec.edge.height, rec.edge.width),
    ];
    for (path, (dh, dw)) in paths[1..].iter().zip(sizes) {
        codec::check_write_size(path, (dh, dw), (h, w))?;
    }
    codec::write_rgb8(&paths[0], &rec.rgb)?;
    codec::write_grey8(&paths[1], &rec.seg)?;
    codec::write_rgb8(&paths[2], &rec.normal)?;
    codec::write_grey16(&paths[3], &rec.depth)?;
    codec::write_grey16(&paths[4], &rec.keypoints)?;
    codec::write_grey16(&paths[5], &rec.edge)?;
    Ok(rel)
}

/// Writes `<root>/Taskonomy/taskonomy.json` (each split's records) and
/// `<root>/Taskonomy/semseg_prior_factor.npy` (one weight per seg class, float32).
///
/// # Errors
/// [`Error::Config`] for an empty prior or a negative or non-finite weight; [`Error::Data`] for
/// a split given twice; [`Error::Io`] when a file cannot be written.
pub fn write_index(root: &Path, splits: &[(&str, Vec<[String; 6]>)], prior: &[f32]) -> Result<()> {
    if prior.is_empty() || prior.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::config("prior", "needs one finite, non-negative weight per segmentation class"));
    }
    let dir = root.join(DIR);
    codec::write_split_index(&dir.join(INDEX_FILE), splits)?;
    codec::write_npy_f32(&dir.join(PRIOR_FILE), &[prior.len()], prior)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const H: usize = 32;
    const W: usize = 40;
    const CLASSES: usize = 17;

    /// A 32×40 record with known patterns:
    /// image R = 30, G = 8y, B = 4x; seg raw = x mod 18 (0 = unlabelled, 1..17 = classes 0..16)
    /// with 255 at (2,5); normal (R,G,B) = (200, 0, 51); depth = 511 + 100x + y except
    /// 65535 at (0,0), 64500 at (4,10), 64499 at (6,12); keypoints = 10x + y;
    /// edges = 100x + y except 60000 at (0,2).
    fn record() -> TaskonomyRecord {
        let mut rec = TaskonomyRecord {
            rgb: Dense::filled(3, H, W, 30u8),
            seg: Dense::filled(1, H, W, 0u8),
            normal: Dense::filled(3, H, W, 0u8),
            depth: Dense::filled(1, H, W, 0u16),
            keypoints: Dense::filled(1, H, W, 0u16),
            edge: Dense::filled(1, H, W, 0u16),
        };
        for y in 0..H {
            for x in 0..W {
                *rec.rgb.at_mut(1, y, x) = (8 * y) as u8;
                *rec.rgb.at_mut(2, y, x) = (4 * x) as u8;
                *rec.seg.at_mut(0, y, x) = (x % 18) as u8;
                for (c, v) in [200u8, 0, 51].into_iter().enumerate() {
                    *rec.normal.at_mut(c, y, x) = v;
                }
                *rec.depth.at_mut(0, y, x) = (511 + 100 * x + y) as u16;
                *rec.keypoints.at_mut(0, y, x) = (10 * x + y) as u16;
                *rec.edge.at_mut(0, y, x) = (100 * x + y) as u16;
            }
        }
        *rec.seg.at_mut(0, 2, 5) = SEG_IGNORE;
        *rec.depth.at_mut(0, 0, 0) = DEPTH_INVALID;
        *rec.depth.at_mut(0, 4, 10) = 64500;
        *rec.depth.at_mut(0, 6, 12) = 64499;
        *rec.edge.at_mut(0, 0, 2) = 60000;
        rec
    }

    /// Writes `train` = [a, b] and `test_small` = [a] (the latter under `Taskonomy/test`).
    fn dataset_with(rec: &TaskonomyRecord) -> (tempfile::TempDir, [String; 6]) {
        let root = tempfile::tempdir().unwrap();
        let tk = root.path().join(DIR);
        let a = write_record(&tk.join("train"), "a", rec).unwrap();
        let b = write_record(&tk.join("train"), "b", rec).unwrap();
        let t = write_record(&tk.join("test"), "a", rec).unwrap();
        let prior: Vec<f32> = (0..CLASSES).map(|c| 1.0 + c as f32 / 10.0).collect();
        write_index(root.path(), &[("train", vec![a, b]), ("test_small", vec![t.clone()])], &prior).unwrap();
        (root, t)
    }

    fn dataset() -> (tempfile::TempDir, [String; 6]) {
        dataset_with(&record())
    }

    /// Whether an `f32` output matches a value worked out by hand (in `f64`) to 1e-4.
    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-4
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn opts(resize: usize, crop: usize) -> TaskonomyOptions {
        TaskonomyOptions { resize, crop, ..TaskonomyOptions::default() }
    }

    fn target(s: &RawSample, k: TaskKind) -> &RawTarget {
        &s.targets.iter().find(|t| t.0 == k).unwrap().1
    }

    #[test]
    fn opens_and_reports_prior() {
        let (root, t) = dataset();
        let r = TaskonomyReader::open(root.path(), "test_small", TaskonomyOptions::default()).unwrap();
        let r2 = TaskonomyReader::open(&root.path().join(DIR), "train", TaskonomyOptions::default()).unwrap();
        assert_eq!((r.len(), r2.len()), (1, 2));
        assert!(r.split_dir().ends_with("Taskonomy/test") && r2.split_dir().ends_with("Taskonomy/train"));
        assert_eq!(r.seg_classes(), CLASSES);
        assert_eq!(r.class_weights().unwrap()[3], 1.3);
        assert_eq!(r.tasks(), &TaskKind::ALL);
        assert_eq!(r.name(0), t[0]);
    }

    #[test]
    fn test_mode_decodes_values_masks_and_nearest_indices() {
        let (root, t) = dataset();
        // resize 16 = crop 16: the second resize is the identity, so target (i, j) comes from
        // source row floor(2i) (32→16) and column floor(2.5j) (40→16).
        let r = TaskonomyReader::open(root.path(), "test_small", opts(16, 16)).unwrap();
        let s = r.read(0, &mut rng(0)).unwrap();
        assert_eq!(s.name, t[0]);
        assert_eq!(s.targets.iter().map(|t| t.0).collect::<Vec<_>>(), TaskKind::ALL.to_vec());
        let ln65536 = 65536f64.ln();
        for i in 0..16 {
            for j in 0..16 {
                let (y, x) = (2 * i, j * 40 / 16);
                // Image: nearest only → B = 4x, G = 8y, R = 30, minus the B,G,R mean.
                assert!(close(s.input.at(0, i, j), 4.0 * x as f64 - 104.00698793));
                assert!(close(s.input.at(1, i, j), 8.0 * y as f64 - 116.66876762));
                assert!(close(s.input.at(2, i, j), 30.0 - 122.67891434));

                // Seg: raw x mod 18; raw 0 is unlabelled (ignored by default), raw 255 at (2,5) → (1,2).
                let seg = target(&s, TaskKind::SegmentSemantic);
                let raw = if (y, x) == (2, 5) { 255 } else { x % 18 };
                let ok = raw != 0 && raw != 255;
                assert_eq!(seg.valid.at(0, i, j), ok as u8, "seg mask at {i},{j}");
                assert_eq!(seg.value.at(0, i, j), if ok { (raw - 1) as f32 } else { 0.0 });

                // Depth: d = 511 + 100x + y; (0,0) = 65535 and (4,10) = 64500 invalid, (6,12) = 64499 valid.
                let depth = target(&s, TaskKind::DepthZbuffer);
                let d = match (y, x) {
                    (0, 0) => 65535.0,
                    (4, 10) => 64500.0,
                    (6, 12) => 64499.0,
                    _ => (511 + 100 * x + y) as f64,
                };
                let ok = d < 64500.0;
                assert_eq!(depth.valid.at(0, i, j), ok as u8, "depth mask at {i},{j}");
                let want = if ok { ((1.0 + d).ln() / ln65536) as f32 } else { 0.0 };
                assert!((depth.value.at(0, i, j) - want).abs() < 1e-6);

                // Normal (200, 0, 51) → (2·200/255 − 1, −1, 2·0.2 − 1) = (0.5686275, −1, −0.6);
                // valid where depth is valid.
                let normal = target(&s, TaskKind::Normal);
                assert_eq!(normal.valid.at(0, i, j), ok as u8);
                let want = if ok { [0.5686275, -1.0, -0.6] } else { [0.0; 3] };
                for (c, w) in want.into_iter().enumerate() {
                    assert!((normal.value.at(c, i, j) - w).abs() < 1e-6, "normal {c} at {i},{j}");
                }

                // Keypoints 10x + y: 2·min(v/65536, 0.005)/0.005 − 1 (clips above 327.68).
                let k = (10 * x + y) as f32;
                let want = 2.0 * (k / 65536.0).min(0.005) / 0.005 - 1.0;
                let kp = target(&s, TaskKind::Keypoints2d);
                assert!((kp.value.at(0, i, j) - want).abs() < 1e-5);
                assert_eq!(kp.valid.at(0, i, j), 1);

                // Edges 100x + y, 60000 at (0,2) → (0,1) clips to 1.
                let e = if (y, x) == (0, 2) { 60000.0 } else { (100 * x + y) as f32 };
                let want = 2.0 * (e / 65536.0).min(0.08) / 0.08 - 1.0;
                assert!((target(&s, TaskKind::EdgeTexture).value.at(0, i, j) - want).abs() < 1e-5);
            }
        }
        // Spot values by hand: depth 511 → ln 512 / ln 65536 = 9/16; edge at (0,1) = 1.
        assert!((decode_depth(511) - 0.5625).abs() < 1e-7);
        assert_eq!(target(&s, TaskKind::EdgeTexture).value.at(0, 0, 1), 1.0);
        // Keypoint 164 → 164/65536 = 0.00250244 → /0.005 = 0.500488 → 2k − 1 = 0.000977.
        assert!((decode_keypoint(164) - 0.000977).abs() < 1e-6);
    }

    #[test]
    fn test_mode_bilinear_image_and_composed_nearest() {
        let (root, _) = dataset();
        let r = TaskonomyReader::open(root.path(), "test_small", opts(16, 12)).unwrap();
        let s = r.read(0, &mut rng(0)).unwrap();
        assert_eq!((s.input.height, s.input.width), (12, 12));
        // After nearest 40→16, B = 4·floor(2.5c) = 0, 8, 20, 28, 40, … for c = 0, 1, 2, 3, 4, …
        // Bilinear 16→12: src = (j + 0.5)·16/12 − 0.5 = (8j + 1)/6:
        //   j=0: 1/6  → 0  + (8 − 0)/6    = 1.33333
        //   j=1: 3/2  → 8  + (20 − 8)/2   = 14
        //   j=2: 17/6 → 20 + (28 − 20)·5/6 = 26.66667
        //   j=11: 89/6 → c = 14 (140) + (148 − 140)·5/6 = 146.66667
        for (j, b) in [(0, 8.0 / 6.0), (1, 14.0), (2, 20.0 + 8.0 * 5.0 / 6.0), (11, 140.0 + 8.0 * 5.0 / 6.0)] {
            assert!(close(s.input.at(0, 5, j), b - 104.00698793), "B at col {j}");
        }
        // G = 8·(2r) = 16r after 32→16; row 0: src 1/6 → 16/6 = 2.66667.
        assert!(close(s.input.at(1, 0, 3), 16.0 / 6.0 - 116.66876762));
        // Labels: nearest 16→12 picks floor(j·4/3) = 0,1,2,4,5,6,8,9,10,12,13,14, then the source
        // column floor(2.5c): 0,2,5,10,12,15,20,22,25,30,32,35; row i → 2·floor(4i/3).
        let mid = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14];
        let src_cols = [0, 2, 5, 10, 12, 15, 20, 22, 25, 30, 32, 35];
        assert_eq!(transform::nearest_indices(16, 12), mid);
        let kp = target(&s, TaskKind::Keypoints2d);
        for (i, &row) in mid.iter().enumerate() {
            for (j, &x) in src_cols.iter().enumerate() {
                let y = 2 * row;
                let want = 2.0 * ((10 * x + y) as f32 / 65536.0).min(0.005) / 0.005 - 1.0;
                assert!((kp.value.at(0, i, j) - want).abs() < 1e-5, "keypoint at {i},{j}");
            }
        }
    }

    #[test]
    fn unlabelled_pixels_in_both_modes() {
        let (root, _) = dataset();
        for unlabelled in [Unlabelled::Ignore, Unlabelled::Class0] {
            let o = TaskonomyOptions { unlabelled, ..opts(16, 16) };
            let s = TaskonomyReader::open(root.path(), "test_small", o).unwrap().read(0, &mut rng(0)).unwrap();
            let seg = target(&s, TaskKind::SegmentSemantic);
            // Column j = 0 → x = 0 (raw 0, unlabelled); j = 8 → x = 20 → raw 2 (class 1);
            // j = 7 → x = 17 → raw 17 (class 16, the last); (1,2) → raw 255 (always ignored).
            let class0 = unlabelled == Unlabelled::Class0;
            assert_eq!((seg.value.at(0, 3, 0), seg.valid.at(0, 3, 0)), (0.0, class0 as u8));
            assert_eq!((seg.value.at(0, 3, 8), seg.valid.at(0, 3, 8)), (1.0, 1));
            assert_eq!((seg.value.at(0, 3, 7), seg.valid.at(0, 3, 7)), (16.0, 1));
            assert_eq!((seg.value.at(0, 1, 2), seg.valid.at(0, 1, 2)), (0.0, 0));
            // j = 15 → x = 37 → raw 37 mod 18 = 1: class 0 and valid in both modes.
            assert_eq!((seg.value.at(0, 3, 15), seg.valid.at(0, 3, 15)), (0.0, 1));
        }
    }

    #[test]
    fn train_mode_reproducible_flip_negates_normal_x() {
        let (root, _) = dataset();
        let o = TaskonomyOptions { mode: Mode::Train, ..opts(16, 12) };
        let r = TaskonomyReader::open(root.path(), "train", o).unwrap();
        assert_eq!(r.read(1, &mut rng(9)).unwrap(), r.read(1, &mut rng(9)).unwrap());
        assert_ne!(r.read(1, &mut rng(9)).unwrap(), r.read(1, &mut rng(10)).unwrap());
        let (mut seen, mut padded) = ([false; 2], false);
        for seed in 0..24 {
            let aug = Augmentation::sample(&mut rng(seed), (16, 16), (12, 12));
            seen[aug.flip as usize] = true;
            let s = r.read(0, &mut rng(seed)).unwrap();
            let normal = target(&s, TaskKind::Normal);
            let x = if aug.flip { -0.5686275 } else { 0.5686275 };
            for p in 0..144 {
                let want = if normal.valid.data[p] == 1 { [x, -1.0, -0.6] } else { [0.0; 3] };
                for (c, w) in want.into_iter().enumerate() {
                    assert!((normal.value.data[c * 144 + p] - w).abs() < 1e-6, "seed {seed}");
                }
            }
            // Padding (scaled side < 12): top rows invalid for every task, keypoints included.
            if aug.scaled.0 < 12 && (12 - aug.scaled.0) / 2 > 0 {
                padded = true;
                assert!(s.targets.iter().all(|(_, t)| t.valid.at(0, 0, 0) == 0 && t.value.at(0, 0, 0) == 0.0));
                assert!(close(s.input.at(2, 0, 0), -122.67891434));
            }
        }
        assert!(seen[0] && seen[1] && padded);
    }

    #[test]
    fn task_subset_order_and_normal_needs_depth_file() {
        let (root, t) = dataset();
        let o = TaskonomyOptions { tasks: vec![TaskKind::Normal, TaskKind::SegmentSemantic], ..opts(16, 16) };
        let r = TaskonomyReader::open(root.path(), "test_small", o).unwrap();
        // Keypoint and edge files are not needed.
        let test_dir = root.path().join(DIR).join("test");
        std::fs::remove_file(test_dir.join(&t[4])).unwrap();
        let s = r.read(0, &mut rng(0)).unwrap();
        assert_eq!(s.targets.iter().map(|t| t.0).collect::<Vec<_>>(), vec![TaskKind::Normal, TaskKind::SegmentSemantic]);
        assert_eq!(target(&s, TaskKind::Normal).valid.at(0, 0, 0), 0); // depth 65535 at (0,0)
        std::fs::remove_file(test_dir.join(&t[3])).unwrap();
        let msg = r.read(0, &mut rng(0)).unwrap_err().to_string();
        assert!(msg.contains(&t[3]), "{msg}");
        let dup = TaskonomyOptions { tasks: vec![TaskKind::Normal, TaskKind::Normal], ..opts(16, 16) };
        assert!(matches!(TaskonomyReader::open(root.path(), "test_small", dup), Err(Error::Config { .. })));
    }

    #[test]
    fn prior_and_label_disagreement_is_an_error() {
        let mut rec = record();
        *rec.seg.at_mut(0, 9, 3) = 19; // class 18 with a 17-entry prior
        let (root, t) = dataset_with(&rec);
        let r = TaskonomyReader::open(root.path(), "test_small", opts(16, 16)).unwrap();
        let msg = r.read(0, &mut rng(0)).unwrap_err().to_string();
        assert!(msg.contains(&t[1]) && msg.contains("id 19") && msg.contains("17 classes") && msg.contains(PRIOR_FILE), "{msg}");
    }

    #[test]
    fn bad_prior_files_are_named() {
        let (root, _) = dataset();
        let prior = root.path().join(DIR).join(PRIOR_FILE);
        codec::write_npy_f32(&prior, &[17, 1], &[1.0; 17]).unwrap();
        let msg = TaskonomyReader::open(root.path(), "train", opts(16, 16)).unwrap_err().to_string();
        assert!(msg.contains(PRIOR_FILE) && msg.contains("1-D") && msg.contains("[17, 1]"), "{msg}");
        use npyz::WriterBuilder;
        let file = std::io::BufWriter::new(std::fs::File::create(&prior).unwrap());
        let mut w = npyz::WriteOptions::<i64>::new().default_dtype().shape(&[17]).writer(file).begin_nd().unwrap();
        w.extend(1..=17i64).unwrap();
        w.finish().unwrap();
        let msg = TaskonomyReader::open(root.path(), "train", opts(16, 16)).unwrap_err().to_string();
        assert!(msg.contains(PRIOR_FILE) && msg.contains("<i8"), "{msg}");
        std::fs::remove_file(&prior).unwrap();
        let msg = TaskonomyReader::open(root.path(), "train", opts(16, 16)).unwrap_err().to_string();
        assert!(msg.contains(PRIOR_FILE) && msg.contains("cannot open"), "{msg}");
    }

    #[test]
    fn corrupt_truncated_wrong_depth_and_mismatched_files_are_named() {
        let (root, t) = dataset();
        let dir = root.path().join(DIR).join("test");
        let read = || TaskonomyReader::open(root.path(), "test_small", opts(16, 16)).unwrap().read(0, &mut rng(0));

        // 8-bit depth instead of 16-bit.
        codec::write_grey8(&dir.join(&t[3]), &Dense::filled(1, H, W, 7u8)).unwrap();
        let msg = read().unwrap_err().to_string();
        assert!(msg.contains(&t[3]) && msg.contains("16-bit"), "{msg}");

        // Edge map of the wrong size.
        codec::write_grey16(&dir.join(&t[3]), &Dense::filled(1, H, W, 7u16)).unwrap();
        codec::write_grey16(&dir.join(&t[5]), &Dense::filled(1, H - 1, W, 7u16)).unwrap();
        let msg = read().unwrap_err().to_string();
        assert!(msg.contains(&t[5]) && msg.contains("31×40") && msg.contains("32×40"), "{msg}");

        // Truncated RGB image.
        let png = std::fs::read(dir.join(&t[0])).unwrap();
        std::fs::write(dir.join(&t[0]), &png[..png.len() - 20]).unwrap();
        let msg = read().unwrap_err().to_string();
        assert!(msg.contains(&t[0]) && msg.contains("cannot decode"), "{msg}");

        // Grey image where RGB is required.
        codec::write_grey8(&dir.join(&t[0]), &Dense::filled(1, H, W, 7u8)).unwrap();
        let msg = read().unwrap_err().to_string();
        assert!(msg.contains(&t[0]) && msg.contains("8-bit RGB"), "{msg}");

        let msg = TaskonomyReader::open(root.path(), "val", TaskonomyOptions::default()).unwrap_err().to_string();
        assert!(msg.contains(INDEX_FILE) && msg.contains("no split `val`"), "{msg}");
    }

    #[test]
    fn encoders_invert_decoders_up_to_quantisation() {
        // Depth: metres → 1/512 m units → ln(1+d)/ln 65536 → metres, error ≤ half a unit.
        for m in [0.0f32, 0.001, 0.5, 1.0, 3.3, 10.0, 64.25, 125.9] {
            let back = depth_value_to_metres(decode_depth(encode_depth(m)));
            assert!((back - m).abs() <= 0.5 / 512.0 + 1e-4 * m.max(1.0), "{m} → {back}");
        }
        assert_eq!(encode_depth(1.0), 512);
        assert_eq!(decode_depth(encode_depth(1.0)), decode_depth(512));
        for bad in [-1.0f32, f32::NAN, f32::INFINITY, 200.0] {
            assert_eq!(encode_depth(bad), DEPTH_INVALID);
        }
        // Normals: steps of 2/255.
        for n in [[0.0f32, 0.0, 1.0], [-1.0, 0.3, -0.7], [0.577, -0.577, 0.577]] {
            let back = decode_normal(encode_normal(n));
            for (a, b) in back.iter().zip(n) {
                assert!((a - b).abs() <= 1.0 / 255.0 + 1e-6, "{n:?} → {back:?}");
            }
        }
        assert_eq!(encode_normal([1.0, -1.0, 0.0]), [255, 0, 128]);
        // Keypoints/edges: reader yields 2k − 1; steps of 2/(0.005·65536) and 2/(0.08·65536).
        for k in [0.0f32, 0.1, 0.5, 0.99, 1.0] {
            assert!((decode_keypoint(encode_keypoint(k)) - (2.0 * k - 1.0)).abs() <= 1.0 / 327.68 + 1e-6);
            assert!((decode_edge(encode_edge(k)) - (2.0 * k - 1.0)).abs() <= 1.0 / 5242.88 + 1e-6);
        }
        assert_eq!((encode_keypoint(1.0), encode_edge(1.0)), (328, 5243));
        assert_eq!((encode_seg(None), encode_seg(Some(0)), encode_seg(Some(16))), (0, 1, 17));
    }

    #[test]
    fn depth_round_trip_through_files() {
        // A record whose depth is 0.25 m · column: through the PNG, the reader and back to metres.
        let mut rec = record();
        for y in 0..H {
            for x in 0..W {
                *rec.depth.at_mut(0, y, x) = encode_depth(0.25 * x as f32);
            }
        }
        let (root, _) = dataset_with(&rec);
        let o = TaskonomyOptions { tasks: vec![TaskKind::DepthZbuffer], ..opts(16, 16) };
        let s = TaskonomyReader::open(root.path(), "test_small", o).unwrap().read(0, &mut rng(0)).unwrap();
        let depth = &s.targets[0].1;
        for j in 0..16 {
            let x = j * 40 / 16;
            let m = depth_value_to_metres(depth.value.at(0, 4, j));
            assert!((m - 0.25 * x as f32).abs() < 1e-3, "column {j}: {m}");
        }
        // The same file read in metres gives the metres directly: 0.25·x exactly (x·128 units / 512).
        let o = TaskonomyOptions { tasks: vec![TaskKind::DepthZbuffer], depth: DepthUnits::Metres, ..opts(16, 16) };
        let s = TaskonomyReader::open(root.path(), "test_small", o).unwrap().read(0, &mut rng(0)).unwrap();
        for j in 0..16 {
            assert_eq!(s.targets[0].1.value.at(0, 4, j), 0.25 * (j * 40 / 16) as f32);
        }
    }

    #[test]
    fn writer_rejects_inconsistent_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = record();
        rec.edge = Dense::filled(1, H, W - 2, 0);
        let msg = write_record(dir.path(), "x", &rec).unwrap_err().to_string();
        assert!(msg.contains("edge_texture/x.png") && msg.contains("32×38"), "{msg}");
        assert!(matches!(write_record(dir.path(), "../x", &record()), Err(Error::Config { .. })));
        assert!(matches!(write_index(dir.path(), &[], &[]), Err(Error::Config { .. })));
    }
}
