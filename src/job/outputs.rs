//! The output directory of a job: `report.json`, `report.csv`, the clean and adversarial batches
//! as `.npy` and a preview per attack. It is locked while the job runs; it never holds two runs'
//! files: a report of another run (a different identity) is refused unless `force`, and `force`
//! removes the old run's files before the new ones are written. Every file is written atomically.
use super::record::RunRecord;
use crate::data::{Batch, write_npy};
use crate::error::{Error, Result};
use crate::eval::csv;
use crate::files::{DirLock, write_bytes_atomic};
use crate::model::Model;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// A locked output directory for one run.
#[derive(Debug)]
pub struct OutputDir {
    dir: PathBuf,
    identity: String,
    save_all: bool,
    _lock: DirLock,
}

const REPORT: &str = "report.json";

/// A file-name-safe version of an attack label.
pub fn slug(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

impl OutputDir {
    /// Locks `dir` for a run of `identity` (see [`super::Job::identity`]). A report of the same
    /// run is replaced; one of another run is an error unless `force`, which first deletes that
    /// run's files (its report, batches and per-attack folders, nothing else).
    ///
    /// # Errors
    /// Another process writing into `dir`, or a report of another run without `force`.
    pub fn prepare(dir: &Path, identity: &str, force: bool, save_all: bool) -> Result<OutputDir> {
        // A new or empty directory, or one of a run's (an interrupted one holds no report yet).
        crate::files::refuse_foreign_entries(dir, is_run_output)?;
        let lock = DirLock::acquire(dir)?;
        let report = dir.join(REPORT);
        if report.exists() {
            let old = std::fs::read_to_string(&report).ok().and_then(|t| serde_json::from_str::<RunRecord>(&t).ok());
            let same = old.as_ref().is_some_and(|r| r.run_id == identity);
            if !same {
                if !force {
                    return Err(Error::data(
                        dir,
                        "already holds the report of another run (other model, data or attack options); use another output directory, or pass --force to replace it",
                    ));
                }
                remove_run(dir, old.as_ref())?;
            }
        }
        Ok(OutputDir { dir: dir.to_path_buf(), identity: identity.to_string(), save_all, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A sink for [`crate::eval::evaluate`] writing the first clean batch (every batch with
    /// `save_all`), each attack's adversarial batches into a folder named after its label, and a
    /// preview (clean | adversarial | perturbation) of the first sample per attack.
    pub fn sink<'a>(
        &'a self,
        model: &'a Model,
        attacks: &[crate::attack::Attack],
    ) -> impl FnMut(usize, usize, &Batch, &Tensor) -> Result<()> + 'a {
        let labels: Vec<String> = attacks.iter().map(|x| slug(&x.config.label())).collect();
        let eps: Vec<f64> = attacks.iter().map(|x| x.config.eps).collect();
        move |i: usize, b: usize, batch: &Batch, x_adv: &Tensor| {
            if b > 0 && !self.save_all {
                return Ok(());
            }
            if i == 0 {
                write_npy(&self.dir.join(format!("clean_batch{b:04}.npy")), &batch.x)?;
                write_bytes_atomic(&self.dir.join(format!("clean_batch{b:04}.names.txt")), batch.names.join("\n"))?;
            }
            let dir = self.dir.join(&labels[i]);
            write_npy(&dir.join(format!("adv_batch{b:04}.npy")), x_adv)?;
            if b == 0 {
                write_preview(&dir.join("preview.png"), model, &batch.x, x_adv, eps[i])?;
            }
            Ok(())
        }
    }

    /// Stamps `record` with the run's identity and writes `report.json` and `report.csv`.
    ///
    /// # Errors
    /// I/O failures.
    pub fn finish(&self, record: &mut RunRecord) -> Result<()> {
        record.run_id = self.identity.clone();
        write_bytes_atomic(&self.dir.join("report.csv"), csv::render(&record.evaluation))?;
        // The report last: its presence marks a complete run.
        write_bytes_atomic(&self.dir.join(REPORT), serde_json::to_string_pretty(record).expect("serialisable"))
    }
}

/// Whether `path`, an entry of an output directory, is what a run writes there: its report, the
/// clean batches, or an attack's folder of adversarial batches and preview.
fn is_run_output(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // A write killed half-way leaves its temporary file (`.NAME.tmp-…`).
    let temporary = |n: &str| n.starts_with('.') && n.contains(".tmp-");
    let run_file = |n: &str| {
        (n.starts_with("clean_batch") && (n.ends_with(".npy") || n.ends_with(".names.txt")))
            || n == REPORT
            || n == "report.csv"
            || temporary(n)
    };
    let attack_file = |n: &str| (n.starts_with("adv_batch") && n.ends_with(".npy")) || n == "preview.png" || temporary(n);
    if path.is_symlink() {
        return false;
    }
    if path.is_dir() {
        return std::fs::read_dir(path).is_ok_and(|entries| entries.flatten().all(|e| attack_file(&e.file_name().to_string_lossy())));
    }
    run_file(&name)
}

/// Deletes what a run wrote into `dir`: report, CSV, clean batches and the folders of its attacks.
fn remove_run(dir: &Path, old: Option<&RunRecord>) -> Result<()> {
    let rm = |p: &Path| {
        std::fs::remove_file(p).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(Error::io(p, e)) })
    };
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("clean_batch") && (name.ends_with(".npy") || name.ends_with(".names.txt")) {
            rm(&entry.path())?;
        }
    }
    let labels: Vec<String> = old.map(|r| r.evaluation.attacked.iter().map(|a| slug(&a.label)).collect()).unwrap_or_default();
    for label in labels {
        let sub = dir.join(label);
        if sub.is_dir() && !sub.is_symlink() {
            for entry in std::fs::read_dir(&sub).map_err(|e| Error::io(&sub, e))? {
                let p = entry.map_err(|e| Error::io(&sub, e))?.path();
                let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
                if (name.starts_with("adv_batch") && name.ends_with(".npy")) || name == "preview.png" {
                    rm(&p)?;
                }
            }
            let _ = std::fs::remove_dir(&sub); // only if now empty: a user's own files stay
        }
    }
    rm(&dir.join("report.csv"))?;
    rm(&dir.join(REPORT))
}

/// Clean | adversarial | perturbation (scaled to the full range), for the first sample.
fn write_preview(path: &Path, model: &Model, x: &Tensor, x_adv: &Tensor, eps: f64) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let rgb = |t: &Tensor| model.input.to_rgb_pixels(&t.get(0).unsqueeze(0)).squeeze_dim(0);
    let clean = rgb(x);
    let adv = rgb(x_adv);
    let delta = ((&adv - &clean) * (127.5 / eps.max(1e-6)) + 127.5).clamp(0.0, 255.0);
    let row = Tensor::cat(&[clean, adv, delta], 2).clamp(0.0, 255.0).round().to_kind(Kind::Uint8); // [3, H, 3W]
    let (h, w) = (row.size()[1] as u32, row.size()[2] as u32);
    let hwc = Vec::<u8>::try_from(row.permute([1, 2, 0]).contiguous().flatten(0, -1).to_device(tch::Device::Cpu))?;
    let img = image::RgbImage::from_raw(w, h, hwc).ok_or_else(|| Error::data(path, "preview buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::context(format!("{}: cannot encode the PNG", path.display()), e))?;
    write_bytes_atomic(path, png)
}
