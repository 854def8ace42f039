//! Batches from a dataset reader: samples are read and preprocessed in parallel (rayon), then
//! stacked. Evaluation batches go in file order; training batches are whatever sample indices
//! and augmentation seeds the trainer asks for (see `train::sampler`), so every batch is a pure
//! function of (seed, step) and a resumed run sees the same data.
use super::Batch;
use super::open::Dataset;
use super::raw::RawSample;
use super::source::{BatchSource, SampleSource};
use crate::error::{Error, Result};
use crate::task::TaskKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::Device;

/// A dataset split read in batches.
pub struct Loader {
    dataset: Dataset,
    tasks: Vec<TaskKind>,
    batch_size: usize,
    samples: usize,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("samples", &self.samples).field("batch_size", &self.batch_size).finish()
    }
}

impl Loader {
    /// Batches of `batch_size` over the first `limit` samples (all when `None`), keeping `tasks`.
    ///
    /// # Errors
    /// A zero batch size or limit, an empty split, or tasks the data does not have.
    pub fn new(dataset: Dataset, tasks: Vec<TaskKind>, batch_size: usize, limit: Option<usize>) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("--batch-size", "must be at least 1"));
        }
        let n = dataset.reader.len();
        if n == 0 {
            return Err(Error::config("--data", "the split has no samples"));
        }
        if limit == Some(0) {
            return Err(Error::config(
                "--limit",
                "0 samples leaves nothing to evaluate; give at least 1, or leave it out for the whole split",
            ));
        }
        for t in &tasks {
            if !dataset.reader.tasks().contains(t) {
                return Err(Error::config("--data", format!("the data has no `{t}` labels")));
            }
        }
        let samples = limit.map_or(n, |l| l.min(n));
        Ok(Loader { dataset, tasks, batch_size, samples })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    fn read(&self, items: &[(usize, u64)]) -> Result<Vec<RawSample>> {
        items.par_iter().map(|&(index, seed)| self.dataset.reader.read(index, &mut ChaCha8Rng::seed_from_u64(seed))).collect()
    }
}

impl BatchSource for Loader {
    fn num_batches(&self) -> usize {
        self.samples.div_ceil(self.batch_size)
    }

    fn num_samples(&self) -> usize {
        self.samples
    }

    fn batch(&self, index: usize, device: Device) -> Result<Batch> {
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(self.samples);
        let items: Vec<(usize, u64)> = (start..end).map(|i| (i, i as u64)).collect();
        Batch::from_raw(&self.read(&items)?, &self.tasks, device)
    }
}

impl SampleSource for Loader {
    fn num_samples(&self) -> usize {
        self.samples
    }

    fn samples(&self, items: &[(usize, u64)], device: Device) -> Result<Batch> {
        Batch::from_raw(&self.read(items)?, &self.tasks, device)
    }
}
