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

    /// RGB pixels scaled to `0..range` with nothing subtracted: `range` 1.0 is torchvision's
    /// 0..1 image tensors, where ε = 8/255 is 8 grey levels.
    pub fn scaled_rgb(range: f64) -> Self {
        InputSpace { channel_order: ChannelOrder::Rgb, mean: [0.0; 3], scale: range / 255.0 }
    }

    /// A budget of `eps` grey levels in input units.
    pub fn eps_to_input(&self, eps: f64) -> f64 {
        eps * self.scale
    }

    /// The budget in grey levels that is `eps` input units: the inverse of
    /// [`InputSpace::eps_to_input`], chosen among the floats next to `eps / scale` so that the
    /// round trip gives `eps` back as closely as floats allow (bit for bit when some float does;
    /// always the same float32, the precision tensors are projected in). So ε given in a caller's
    /// units, e.g. 8/255 of a 0..1 image, is the number every projection uses.
    pub fn eps_from_input(&self, eps: f64) -> f64 {
        let guess = eps / self.scale;
        let miss = |g: f64| (g * self.scale - eps).abs();
        let (mut best, mut up, mut down) = (guess, guess, guess);
        for _ in 0..8 {
            (up, down) = (up.next_up(), down.next_down());
            for g in [up, down] {
                if miss(g) < miss(best) {
                    best = g;
                }
            }
        }
        best
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
    fn budgets_in_input_units_round_trip_exactly() {
        for range in [1.0, 2.0, 255.0] {
            let space = InputSpace::scaled_rgb(range);
            assert_eq!(space.bounds(), ([0.0; 3], [range; 3]));
            for k in 1..=64 {
                let eps = f64::from(k) / 255.0 * range;
                let back = space.eps_to_input(space.eps_from_input(eps));
                assert!((back - eps).abs() <= eps * f64::EPSILON, "range {range}, k {k}: {back} vs {eps}");
                assert_eq!(back as f32, eps as f32, "range {range}, k {k}");
                assert!((space.eps_from_input(eps) - f64::from(k)).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn reference_bounds_are_pixel_0_and_255() {
        let (lo, hi) = InputSpace::reference().bounds();
        assert_eq!(lo, [-104.00698793, -116.66876762, -122.67891434]);
        assert!((hi[0] - 150.99301207).abs() < 1e-9 && (hi[2] - 132.32108566).abs() < 1e-9);
    }
}
