//! Opening a dataset directory: NYUv2 (`nyu_v2_3task.json`) or Tiny-Taskonomy (`taskonomy.json`),
//! given either the data root or the dataset folder itself; a directory made by `mtrobust data
//! synth` is a Taskonomy dataset whose `synth.json` sets the reader sizes and metric profile.
use super::nyuv2::{self, Nyuv2Options, Nyuv2Reader};
use super::reader::{Mode, Reader};
use super::synth::export::{read_manifest, SynthManifest};
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
                    return Err(Error::config("--data", format!("the data has no `{}` labels (it has {})", s.kind, names.join(", "))));
                }
                let mut task = Task::new(*s);
                if s.kind == crate::task::TaskKind::SegmentSemantic {
                    let classes = self.reader.seg_classes() as i64;
                    if classes != s.channels {
                        return Err(Error::config(
                            "--tasks",
                            format!("the model segments {} classes but the data has {classes}; use segm:{classes}", s.channels),
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
        return Err(Error::data(dir, "no such directory; generate the built-in dataset with `mtrobust data synth --out DIR` or point --data at a NYUv2/Taskonomy copy"));
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
                o.crop = (r, r);
            }
            Box::new(Nyuv2Reader::open(dir, split, o)?)
        }
        Format::Taskonomy => {
            let mut o = TaskonomyOptions { mode, unlabelled: Unlabelled::Ignore, ..Default::default() };
            if let Some(m) = &synth {
                o.resize = m.resize;
                o.crop = m.crop;
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
    Ok(Dataset { reader, format, synth })
}
