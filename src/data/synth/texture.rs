//! Procedural albedo patterns (solid, checkers, stripes, value noise) and colour helpers.
//!
//! Patterns are evaluated at surface coordinates `(u, v)` in metres. Besides the albedo they
//! return a small *region id*: checkers and stripes alternate between region 0 and 1, so the
//! edge labels can mark albedo boundaries exactly; noise is smooth and always region 0.

/// Texture layout of a material.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Pattern {
    Solid,
    /// Square cells of side `scale`.
    Checker {
        scale: f32,
    },
    /// Bands of width `scale` across the direction `(cos, sin)` in the (u, v) plane.
    Stripes {
        scale: f32,
        cos: f32,
        sin: f32,
    },
    /// Two-octave value noise with feature size `scale`, blending `base` into `alt`.
    Noise {
        scale: f32,
        seed: u32,
    },
}

/// A Lambertian material: linear-RGB albedos in [0, 1] and a pattern that mixes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Material {
    pub base: [f32; 3],
    pub alt: [f32; 3],
    pub pattern: Pattern,
}

impl Material {
    /// Albedo and region id at surface coordinates `(u, v)`.
    pub fn albedo(&self, u: f32, v: f32) -> ([f32; 3], u8) {
        let pick = |k: i64| {
            if k.rem_euclid(2) == 0 { (self.base, 0) } else { (self.alt, 1) }
        };
        match self.pattern {
            Pattern::Solid => (self.base, 0),
            Pattern::Checker { scale } => pick((u / scale).floor() as i64 + (v / scale).floor() as i64),
            Pattern::Stripes { scale, cos, sin } => pick(((u * cos + v * sin) / scale).floor() as i64),
            Pattern::Noise { scale, seed } => {
                let n = fbm(u / scale, v / scale, seed);
                (mix(self.base, self.alt, n), 0)
            }
        }
    }
}

/// Linear blend `a + (b - a)·t`.
pub(super) fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// HSV (all in [0, 1]) to RGB.
pub(super) fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = (h - h.floor()) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i as i32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Integer lattice hash → [0, 1). A fixed avalanche mix, so textures are identical everywhere.
fn lattice(i: i32, j: i32, seed: u32) -> f32 {
    let mut h = (i as u32).wrapping_mul(0x8da6_b343) ^ (j as u32).wrapping_mul(0xd816_3841) ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297a_2d39);
    h ^= h >> 15;
    (h >> 8) as f32 / (1u32 << 24) as f32
}

/// Smooth value noise in [0, 1] (bilinear lattice values with smoothstep weights).
fn value_noise(x: f32, y: f32, seed: u32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (i, j) = (xf as i32, yf as i32);
    let (fx, fy) = (x - xf, y - yf);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let a = lattice(i, j, seed);
    let b = lattice(i + 1, j, seed);
    let c = lattice(i, j + 1, seed);
    let d = lattice(i + 1, j + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Two octaves of value noise, in [0, 1].
pub(super) fn fbm(x: f32, y: f32, seed: u32) -> f32 {
    0.65 * value_noise(x, y, seed) + 0.35 * value_noise(2.03 * x + 17.3, 2.03 * y - 5.1, seed ^ 0x9e37)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_alternates_between_neighbouring_cells() {
        let m = Material { base: [1.0; 3], alt: [0.0; 3], pattern: Pattern::Checker { scale: 0.5 } };
        assert_eq!(m.albedo(0.25, 0.25), ([1.0; 3], 0));
        assert_eq!(m.albedo(0.75, 0.25), ([0.0; 3], 1));
        assert_eq!(m.albedo(-0.25, 0.25), ([0.0; 3], 1));
        assert_eq!(m.albedo(0.75, 0.75), ([1.0; 3], 0));
    }

    #[test]
    fn noise_is_bounded_and_continuous() {
        let mut prev = fbm(0.0, 0.3, 7);
        for k in 1..2000 {
            let x = k as f32 * 0.001;
            let n = fbm(x, 0.3, 7);
            assert!((0.0..=1.0).contains(&n));
            assert!((n - prev).abs() < 0.02, "jump at {x}");
            prev = n;
        }
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [1.0, 0.0, 0.0]);
        assert_eq!(hsv(0.5, 1.0, 1.0), [0.0, 1.0, 1.0]);
        assert_eq!(hsv(0.5, 0.0, 0.5), [0.5, 0.5, 0.5]);
    }
}
