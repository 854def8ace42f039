//! The threat model: an L∞ or L2 ball of radius ε around the clean input, intersected with the
//! valid pixel range of the input space. ε is given in grey levels of 0..255 (`--eps 8` = 8/255 of
//! the range). This is the only code that projects and clips: every step rule calls [`Budget::project`]
//! after every step.
use crate::data::InputSpace;
use crate::error::{Error, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// Which norm bounds the perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// max |δ| ≤ ε per pixel and channel (the paper's threat model).
    #[default]
    Linf,
    /// ‖δ‖₂ ≤ ε over the whole image.
    L2,
}

/// The perturbation budget of one attack.
#[derive(Debug)]
pub struct Budget {
    pub norm: Norm,
    /// ε in input units.
    pub eps: f64,
    /// ε in grey levels, as the user gave it.
    pub eps_pixels: f64,
    lo: Tensor,
    hi: Tensor,
}

impl Budget {
    /// A budget of `eps_pixels` grey levels in `input` space, for tensors of `kind` on `device`.
    ///
    /// # Errors
    /// A negative or non-finite ε.
    pub fn new(norm: Norm, eps_pixels: f64, input: &InputSpace, kind: Kind, device: Device) -> Result<Self> {
        if !eps_pixels.is_finite() || eps_pixels < 0.0 {
            return Err(Error::parameter(
                "eps",
                format!("{eps_pixels} is not a budget; give a non-negative number of grey levels, e.g. 8 or 8/255"),
            ));
        }
        let (lo, hi) = input.bound_tensors(kind, device);
        Ok(Budget { norm, eps: input.eps_to_input(eps_pixels), eps_pixels, lo, hi })
    }

    /// Clamps to the valid pixel range, per channel.
    pub fn clip(&self, x: &Tensor) -> Tensor {
        x.maximum(&self.lo).minimum(&self.hi)
    }

    /// Projects onto the ε-ball around `x` without clipping.
    pub fn project_ball(&self, x_adv: &Tensor, x: &Tensor) -> Tensor {
        match self.norm {
            Norm::Linf => x_adv.maximum(&(x - self.eps)).minimum(&(x + self.eps)),
            Norm::L2 => {
                let delta = x_adv - x;
                let norm = per_sample_l2(&delta);
                let factor = (self.eps / norm.clamp_min(1e-12)).clamp_max(1.0);
                x + delta * factor.view([-1, 1, 1, 1])
            }
        }
    }

    /// Projects onto the ε-ball around `x` and clips to the valid pixel range.
    pub fn project(&self, x_adv: &Tensor, x: &Tensor) -> Tensor {
        self.clip(&self.project_ball(x_adv, x))
    }

    /// One ascent step from `from` along `g` of length `size`, projected onto the budget around
    /// the clean `x`: what every step rule does after choosing its direction and step size.
    pub fn step(&self, from: &Tensor, g: &Tensor, size: &Tensor, x: &Tensor) -> Tensor {
        self.project(&(from + self.ascent(g, size)), x)
    }

    /// The steepest-ascent step of length `size` (`[B]` per-sample sizes) along `g`:
    /// `size·sign(g)` for L∞, `size·g/‖g‖₂` for L2.
    pub fn ascent(&self, g: &Tensor, size: &Tensor) -> Tensor {
        let size = size.view([-1, 1, 1, 1]);
        match self.norm {
            Norm::Linf => g.sign() * size,
            Norm::L2 => g / per_sample_l2(g).clamp_min(1e-12).view([-1, 1, 1, 1]) * size,
        }
    }

    /// A random point of the ε-ball around `x` (clipped): uniform per coordinate in [−ε, ε] for
    /// L∞; a uniformly random direction with a uniform radius in [0, ε] for L2.
    pub fn random_start(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
        let n = x.numel();
        let shape = x.size();
        let b = shape[0];
        let delta = match self.norm {
            Norm::Linf => {
                let u: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..=1.0)).collect();
                Tensor::from_slice(&u).view(shape.as_slice()) * self.eps
            }
            Norm::L2 => {
                let g: Vec<f32> = (0..n).map(|_| gaussian(rng)).collect();
                let g = Tensor::from_slice(&g).view(shape.as_slice());
                let radius: Vec<f32> = (0..b).map(|_| rng.random_range(0.0f32..=1.0)).collect();
                let radius = Tensor::from_slice(&radius).view([-1, 1, 1, 1]) * self.eps;
                &g / per_sample_l2(&g).clamp_min(1e-12).view([-1, 1, 1, 1]) * radius
            }
        };
        self.project(&(x + delta.to_kind(x.kind()).to_device(x.device())), x)
    }

    /// A random point on the surface of the ε-ball around `x` (clipped), AutoAttack's APGD start:
    /// `x + ε·t/‖t‖` per sample with t uniform in [−1, 1] per coordinate for L∞ (so its largest
    /// coordinate is ±ε) and standard normal for L2.
    pub fn random_surface_start(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
        let n = x.numel();
        let shape = x.size();
        let t: Vec<f32> = match self.norm {
            Norm::Linf => (0..n).map(|_| rng.random_range(-1.0f32..=1.0)).collect(),
            Norm::L2 => (0..n).map(|_| gaussian(rng)).collect(),
        };
        let t = Tensor::from_slice(&t).view(shape.as_slice()).to_kind(x.kind()).to_device(x.device());
        let size = match self.norm {
            Norm::Linf => t.abs().flatten(1, -1).amax([1i64].as_slice(), false),
            Norm::L2 => per_sample_l2(&t),
        };
        let delta = &t / (size.view([-1, 1, 1, 1]) + 1e-12) * self.eps;
        self.clip(&(x + delta))
    }

    /// `[B]` size of each sample's perturbation in the budget's norm, in grey levels.
    pub fn perturbation(&self, x_adv: &Tensor, x: &Tensor) -> Tensor {
        let delta = (x_adv - x) / (self.eps / self.eps_pixels.max(f64::MIN_POSITIVE)).max(f64::MIN_POSITIVE);
        match self.norm {
            Norm::Linf => delta.abs().flatten(1, -1).amax([1i64].as_slice(), false),
            Norm::L2 => per_sample_l2(&delta),
        }
    }

    /// Number of input values outside the valid pixel range (beyond a 1e-4 tolerance).
    pub fn out_of_range(&self, x: &Tensor) -> i64 {
        let below = x.lt_tensor(&(&self.lo - 1e-4)).sum(Kind::Int64);
        let above = x.gt_tensor(&(&self.hi + 1e-4)).sum(Kind::Int64);
        i64::try_from(below + above).unwrap_or(i64::MAX)
    }
}

/// `[B]` Euclidean norm of each sample.
pub fn per_sample_l2(t: &Tensor) -> Tensor {
    t.flatten(1, -1).norm_scalaropt_dim(2.0, [1i64].as_slice(), false)
}

/// A standard normal draw (Box–Muller), so the only randomness source is the seeded ChaCha stream.
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn budget(norm: Norm, eps: f64) -> Budget {
        Budget::new(norm, eps, &InputSpace::reference(), Kind::Float, Device::Cpu).unwrap()
    }

    #[test]
    fn linf_projection_on_a_2x2_image() {
        // Channel 0 (B) has bounds [−104.007, 150.993]. x = 0 everywhere, ε = 8.
        let b = budget(Norm::Linf, 8.0);
        let x = Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        let mut v = vec![0f32; 12];
        v[0] = 20.0; // beyond +ε → 8
        v[1] = -3.0; // inside → −3
        v[2] = -200.0; // beyond −ε → −8
        let x_adv = Tensor::from_slice(&v).view([1, 3, 2, 2]);
        let p = Vec::<f32>::try_from(b.project(&x_adv, &x).flatten(0, -1)).unwrap();
        assert_eq!(&p[..4], &[8.0, -3.0, -8.0, 0.0]);
    }

    #[test]
    fn projection_clips_to_the_pixel_range_after_the_ball() {
        // x at the top of channel 2's range (132.32…): the ball allows +8 but the range does not.
        let b = budget(Norm::Linf, 8.0);
        let (_, hi) = InputSpace::reference().bounds();
        let x = Tensor::from_slice(&[0.0f32, 0.0, hi[2] as f32]).view([1, 3, 1, 1]);
        let p = Vec::<f32>::try_from(b.project(&(&x + 5.0), &x).flatten(0, -1)).unwrap();
        assert_eq!(p, vec![5.0, 5.0, hi[2] as f32]);
    }

    #[test]
    fn l2_projection_rescales_to_the_radius() {
        let b = budget(Norm::L2, 5.0);
        let x = Tensor::zeros([1, 3, 1, 1], (Kind::Float, Device::Cpu));
        let x_adv = Tensor::from_slice(&[6.0f32, 8.0, 0.0]).view([1, 3, 1, 1]); // norm 10 → halve
        let p = Vec::<f32>::try_from(b.project(&x_adv, &x).flatten(0, -1)).unwrap();
        assert!((p[0] - 3.0).abs() < 1e-5 && (p[1] - 4.0).abs() < 1e-5);
    }

    #[test]
    fn random_starts_stay_in_the_ball_and_repeat_for_a_seed() {
        for norm in [Norm::Linf, Norm::L2] {
            let b = budget(norm, 8.0);
            let x = Tensor::zeros([2, 3, 4, 4], (Kind::Float, Device::Cpu));
            let a = b.random_start(&x, &mut ChaCha8Rng::seed_from_u64(1));
            let again = b.random_start(&x, &mut ChaCha8Rng::seed_from_u64(1));
            assert!(a.equal(&again));
            let size = f64::try_from(b.perturbation(&a, &x).max()).unwrap();
            assert!(size <= 8.0 + 1e-4 && size > 0.0, "{norm:?}: {size}");
        }
    }

    #[test]
    fn negative_eps_is_rejected() {
        assert!(Budget::new(Norm::Linf, -1.0, &InputSpace::reference(), Kind::Float, Device::Cpu).is_err());
    }
}
