//! The interface every dataset reader implements (docs/REFERENCE.md §1): a split of samples, each read and
//! preprocessed into a framework-free [`RawSample`] with one [`RawTarget`](crate::data::raw::RawTarget)
//! per task, in the dataset's task order (docs/REFERENCE.md §1.1).
use rand_chacha::ChaCha8Rng;

use crate::data::raw::RawSample;
use crate::error::Result;
use crate::task::TaskKind;

/// Train-time augmentation (random scale 0.5–1.5, horizontal flip, pad/crop) vs the deterministic test path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Deterministic resize to the crop size (every attack and evaluation uses this).
    #[default]
    Test,
    /// Random scale, flip and pad/crop (training only).
    Train,
}

/// A split of a dataset on disk whose samples can be read in any order, from any thread.
pub trait Reader: Send + Sync {
    /// Number of samples in the split.
    fn len(&self) -> usize;

    /// Whether the split has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tasks each sample carries targets for, in dataset order (docs/REFERENCE.md §1.1).
    fn tasks(&self) -> &[TaskKind];

    /// Number of segmentation classes (40 for NYUv2; the prior's length for Taskonomy).
    fn seg_classes(&self) -> usize;

    /// Per-class segmentation weights (Taskonomy's prior factor); `None` when unweighted (NYUv2).
    fn class_weights(&self) -> Option<&[f32]>;

    /// The stable name of sample `index` (the image path the split file gives).
    ///
    /// # Panics
    /// If `index >= self.len()`, like slice indexing.
    fn name(&self, index: usize) -> &str;

    /// Read and preprocess sample `index`. `rng` is used only in Mode::Train (augmentation), so a caller
    /// that seeds one ChaCha8Rng per (seed, epoch, index) gets reproducible augmentation.
    ///
    /// # Errors
    /// [`Error::Data`](crate::error::Error::Data) naming the file when a file of the sample is
    /// missing, corrupt or inconsistent; [`Error::Config`](crate::error::Error::Config) when
    /// `index` is out of range.
    fn read(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<RawSample>;
}
