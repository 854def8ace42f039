//! Batches from a dataset reader: samples are read and preprocessed in parallel (rayon), then
//! stacked. Evaluation batches go in file order; training batches are whatever sample indices
//! and augmentation seeds the trainer asks for (see `train::sampler`), so every batch is a pure
//! function of (seed, step) and a resumed run sees the same data.
//!
//! Evaluation batches are prefetched: when batch `i` is handed out, batch `i + 1` is decoded and
//! resized on a worker thread while the caller attacks batch `i` (NYUv2's 480×640 PNGs and
//! OpenCV-exact resizes cost as much as a GPU iteration). The prefetched samples are exactly
//! what a direct read gives; a caller that asks for another index simply reads it directly.
use super::Batch;
use super::open::Dataset;
use super::raw::RawSample;
use super::source::{BatchSource, SampleSource};
use crate::error::{Error, Result};
use crate::task::TaskKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tch::Device;

/// A batch being read on a worker thread: its index and the thread.
type Pending = (usize, JoinHandle<Result<Vec<RawSample>>>);

/// A dataset split read in batches.
pub struct Loader {
    dataset: Arc<Dataset>,
    tasks: Vec<TaskKind>,
    batch_size: usize,
    samples: usize,
    /// The next evaluation batch, read ahead (see the module documentation).
    prefetch: Mutex<Option<Pending>>,
    prefetching: bool,
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
            return Err(Error::parameter("batch_size", "must be at least 1"));
        }
        let n = dataset.reader.len();
        if n == 0 {
            return Err(Error::parameter("data", "the split has no samples"));
        }
        if limit == Some(0) {
            return Err(Error::parameter(
                "limit",
                "0 samples leaves nothing to evaluate; give at least 1, or leave it out for the whole split",
            ));
        }
        for t in &tasks {
            if !dataset.reader.tasks().contains(t) {
                return Err(Error::parameter("data", format!("the data has no `{t}` labels")));
            }
        }
        let samples = limit.map_or(n, |l| l.min(n));
        Ok(Loader { dataset: Arc::new(dataset), tasks, batch_size, samples, prefetch: Mutex::new(None), prefetching: true })
    }

    /// Turns reading ahead on or off (on by default); the batches are the same either way.
    pub fn set_prefetch(&mut self, on: bool) {
        self.prefetching = on;
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    fn read(&self, items: &[(usize, u64)]) -> Result<Vec<RawSample>> {
        read(&self.dataset, items)
    }

    /// The (sample, seed) pairs of evaluation batch `index`.
    fn items(&self, index: usize) -> Vec<(usize, u64)> {
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(self.samples);
        (start..end).map(|i| (i, i as u64)).collect()
    }

    /// Batch `index`'s samples: the prefetched ones when they are for `index`, else read now;
    /// then starts reading `index + 1`.
    fn eval_samples(&self, index: usize) -> Result<Vec<RawSample>> {
        let mut slot = self.prefetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ready = match slot.take() {
            Some((i, handle)) if i == index => Some(handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            // Another index: let the stale read finish on its own.
            _ => None,
        };
        let next = index + 1;
        if self.prefetching && next < self.num_batches() {
            let (dataset, items) = (Arc::clone(&self.dataset), self.items(next));
            *slot = Some((next, std::thread::spawn(move || read(&dataset, &items))));
        }
        drop(slot);
        match ready {
            Some(samples) => samples,
            None => self.read(&self.items(index)),
        }
    }
}

fn read(dataset: &Dataset, items: &[(usize, u64)]) -> Result<Vec<RawSample>> {
    items.par_iter().map(|&(index, seed)| dataset.reader.read(index, &mut ChaCha8Rng::seed_from_u64(seed))).collect()
}

impl BatchSource for Loader {
    fn num_batches(&self) -> usize {
        self.samples.div_ceil(self.batch_size)
    }

    fn num_samples(&self) -> usize {
        self.samples
    }

    fn batch(&self, index: usize, device: Device) -> Result<Batch> {
        Batch::from_raw(&self.eval_samples(index)?, &self.tasks, device)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::export::{SynthOptions, write_dataset};
    use crate::data::{Mode, Sizes, open};

    #[test]
    fn prefetched_batches_equal_direct_reads_in_any_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        write_dataset(&root, &SynthOptions { n: 14, size: 32, seed: 3, test_fraction: 0.5 }, &mut crate::observe::Silent).unwrap();
        let loader = |prefetch: bool| {
            let ds = open(&root, "test", Mode::Test, Sizes::default()).unwrap();
            let tasks = ds.reader.tasks().to_vec();
            let mut l = Loader::new(ds, tasks, 3, None).unwrap();
            l.set_prefetch(prefetch);
            l
        };
        let (direct, ahead) = (loader(false), loader(true));
        assert_eq!(direct.num_batches(), 3, "7 test samples in batches of 3");
        // In order (every read after the first comes from the worker), then out of order and repeated.
        for i in [0, 1, 2, 1, 0, 0, 2] {
            let (a, b) = (direct.batch(i, Device::Cpu).unwrap(), ahead.batch(i, Device::Cpu).unwrap());
            assert_eq!(a.names, b.names, "batch {i}");
            assert!(a.x.equal(&b.x), "batch {i}: inputs");
            for (kind, t) in a.targets.iter() {
                let u = b.targets.get(kind).unwrap();
                assert!(t.value.equal(&u.value) && t.valid.equal(&u.valid), "batch {i}: {kind}");
            }
        }
        assert!(direct.prefetch.lock().unwrap().is_none(), "no read-ahead when turned off");
    }
}
