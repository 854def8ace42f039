//! NYUv2 reader (and a small writer) for AdaShare's preprocessed layout, as the reference loader
//! `NYU_v2` reads it (docs/REFERENCE.md §1.2; masks per §1.4; flip quirk §7 item 24).
//!
//! On disk: `<root>/NYUv2/nyu_v2_3task.json` maps split names to `[img, seg, normal, depth]`
//! paths relative to `<root>/NYUv2`. The image is any 8-bit colour PNG/JPEG (read as B,G,R like
//! OpenCV), seg an 8-bit grey PNG (classes 0..39, 255 = ignore), normals an 8-bit RGB PNG kept as
//! raw 0..255 values in the file's B,G,R order, depth a float `.npy` of shape (H, W) in metres.
//!
//! Test mode: image resized to `crop` with OpenCV bilinear on `uint8` (bit-exact), labels with
//! OpenCV nearest, then the B,G,R mean is subtracted (0..255 scale). Train mode: random scale,
//! flip, centred zero-pad and random crop ([`Augmentation`]).
//!
//! Validity (`RawTarget::valid`, what the reference metrics use, docs/REFERENCE.md §1.4), decided at label
//! resolution before padding: seg `label < 40` (255 is ignore; any other value ≥ 40 is an
//! error); normal: no channel equals 255; depth: `value > 3e-5` (0, negatives and NaN are
//! missing). Invalid pixels hold 0; padded pixels are invalid.
//!
//! Flip of normals (deviation from the reference, which leaves them unchanged): the raw values
//! encode `v = (n + 1)/2 · 255`, so mirroring the physical x-component `n_x → −n_x` is
//! `v_x → 255 − v_x` (plain negation would leave the encoding's range). The x-component is
//! assumed to sit in the file's red channel — the usual normal-map convention, and where
//! Taskonomy keeps it — which is channel 2 of the B,G,R tensor; [`Nyuv2Options::normal_x_channel`]
//! changes it. A flipped valid pixel may hold 255 (`v_x = 0` before the flip): validity is
//! decided before the flip and carried in `valid`, which downstream code must use instead of
//! re-testing for 255.
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;

use crate::data::codec;
use crate::data::raw::{Dense, RawSample, RawTarget};
use crate::data::reader::{Mode, Reader};
use crate::data::transform::{self, Augmentation};
use crate::error::{Error, Result};
use crate::task::TaskKind;

/// Folder under the data root that holds NYUv2.
pub const DIR: &str = "NYUv2";
/// The split index file inside [`DIR`].
pub const INDEX_FILE: &str = "nyu_v2_3task.json";
/// NYUv2 tasks in dataset order (docs/REFERENCE.md §1.1).
pub const TASKS: [TaskKind; 3] = [TaskKind::SegmentSemantic, TaskKind::Normal, TaskKind::DepthZbuffer];
/// Number of segmentation classes.
pub const CLASSES: usize = 40;
/// Raw seg (and normal channel) value marking an ignored pixel.
pub const IGNORE: u8 = 255;
/// Depth values at or below this are missing (the reference's `gt > 3e-5`).
pub const MIN_DEPTH: f32 = 3e-5;
/// Crop the attack drivers pass (docs/REFERENCE.md §1.2).
pub const DEFAULT_CROP: (usize, usize) = (321, 321);
/// Tensor channel (B,G,R order) holding the normal's x-component: the file's red channel.
pub const NORMAL_X_CHANNEL: usize = 2;

/// How an NYUv2 split is preprocessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nyuv2Options {
    /// Test (deterministic resize) or train (augmentation).
    pub mode: Mode,
    /// Output size (height, width); (321, 321) by default.
    pub crop: (usize, usize),
    /// Normal channel (0..3, B,G,R tensor order) mirrored on a train-time flip; 2 by default.
    pub normal_x_channel: usize,
}

impl Default for Nyuv2Options {
    fn default() -> Self {
        Nyuv2Options { mode: Mode::Test, crop: DEFAULT_CROP, normal_x_channel: NORMAL_X_CHANNEL }
    }
}

/// One split of NYUv2 on disk.
#[derive(Debug, Clone)]
pub struct Nyuv2Reader {
    dir: PathBuf,
    split: String,
    records: Vec<[String; 4]>,
    opts: Nyuv2Options,
}

/// A record decoded at file resolution, before any resize.
struct Source {
    bgr: Dense<u8>,
    targets: [RawTarget; 3],
}

impl Nyuv2Reader {
    /// Opens split `split` of the dataset at `root` (the data root holding `NYUv2/`, or the
    /// `NYUv2` folder itself).
    ///
    /// # Errors
    /// [`Error::Data`] if the split index is missing, malformed or lacks `split`;
    /// [`Error::Config`] for a zero crop size or a normal channel outside 0..3.
    pub fn open(root: &Path, split: &str, opts: Nyuv2Options) -> Result<Self> {
        if opts.crop.0 == 0 || opts.crop.1 == 0 {
            return Err(Error::config("crop", format!("{:?} must be positive in both sides, e.g. (321, 321)", opts.crop)));
        }
        if opts.normal_x_channel >= 3 {
            return Err(Error::config("normal_x_channel", format!("{} must be 0, 1 or 2", opts.normal_x_channel)));
        }
        let dir = codec::locate_dataset(root, DIR, INDEX_FILE)?;
        let records = codec::read_split::<4>(&dir.join(INDEX_FILE), split)?;
        Ok(Nyuv2Reader { dir, split: split.to_owned(), records, opts })
    }

    /// The `NYUv2` folder the split's paths are relative to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The split name this reader was opened with.
    pub fn split(&self) -> &str {
        &self.split
    }

    /// The options this reader was opened with.
    pub fn options(&self) -> &Nyuv2Options {
        &self.opts
    }

    /// Reads and decodes the four files of `record` at file resolution.
    fn load(&self, record: &[String; 4]) -> Result<Source> {
        let [img_p, seg_p, nrm_p, dep_p] = record.each_ref().map(|p| self.dir.join(p));
        // OpenCV's imread(IMREAD_COLOR) accepts grey/alpha images, so the input does too.
        let bgr = transform::reverse_channels(&codec::read_rgb8(&img_p, true)?);
        let (h, w) = (bgr.height, bgr.width);
        let same_size = |path: &Path, fh: usize, fw: usize| codec::check_same_size(path, (fh, fw), &img_p, (h, w));

        let seg_raw = codec::read_grey8(&seg_p)?;
        same_size(&seg_p, seg_raw.height, seg_raw.width)?;
        let mut seg = RawTarget { value: Dense::filled(1, h, w, 0.0), valid: Dense::filled(1, h, w, 0) };
        for (p, &v) in seg_raw.data.iter().enumerate() {
            if (v as usize) < CLASSES {
                seg.value.data[p] = v as f32;
                seg.valid.data[p] = 1;
            } else if v != IGNORE {
                return Err(Error::data(
                    &seg_p,
                    format!(
                        "segmentation value {v} at row {}, column {} is neither a class id 0..{} nor the \
                         ignore value {IGNORE}; fix the label file",
                        p / w,
                        p % w,
                        CLASSES - 1
                    ),
                ));
            }
        }

        let nrm_raw = transform::reverse_channels(&codec::read_rgb8(&nrm_p, false)?);
        same_size(&nrm_p, nrm_raw.height, nrm_raw.width)?;
        let plane = h * w;
        let mut normal = RawTarget { value: Dense::filled(3, h, w, 0.0), valid: Dense::filled(1, h, w, 0) };
        for p in 0..plane {
            let px = [nrm_raw.data[p], nrm_raw.data[plane + p], nrm_raw.data[2 * plane + p]];
            if px.iter().all(|&v| v != IGNORE) {
                normal.valid.data[p] = 1;
                for (c, v) in px.into_iter().enumerate() {
                    normal.value.data[c * plane + p] = v as f32;
                }
            }
        }

        let npy = codec::read_npy_f32(&dep_p)?;
        if npy.shape != [h, w] {
            return Err(Error::data(
                &dep_p,
                format!("has shape {:?} but the image {} needs ({h}, {w}); depth must be a 2-D (H, W) array", npy.shape, img_p.display()),
            ));
        }
        let mut depth = RawTarget { value: Dense::filled(1, h, w, 0.0), valid: Dense::filled(1, h, w, 0) };
        for (p, &v) in npy.data.iter().enumerate() {
            if v > MIN_DEPTH {
                depth.value.data[p] = v;
                depth.valid.data[p] = 1;
            }
        }
        Ok(Source { bgr, targets: [seg, normal, depth] })
    }
}

impl Reader for Nyuv2Reader {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn tasks(&self) -> &[TaskKind] {
        &TASKS
    }

    fn seg_classes(&self) -> usize {
        CLASSES
    }

    fn class_weights(&self) -> Option<&[f32]> {
        None
    }

    fn name(&self, index: usize) -> &str {
        &self.records[index][0]
    }

    fn read(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<RawSample> {
        let record = self.records.get(index).ok_or_else(|| {
            Error::config("index", format!("{index} is out of range; split `{}` has {} samples", self.split, self.records.len()))
        })?;
        let Source { bgr, targets } = self.load(record)?;
        let (ch, cw) = self.opts.crop;
        let (mut input, targets) = match self.opts.mode {
            Mode::Test => {
                (transform::to_f32(&transform::resize_bilinear_u8(&bgr, ch, cw)), targets.map(|t| transform::resize_target(&t, ch, cw)))
            }
            Mode::Train => {
                let aug = Augmentation::sample(rng, (bgr.height, bgr.width), self.opts.crop);
                let scaled = transform::resize_bilinear_u8(&bgr, aug.scaled.0, aug.scaled.1);
                // Padded image pixels are 0 before the mean subtraction, as in the reference.
                let input = aug.place(transform::to_f32(&scaled), 0.0);
                let mut targets = targets.map(|t| aug.apply_target(&t));
                if aug.flip {
                    mirror_raw_normal_x(&mut targets[1], self.opts.normal_x_channel);
                }
                (input, targets)
            }
        };
        transform::subtract_bgr_mean(&mut input);
        Ok(RawSample { name: record[0].clone(), input, targets: TASKS.into_iter().zip(targets).collect() })
    }
}

/// Mirrors the x-component of raw 0..255 normals on valid pixels: `v → 255 − v`, i.e. `n_x → −n_x`
/// under the encoding `v = (n + 1)/2 · 255` (see the module doc).
fn mirror_raw_normal_x(normal: &mut RawTarget, channel: usize) {
    let plane = normal.valid.data.len();
    for (p, &ok) in normal.valid.data.iter().enumerate() {
        if ok == 1 {
            let v = &mut normal.value.data[channel * plane + p];
            *v = 255.0 - *v;
        }
    }
}

/// One NYUv2 record to write, all at the same size.
#[derive(Debug, Clone, PartialEq)]
pub struct Nyuv2Record {
    /// 3×H×W image in B,G,R order (what the reader yields before resizing).
    pub bgr: Dense<u8>,
    /// 1×H×W class ids 0..39, 255 = ignore.
    pub seg: Dense<u8>,
    /// 3×H×W raw normals in the reader's B,G,R channel order; any 255 marks the pixel invalid.
    pub normal: Dense<u8>,
    /// 1×H×W depth in metres; values ≤ 3e-5 mark missing depth.
    pub depth: Dense<f32>,
}

/// Writes one record under `nyu_dir` (the `NYUv2` folder) as `img/<stem>.png`, `seg/<stem>.png`,
/// `normal_mask/<stem>.png` and `depth/<stem>.npy` (AdaShare's sample layout) and returns those
/// paths relative to `nyu_dir`, ready for [`write_index`].
///
/// # Errors
/// [`Error::Config`] for a stem that is empty or escapes the folder; [`Error::Data`] when the
/// arrays disagree in size or channel count; [`Error::Io`] when a file cannot be written.
pub fn write_record(nyu_dir: &Path, stem: &str, rec: &Nyuv2Record) -> Result<[String; 4]> {
    codec::check_stem(stem)?;
    let rel = [format!("img/{stem}.png"), format!("seg/{stem}.png"), format!("normal_mask/{stem}.png"), format!("depth/{stem}.npy")];
    let [img_p, seg_p, nrm_p, dep_p] = rel.each_ref().map(|r| nyu_dir.join(r));
    let (h, w) = (rec.bgr.height, rec.bgr.width);
    for (path, dh, dw) in [
        (&seg_p, rec.seg.height, rec.seg.width),
        (&nrm_p, rec.normal.height, rec.normal.width),
        (&dep_p, rec.depth.height, rec.depth.width),
    ] {
        codec::check_write_size(path, (dh, dw), (h, w))?;
    }
    // Files hold R,G,B; the reader (like OpenCV) yields B,G,R, so reverse on the way out.
    codec::write_rgb8(&img_p, &transform::reverse_channels(&rec.bgr))?;
    codec::write_grey8(&seg_p, &rec.seg)?;
    codec::write_rgb8(&nrm_p, &transform::reverse_channels(&rec.normal))?;
    if rec.depth.channels != 1 || rec.depth.data.len() != h * w {
        return Err(Error::data(&dep_p, format!("cannot write: depth must be 1×{h}×{w}")));
    }
    codec::write_npy_f32(&dep_p, &[h, w], &rec.depth.data)?;
    Ok(rel)
}

/// Writes `<root>/NYUv2/nyu_v2_3task.json` listing each split's records.
///
/// # Errors
/// [`Error::Data`] for a split given twice; [`Error::Io`] when the file cannot be written.
pub fn write_index(root: &Path, splits: &[(&str, Vec<[String; 4]>)]) -> Result<()> {
    codec::write_split_index(&root.join(DIR).join(INDEX_FILE), splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const H: usize = 32;
    const W: usize = 40;

    /// A 32×40 record with known patterns:
    /// image B = 4x, G = 8y, R = 77; seg = x (class = column) with (0,0) ignored;
    /// normals (B,G,R) = (50, 100, 200) with G = 255 (invalid) at row 2, column 5;
    /// depth = 1 + 0.01x + 0.1y with 1e-5 at (0,0), 0 at (4,10) and NaN at (6,12).
    fn record() -> Nyuv2Record {
        let mut bgr = Dense::filled(3, H, W, 77u8);
        let mut seg = Dense::filled(1, H, W, 0u8);
        let mut normal = Dense::filled(3, H, W, 0u8);
        let mut depth = Dense::filled(1, H, W, 0f32);
        for y in 0..H {
            for x in 0..W {
                *bgr.at_mut(0, y, x) = (4 * x) as u8;
                *bgr.at_mut(1, y, x) = (8 * y) as u8;
                *seg.at_mut(0, y, x) = x as u8;
                for (c, v) in [50, 100, 200].into_iter().enumerate() {
                    *normal.at_mut(c, y, x) = v;
                }
                *depth.at_mut(0, y, x) = 1.0 + 0.01 * x as f32 + 0.1 * y as f32;
            }
        }
        *seg.at_mut(0, 0, 0) = IGNORE;
        *normal.at_mut(1, 2, 5) = 255;
        *depth.at_mut(0, 0, 0) = 1e-5;
        *depth.at_mut(0, 4, 10) = 0.0;
        *depth.at_mut(0, 6, 12) = f32::NAN;
        Nyuv2Record { bgr, seg, normal, depth }
    }

    /// Writes a dataset with `train` = [a, b] and `test` = [a] and returns (tempdir, records).
    fn dataset() -> (tempfile::TempDir, [String; 4], [String; 4]) {
        let root = tempfile::tempdir().unwrap();
        let nyu = root.path().join(DIR);
        let a = write_record(&nyu, "0001", &record()).unwrap();
        let b = write_record(&nyu, "0002", &record()).unwrap();
        write_index(root.path(), &[("train", vec![a.clone(), b.clone()]), ("test", vec![a.clone()])]).unwrap();
        (root, a, b)
    }

    /// Whether an `f32` output matches a value worked out by hand (in `f64`) to 1e-4.
    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-4
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn test_opts(crop: (usize, usize)) -> Nyuv2Options {
        Nyuv2Options { crop, ..Nyuv2Options::default() }
    }

    #[test]
    fn opens_from_root_or_folder() {
        let (root, a, _) = dataset();
        let r1 = Nyuv2Reader::open(root.path(), "train", Nyuv2Options::default()).unwrap();
        let r2 = Nyuv2Reader::open(&root.path().join(DIR), "test", Nyuv2Options::default()).unwrap();
        assert_eq!((r1.len(), r2.len()), (2, 1));
        assert_eq!(r1.dir(), r2.dir());
        assert_eq!(r1.name(0), a[0]);
        assert_eq!(r1.tasks(), &TASKS);
        assert_eq!((r1.seg_classes(), r1.class_weights()), (40, None));
    }

    #[test]
    fn test_mode_values_masks_and_resize_indices() {
        let (root, a, _) = dataset();
        let r = Nyuv2Reader::open(root.path(), "test", test_opts((16, 16))).unwrap();
        let s = r.read(0, &mut rng(0)).unwrap();
        assert_eq!(s.name, a[0]);
        assert_eq!((s.input.channels, s.input.height, s.input.width), (3, 16, 16));
        // Nearest 32→16 rows: floor(2i); 40→16 columns: floor(2.5j).
        let col = |j: usize| j * 40 / 16;
        for i in 0..16 {
            for j in 0..16 {
                // Image, bilinear: rows src = (i+0.5)·2 − 0.5 = 2i + 0.5 (average of rows 2i, 2i+1);
                // columns src = (j+0.5)·2.5 − 0.5 = 2.5j + 0.75 (weights 0.25/0.75 or 0.75/0.25,
                // exact in 11-bit fixed point). B = 4x → 4·(2.5j + 0.75) = 10j + 3;
                // G = 8y → 8·(2i + 0.5) = 16i + 4; R = 77. Then minus the B,G,R mean.
                let b = (10 * j + 3) as f64 - 104.00698793;
                let g = (16 * i + 4) as f64 - 116.66876762;
                let rr = 77.0 - 122.67891434;
                assert!(close(s.input.at(0, i, j), b), "B at {i},{j}: {}", s.input.at(0, i, j));
                assert!(close(s.input.at(1, i, j), g), "G at {i},{j}");
                assert!(close(s.input.at(2, i, j), rr), "R at {i},{j}");

                let (y, x) = (2 * i, col(j));
                let (seg, normal, depth) = (&s.targets[0].1, &s.targets[1].1, &s.targets[2].1);
                // Seg = source column; (0,0) is the ignore pixel.
                let seg_ok = (i, j) != (0, 0);
                assert_eq!(seg.valid.at(0, i, j), seg_ok as u8);
                assert_eq!(seg.value.at(0, i, j), if seg_ok { x as f32 } else { 0.0 });
                // Normal: row 2 → i = 1, column 5 → j = 2 has a 255 channel.
                let n_ok = (y, x) != (2, 5);
                assert_eq!(normal.valid.at(0, i, j), n_ok as u8);
                let want = if n_ok { [50.0, 100.0, 200.0] } else { [0.0; 3] };
                assert_eq!([normal.value.at(0, i, j), normal.value.at(1, i, j), normal.value.at(2, i, j)], want);
                // Depth: 1e-5 at (0,0), 0 at (4,10) → (2,4), NaN at (6,12) → (3,5) are invalid.
                let d_ok = ![(0, 0), (4, 10), (6, 12)].contains(&(y, x));
                assert_eq!(depth.valid.at(0, i, j), d_ok as u8, "depth mask at {i},{j}");
                let want = if d_ok { 1.0 + 0.01 * x as f32 + 0.1 * y as f32 } else { 0.0 };
                assert_eq!(depth.value.at(0, i, j), want);
            }
        }
        assert_eq!(s.targets.iter().map(|t| t.0).collect::<Vec<_>>(), TASKS.to_vec());
    }

    #[test]
    fn train_mode_is_reproducible_and_flips_normals_and_columns() {
        let (root, _, _) = dataset();
        let opts = Nyuv2Options { mode: Mode::Train, crop: (24, 24), ..Nyuv2Options::default() };
        let r = Nyuv2Reader::open(root.path(), "train", opts).unwrap();
        assert_eq!(r.read(1, &mut rng(5)).unwrap(), r.read(1, &mut rng(5)).unwrap());
        assert_ne!(r.read(1, &mut rng(5)).unwrap(), r.read(1, &mut rng(6)).unwrap());

        let mut seen = [false; 2];
        let mut padded = false;
        for seed in 0..24 {
            let aug = Augmentation::sample(&mut rng(seed), (H, W), (24, 24));
            let s = r.read(0, &mut rng(seed)).unwrap();
            seen[aug.flip as usize] = true;
            let (seg, normal) = (&s.targets[0].1, &s.targets[1].1);
            assert!(normal.valid.data.contains(&1));
            for y in 0..24 {
                let mut last: Option<f32> = None;
                for x in 0..24 {
                    if normal.valid.at(0, y, x) == 1 {
                        // x-component is the file's red channel (tensor channel 2): 200 → 255 − 200 = 55.
                        let want = [50.0, 100.0, if aug.flip { 55.0 } else { 200.0 }];
                        assert_eq!([normal.value.at(0, y, x), normal.value.at(1, y, x), normal.value.at(2, y, x)], want);
                    } else {
                        assert_eq!(normal.value.at(2, y, x), 0.0);
                    }
                    // Seg holds the source column, so a row runs up without a flip and down with one.
                    if seg.valid.at(0, y, x) == 1 {
                        let v = seg.value.at(0, y, x);
                        if let Some(prev) = last {
                            assert!(if aug.flip { v <= prev } else { v >= prev }, "seed {seed} row {y}");
                        }
                        last = Some(v);
                    }
                }
            }
            // Scaled height below the crop: the top (24 − h')/2 rows are padding (offset 0):
            // invalid labels and image = 0 − mean.
            let pad_top = (24usize.saturating_sub(aug.scaled.0)) / 2;
            if pad_top > 0 {
                padded = true;
                for x in 0..24 {
                    assert_eq!(seg.valid.at(0, 0, x), 0);
                    assert!(close(s.input.at(0, 0, x), -104.00698793));
                }
            }
        }
        assert!(seen[0] && seen[1] && padded, "seeds 0..24 should cover flip, no flip and padding");
    }

    #[test]
    fn raw_normal_mirror_is_an_involution_on_valid_pixels() {
        let mut t = RawTarget {
            value: Dense { channels: 3, height: 1, width: 2, data: vec![1.0, 0.0, 2.0, 0.0, 0.0, 0.0] },
            valid: Dense { channels: 1, height: 1, width: 2, data: vec![1, 0] },
        };
        mirror_raw_normal_x(&mut t, 0);
        // Valid pixel: 1 → 254 (n_x = 1/127.5 − 1 → 1 − 1/127.5); invalid pixel stays 0.
        assert_eq!(t.value.data, vec![254.0, 0.0, 2.0, 0.0, 0.0, 0.0]);
        mirror_raw_normal_x(&mut t, 0);
        assert_eq!(t.value.data[0], 1.0);
    }

    fn err_of(root: &Path, split: &str) -> String {
        let r = Nyuv2Reader::open(root, split, test_opts((8, 8))).unwrap();
        r.read(0, &mut rng(0)).expect_err("expected an error").to_string()
    }

    #[test]
    fn bad_seg_value_is_an_error_naming_file_and_value() {
        let (root, a, _) = dataset();
        let mut rec = record();
        *rec.seg.at_mut(0, 3, 7) = 41;
        write_record(&root.path().join(DIR), "0001", &rec).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[1]) && msg.contains("value 41") && msg.contains("row 3, column 7"), "{msg}");
    }

    #[test]
    fn missing_truncated_corrupt_and_mismatched_files_are_named() {
        let (root, a, _) = dataset();
        let nyu = root.path().join(DIR);
        let png = std::fs::read(nyu.join(&a[0])).unwrap();

        std::fs::remove_file(nyu.join(&a[2])).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[2]) && msg.contains("cannot open"), "{msg}");

        std::fs::write(nyu.join(&a[0]), &png[..png.len() / 2]).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[0]) && msg.contains("cannot decode"), "{msg}");

        std::fs::write(nyu.join(&a[0]), b"definitely not an image").unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[0]), "{msg}");

        // Restore, then make the seg map one column narrower.
        let (root, a, _) = dataset();
        let nyu = root.path().join(DIR);
        codec::write_grey8(&nyu.join(&a[1]), &Dense::filled(1, H, W - 1, 3u8)).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[1]) && msg.contains("32×39") && msg.contains("same size"), "{msg}");
    }

    #[test]
    fn bad_depth_arrays_are_named() {
        let (root, a, _) = dataset();
        let dep = root.path().join(DIR).join(&a[3]);
        codec::write_npy_f32(&dep, &[H, W - 1], &vec![1.0; H * (W - 1)]).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[3]) && msg.contains("[32, 39]") && msg.contains("(32, 40)"), "{msg}");

        codec::write_npy_f32(&dep, &[1, H, W], &vec![1.0; H * W]).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[3]) && msg.contains("2-D"), "{msg}");

        use npyz::WriterBuilder;
        let file = std::io::BufWriter::new(std::fs::File::create(&dep).unwrap());
        let mut w = npyz::WriteOptions::<u16>::new().default_dtype().shape(&[H as u64, W as u64]).writer(file).begin_nd().unwrap();
        w.extend(std::iter::repeat_n(1000u16, H * W)).unwrap();
        w.finish().unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[3]) && msg.contains("<u2") && msg.contains("float32"), "{msg}");

        let bytes = {
            codec::write_npy_f32(&dep, &[H, W], &vec![1.0; H * W]).unwrap();
            std::fs::read(&dep).unwrap()
        };
        std::fs::write(&dep, &bytes[..bytes.len() - 100]).unwrap();
        let msg = err_of(root.path(), "test");
        assert!(msg.contains(&a[3]) && msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn split_and_index_errors() {
        let (root, _, _) = dataset();
        let msg = Nyuv2Reader::open(root.path(), "val", Nyuv2Options::default()).unwrap_err().to_string();
        assert!(msg.contains(INDEX_FILE) && msg.contains("no split `val`") && msg.contains("test, train"), "{msg}");
        let empty = tempfile::tempdir().unwrap();
        let msg = Nyuv2Reader::open(empty.path(), "test", Nyuv2Options::default()).unwrap_err().to_string();
        assert!(msg.contains("NYUv2/nyu_v2_3task.json") && msg.contains("not found"), "{msg}");
        let bad = Nyuv2Options { crop: (0, 5), ..Nyuv2Options::default() };
        assert!(matches!(Nyuv2Reader::open(root.path(), "test", bad), Err(Error::Config { .. })));
        let r = Nyuv2Reader::open(root.path(), "test", Nyuv2Options::default()).unwrap();
        assert!(matches!(r.read(1, &mut rng(0)), Err(Error::Config { .. })));
    }
}
