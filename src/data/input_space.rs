//! The model's input space: how 8-bit pixels become network inputs. The reference uses B,G,R
//! channels with the per-channel mean subtracted on the 0..255 scale (docs/REFERENCE.md §1.2 step 3), and the
//! attack budget ε is measured in the same grey levels. This is the only place the mean lives.
use tch::{Device, Kind, Tensor};

/// Channel order of the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Bgr,
    Rgb,
}

/// `input = (pixel − mean) · scale`, per channel, pixels in 0..255.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputSpace {
    pub channel_order: ChannelOrder,
    pub mean: [f64; 3],
    pub scale: f64,
}

/// The reference's B,G,R means (docs/REFERENCE.md §1.2).
pub const REFERENCE_BGR_MEAN: [f64; 3] = [104.00698793, 116.66876762, 122.67891434];

impl Default for InputSpace {
    fn default() -> Self {
        InputSpace::reference()
    }
}

impl InputSpace {
    /// The reference input space: B,G,R, mean-subtracted, 0..255 scale.
    pub fn reference() -> Self {
        InputSpace { channel_order: ChannelOrder::Bgr, mean: REFERENCE_BGR_MEAN, scale: 1.0 }
    }

    /// Per-channel lowest and highest valid input values (pixel 0 and 255).
    pub fn bounds(&self) -> ([f64; 3], [f64; 3]) {
        let lo = self.mean.map(|m| -m * self.scale);
        let hi = self.mean.map(|m| (255.0 - m) * self.scale);
        (lo, hi)
    }

    /// The bounds as `[1, 3, 1, 1]` tensors, ready to clamp a batch.
    pub fn bound_tensors(&self, kind: Kind, device: Device) -> (Tensor, Tensor) {
        let (lo, hi) = self.bounds();
        let t = |v: [f64; 3]| Tensor::from_slice(&v).to_kind(kind).to_device(device).view([1, 3, 1, 1]);
        (t(lo), t(hi))
    }

    /// A budget of `eps` grey levels in input units.
    pub fn eps_to_input(&self, eps: f64) -> f64 {
        eps * self.scale
    }

    /// `[B,3,H,W]` inputs back to 0..255 pixels in R,G,B order (for images and previews).
    pub fn to_rgb_pixels(&self, x: &Tensor) -> Tensor {
        let mean = Tensor::from_slice(&self.mean).to_kind(x.kind()).to_device(x.device()).view([1, 3, 1, 1]);
        let pixels = x / self.scale + mean;
        match self.channel_order {
            ChannelOrder::Bgr => pixels.flip([1]),
            ChannelOrder::Rgb => pixels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_bounds_are_pixel_0_and_255() {
        let (lo, hi) = InputSpace::reference().bounds();
        assert_eq!(lo, [-104.00698793, -116.66876762, -122.67891434]);
        assert!((hi[0] - 150.99301207).abs() < 1e-9 && (hi[2] - 132.32108566).abs() < 1e-9);
    }
}
