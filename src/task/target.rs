//! The label of one task for a batch: values plus a validity mask. It lives with the tasks
//! (losses and metrics consume it); the data readers produce it.
use tch::{Device, Tensor};

/// The label of one task for a batch.
#[derive(Debug)]
pub struct Target {
    /// `[B, C, H, W]` float: class index (seg), 3-vector (normals) or value (others).
    pub value: Tensor,
    /// `[B, 1, H, W]` float, 1 where the pixel counts and 0 where it is ignored.
    pub valid: Tensor,
}

impl Target {
    /// A target whose every pixel counts: a custom task's, which is passed to its loss as given
    /// (`valid` is a `[B, 1, 1, 1]` tensor of ones, unused).
    pub fn whole(value: Tensor) -> Target {
        let b = value.size().first().copied().unwrap_or(0);
        let valid = Tensor::ones([b, 1, 1, 1], (tch::Kind::Float, value.device()));
        Target { value, valid }
    }

    /// The target resampled to `h × w` with PyTorch `nearest` (docs/REFERENCE.md §2.3: losses downsample the
    /// labels to the output resolution; `src = min(floor(dst·in/out), in−1)`).
    pub fn resized(&self, h: i64, w: i64) -> Target {
        let (_, _, th, tw) = self.value.size4().expect("targets are 4-D");
        if (th, tw) == (h, w) {
            return self.shallow();
        }
        Target { value: self.value.upsample_nearest2d([h, w], None, None), valid: self.valid.upsample_nearest2d([h, w], None, None) }
    }

    /// A second handle to the same tensors (no copy).
    pub fn shallow(&self) -> Target {
        Target { value: self.value.shallow_clone(), valid: self.valid.shallow_clone() }
    }

    /// The target on `device`.
    pub fn to_device(&self, device: Device) -> Target {
        Target { value: self.value.to_device(device), valid: self.valid.to_device(device) }
    }

    /// The samples `start..start+len` of the batch.
    pub fn narrow(&self, start: i64, len: i64) -> Target {
        Target { value: self.value.narrow(0, start, len), valid: self.valid.narrow(0, start, len) }
    }
}
