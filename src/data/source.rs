//! Where batches come from: random access by batch index, so an evaluation can pass over the data
//! twice (the paper APGD profile needs dataset-level clean losses first) and interrupted work can
//! skip what is done.
use super::Batch;
use crate::error::Result;
use tch::Device;

/// A sequence of batches.
pub trait BatchSource {
    /// Number of batches.
    fn num_batches(&self) -> usize;
    /// Number of samples over all batches.
    fn num_samples(&self) -> usize;
    /// Batch `index` (0-based) on `device`.
    ///
    /// # Errors
    /// Unreadable or malformed data.
    fn batch(&self, index: usize, device: Device) -> Result<Batch>;
}

/// Batches already in memory (tests, small experiments).
pub struct InMemory(pub Vec<Batch>);

impl BatchSource for InMemory {
    fn num_batches(&self) -> usize {
        self.0.len()
    }

    fn num_samples(&self) -> usize {
        self.0.iter().map(Batch::len).sum()
    }

    fn batch(&self, index: usize, device: Device) -> Result<Batch> {
        Ok(self.0[index].to_device(device))
    }
}

/// Samples by index with a per-sample augmentation seed: what training draws from.
pub trait SampleSource: Sync {
    /// Number of samples.
    fn num_samples(&self) -> usize;
    /// The samples `items[i].0`, augmented with seeds `items[i].1`, stacked on `device`.
    ///
    /// # Errors
    /// Unreadable or malformed data.
    fn samples(&self, items: &[(usize, u64)], device: Device) -> Result<Batch>;
}

/// Raw samples in memory, without augmentation (tests).
pub struct InMemorySamples {
    pub samples: Vec<super::RawSample>,
    pub tasks: Vec<crate::task::TaskKind>,
}

impl SampleSource for InMemorySamples {
    fn num_samples(&self) -> usize {
        self.samples.len()
    }

    fn samples(&self, items: &[(usize, u64)], device: Device) -> Result<Batch> {
        let picked: Vec<super::RawSample> = items.iter().map(|&(i, _)| self.samples[i].clone()).collect();
        Batch::from_raw(&picked, &self.tasks, device)
    }
}

/// Batches read once from another source and kept in CPU memory up to a byte budget, so that
/// several passes over the same data (a clean pass, then many attacks) decode it once. Batches
/// past the budget are read again from the inner source on every pass.
pub struct Cached<'a> {
    inner: &'a dyn BatchSource,
    budget: usize,
    cache: std::cell::RefCell<(usize, Vec<Option<Batch>>)>,
}

impl<'a> Cached<'a> {
    /// Caches `inner` up to `budget_bytes` of tensor data.
    pub fn new(inner: &'a dyn BatchSource, budget_bytes: usize) -> Self {
        Cached { inner, budget: budget_bytes, cache: std::cell::RefCell::new((0, (0..inner.num_batches()).map(|_| None).collect())) }
    }
}

fn batch_bytes(b: &Batch) -> usize {
    let bytes = |t: &tch::Tensor| t.numel() * t.kind().elt_size_in_bytes();
    bytes(&b.x) + b.targets.values().map(|t| bytes(&t.value) + bytes(&t.valid)).sum::<usize>()
}

impl BatchSource for Cached<'_> {
    fn num_batches(&self) -> usize {
        self.inner.num_batches()
    }

    fn num_samples(&self) -> usize {
        self.inner.num_samples()
    }

    fn batch(&self, index: usize, device: Device) -> Result<Batch> {
        if let Some(b) = &self.cache.borrow().1[index] {
            return Ok(b.to_device(device));
        }
        let batch = self.inner.batch(index, Device::Cpu)?;
        let mut cache = self.cache.borrow_mut();
        let size = batch_bytes(&batch);
        if cache.0 + size <= self.budget {
            cache.0 += size;
            let on_device = batch.to_device(device);
            cache.1[index] = Some(batch);
            return Ok(on_device);
        }
        Ok(batch.to_device(device))
    }
}
