//! Opening a dataset directory: NYUv2 (`nyu_v2_3task.json`) or Tiny-Taskonomy (`taskonomy.json`),
//! given either the data root or the dataset folder itself; a directory made by `mtrobust data
//! synth` is a Taskonomy dataset whose `synth.json` sets the reader sizes and metric profile.
use super::nyuv2::{self, Nyuv2Options, Nyuv2Reader};
use super::reader::{Mode, Reader};
use super::synth::export::{SynthManifest, read_manifest};
use super::taskonomy::{self, TaskonomyOptions, TaskonomyReader, Unlabelled};
use crate::error::{Error, Result};
use crate::task::{MetricProfile, Task, TaskSpec};
use std::path::Path;

/// Which on-disk format a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Nyuv2,
    Taskonomy,
}

/// Reader sizes the user can override (defaults: the reference's, or the synthetic set's native size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// NYUv2: square crop (321); Taskonomy: the first resize (256).
    pub resize: Option<usize>,
    /// Taskonomy: the final size (224).
    pub crop: Option<usize>,
}

/// An opened split.
pub struct Dataset {
    pub reader: Box<dyn Reader>,
    pub format: Format,
    pub synth: Option<SynthManifest>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset").field("format", &self.format).field("len", &self.reader.len()).finish()
    }
}

impl Dataset {
    /// The metric profile that matches the data: Taskonomy's single metrics for real Taskonomy,
    /// the full NYUv2-style set otherwise.
    pub fn default_profile(&self) -> MetricProfile {
        match (self.format, &self.synth) {
            (Format::Taskonomy, None) => MetricProfile::Taskonomy,
            _ => MetricProfile::Full,
        }
    }

    /// The tasks of a model that predicts `specs`, with this dataset's class weights.
    ///
    /// # Errors
    /// A model task the data has no labels for, or a class count that disagrees with the data.
    pub fn tasks_for(&self, specs: &[TaskSpec]) -> Result<Vec<Task>> {
        let have = self.reader.tasks();
        specs
            .iter()
            .map(|s| {
                if !have.contains(&s.kind) {
                    let names: Vec<&str> = have.iter().map(|k| k.name()).collect();
                    return Err(Error::parameter("data", format!("the data has no `{}` labels (it has {})", s.kind, names.join(", "))));
                }
                let mut task = Task::new(*s);
                if s.kind == crate::task::TaskKind::SegmentSemantic {
                    let classes = self.reader.seg_classes() as i64;
                    if classes != s.channels {
                        // Not only `train` gets here: `attack`/`eval` have no --tasks flag to fix.
                        return Err(Error::parameter(
                            "data",
                            format!(
                                "the model segments {} classes but the data has {classes}: attack or evaluate a model made for this \
                                 data, or, when training or initialising one, use segm:{classes} in --tasks",
                                s.channels
                            ),
                        ));
                    }
                    task.class_weights = self.reader.class_weights().map(<[f32]>::to_vec);
                }
                Ok(task)
            })
            .collect()
    }
}

/// Which format `dir` holds, and the folder containing the index file.
fn detect(dir: &Path) -> Option<Format> {
    let has = |sub: &str, file: &str| dir.join(file).is_file() || dir.join(sub).join(file).is_file();
    if has(nyuv2::DIR, nyuv2::INDEX_FILE) {
        Some(Format::Nyuv2)
    } else if has(taskonomy::DIR, taskonomy::INDEX_FILE) {
        Some(Format::Taskonomy)
    } else {
        None
    }
}

/// Opens `split` of the dataset in `dir`.
///
/// # Errors
/// A directory that holds neither format, or reader errors (missing split, bad files).
pub fn open(dir: &Path, split: &str, mode: Mode, sizes: Sizes) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "no such directory; generate the built-in dataset with `mtrobust data synth --out DIR` or point --data at a NYUv2/Taskonomy copy",
        ));
    }
    let format = detect(dir).ok_or_else(|| {
        Error::data(
            dir,
            format!(
                "is neither a NYUv2 dataset ({}/{}) nor a Taskonomy dataset ({}/{}); `mtrobust data synth --out DIR` makes one",
                nyuv2::DIR,
                nyuv2::INDEX_FILE,
                taskonomy::DIR,
                taskonomy::INDEX_FILE
            ),
        )
    })?;
    let synth = read_manifest(dir)?;
    let reader: Box<dyn Reader> = match format {
        Format::Nyuv2 => {
            let mut o = Nyuv2Options { mode, ..Default::default() };
            if let Some(r) = sizes.resize {
                // `--resize` is NYUv2's square input size (the reader calls it its crop).
                if r == 0 {
                    return Err(Error::parameter("resize", "0 px: the NYUv2 input size must be positive (default 321)"));
                }
                o.crop = (r, r);
            }
            Box::new(Nyuv2Reader::open(dir, split, o)?)
        }
        Format::Taskonomy => {
            let mut o = TaskonomyOptions { mode, unlabelled: Unlabelled::Ignore, ..Default::default() };
            if let Some(m) = &synth {
                o.resize = m.resize;
                o.crop = m.crop;
                o.depth = m.depth;
            }
            if let Some(r) = sizes.resize {
                o.resize = r;
            }
            if let Some(c) = sizes.crop {
                o.crop = c;
            }
            Box::new(TaskonomyReader::open(dir, split, o)?)
        }
    };
    if reader.is_empty() {
        let (sub, file) = match format {
            Format::Nyuv2 => (nyuv2::DIR, nyuv2::INDEX_FILE),
            Format::Taskonomy => (taskonomy::DIR, taskonomy::INDEX_FILE),
        };
        let index = if dir.join(file).is_file() { dir.join(file) } else { dir.join(sub).join(file) };
        return Err(Error::data(index, format!("split `{split}` has no samples; choose a split that lists some (--split)")));
    }
    Ok(Dataset { reader, format, synth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Loader;
    use crate::data::source::BatchSource;
    use crate::data::synth::export::{SynthOptions, write_dataset};
    use crate::observe::Silent;
    use crate::task::{TaskKind, taskonomy_tasks};
    use tch::{Device, Kind};

    #[test]
    fn a_generated_dataset_opens_and_loads_at_native_size() {
        let dir = tempfile::tempdir().unwrap();
        let m = write_dataset(dir.path(), &SynthOptions { n: 6, size: 32, seed: 3, test_fraction: 0.5 }, &mut Silent).unwrap();
        assert_eq!((m.train, m.test), (3, 3));
        assert!(dir.path().join("preview.png").is_file());
        let ds = open(dir.path(), "test", Mode::Test, Sizes::default()).unwrap();
        assert_eq!(ds.format, Format::Taskonomy);
        assert_eq!(ds.default_profile(), crate::task::MetricProfile::Full);
        assert_eq!(ds.reader.seg_classes(), 10);
        let tasks = ds.tasks_for(&taskonomy_tasks(10)).unwrap();
        assert!(tasks[0].class_weights.as_ref().is_some_and(|w| w.len() == 10));
        let err = ds.tasks_for(&taskonomy_tasks(17)).unwrap_err().to_string();
        assert!(err.contains("use segm:10"), "{err}");
        let loader = Loader::new(ds, TaskKind::ALL.to_vec(), 2, None).unwrap();
        assert_eq!((loader.num_batches(), BatchSource::num_samples(&loader)), (2, 3));
        let b = loader.batch(1, Device::Cpu).unwrap();
        assert_eq!(b.x.size(), vec![1, 3, 32, 32]);
        // Keypoints and edges decode to [−1, 1]; depth to metres (inside a 4–9 m room); every pixel is labelled.
        for kind in [TaskKind::Keypoints2d, TaskKind::EdgeTexture] {
            let v = &b.targets.get(kind).unwrap().value;
            assert!(f64::try_from(v.min()).unwrap() >= -1.0 && f64::try_from(v.max()).unwrap() <= 1.0);
        }
        let depth = &b.targets.get(TaskKind::DepthZbuffer).unwrap().value;
        assert!(f64::try_from(depth.min()).unwrap() > 0.05 && f64::try_from(depth.max()).unwrap() < 13.0);
        let seg = b.targets.get(TaskKind::SegmentSemantic).unwrap();
        assert_eq!(f64::try_from(seg.valid.mean(Kind::Float)).unwrap(), 1.0);
        // Writing into the same directory again is refused.
        assert!(write_dataset(dir.path(), &SynthOptions { n: 2, size: 32, seed: 3, test_fraction: 0.5 }, &mut Silent).is_err());
    }

    #[test]
    fn a_directory_without_a_dataset_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path(), "test", Mode::Test, Sizes::default()).unwrap_err().to_string();
        assert!(err.contains("neither a NYUv2") && err.contains("data synth"), "{err}");
        let err = open(&dir.path().join("missing"), "test", Mode::Test, Sizes::default()).unwrap_err().to_string();
        assert!(err.contains("no such directory"), "{err}");
    }
}
