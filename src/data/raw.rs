//! Framework-free sample types: what the dataset readers produce before anything becomes a
//! tensor. Every dataset yields the same shape of sample (input plus, per task, a target and a
//! validity mask), so losses and metrics never special-case a dataset.
use crate::task::TaskKind;

/// A dense per-pixel array in channel-major (C×H×W) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense<T> {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `channels * height * width` values; element (c, y, x) is at `(c*height + y)*width + x`.
    pub data: Vec<T>,
}

impl<T: Copy> Dense<T> {
    /// An array filled with `value`.
    pub fn filled(channels: usize, height: usize, width: usize, value: T) -> Self {
        Dense { channels, height, width, data: vec![value; channels * height * width] }
    }

    /// The value at channel `c`, row `y`, column `x`.
    pub fn at(&self, c: usize, y: usize, x: usize) -> T {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// Mutable access to the value at channel `c`, row `y`, column `x`.
    pub fn at_mut(&mut self, c: usize, y: usize, x: usize) -> &mut T {
        &mut self.data[(c * self.height + y) * self.width + x]
    }
}

/// The label of one task for one image, with the pixels that count.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTarget {
    /// Seg: the class index as a float (0..C-1); normal: 3 channels; the others: 1 channel.
    /// Invalid pixels hold 0.
    pub value: Dense<f32>,
    /// 1×H×W, 1 where the pixel is used by loss and metric, 0 where it is ignored.
    pub valid: Dense<u8>,
}

/// One preprocessed image with its labels, in the model's input space.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    /// A stable identifier (the image path the split file gives).
    pub name: String,
    /// 3×H×W, channels B,G,R, mean-subtracted, 0..255 scale (docs/REFERENCE.md §1.2 step 3).
    pub input: Dense<f32>,
    /// One target per task the dataset provides, in the dataset's task order.
    pub targets: Vec<(TaskKind, RawTarget)>,
}
