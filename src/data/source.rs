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
