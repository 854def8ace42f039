//! Preprocessing shared by the dataset readers (docs/REFERENCE.md §1.2 steps 2–3 and train mode, §1.3):
//! OpenCV-exact resizes, horizontal flip, centred zero-pad plus crop, the B,G,R mean
//! subtraction, and the train-time augmentation draw.
//!
//! Resizes replicate `cv2.resize` (checked against OpenCV 4.5.5 and 5.0 on random inputs):
//! * nearest (`INTER_NEAREST`): source index `min(floor(dst · (1 / (out/in))), in − 1)`, the
//!   product taken in `f64` exactly as OpenCV does (so ties behave identically);
//! * bilinear on `u8` (`INTER_LINEAR`): half-pixel centres `src = (dst + 0.5)·in/out − 0.5`
//!   (computed in `f64`, rounded to `f32`), 11-bit fixed-point weights, edge clamping of the
//!   column taps, clipped row taps, and OpenCV's `((b0·(S0>>4))>>16 + (b1·(S1>>4))>>16 + 2)>>2`
//!   rounding — bit-exact with OpenCV;
//! * bilinear on `f32`: the same geometry evaluated in `f64` and rounded once (OpenCV's float
//!   path, which goes through IPP in the pip wheels, agrees to within 2 ulp on 0..255 data;
//!   up to 2·10⁻⁴ for degenerate one-pixel-wide sources).
//!
//! Train-time augmentation (docs/REFERENCE.md §1.2, train mode): scale `s = U[0,1) + 0.5`, new size
//! `(floor(h·s), floor(w·s))`; flip with probability 0.5; centred zero-pad to at least the crop
//! size; uniformly random crop offset. Padded label pixels become invalid (value 0).
use rand::Rng;

use crate::data::raw::{Dense, RawTarget};

/// The per-channel mean subtracted from every input, in B,G,R order, rounded to `f32` as the
/// reference's `np.float32` array is (docs/REFERENCE.md §1.2 step 3; inputs stay on the 0..255 scale).
pub const BGR_MEAN: [f32; 3] = [
    super::input_space::REFERENCE_BGR_MEAN[0] as f32,
    super::input_space::REFERENCE_BGR_MEAN[1] as f32,
    super::input_space::REFERENCE_BGR_MEAN[2] as f32,
];

/// Smallest random scale factor of the train-time augmentation (largest is this plus 1).
pub const MIN_SCALE: f64 = 0.5;

/// Source index that OpenCV `INTER_NEAREST` reads for each of `output` destination positions.
///
/// Returns an empty list when either size is 0.
pub fn nearest_indices(input: usize, output: usize) -> Vec<usize> {
    if input == 0 || output == 0 {
        return Vec::new();
    }
    // OpenCV forms 1/(out/in) in double and floors x·that; the same double arithmetic (rather
    // than the exact rational floor(x·in/out)) keeps every index identical to cv2.resize.
    let ifx = 1.0 / (output as f64 / input as f64);
    (0..output).map(|x| ((x as f64 * ifx).floor() as usize).min(input - 1)).collect()
}

/// Resizes every channel with OpenCV `INTER_NEAREST` to `height × width`.
pub fn resize_nearest<T: Copy>(src: &Dense<T>, height: usize, width: usize) -> Dense<T> {
    if (src.height, src.width) == (height, width) {
        return src.clone();
    }
    let rows = nearest_indices(src.height, height);
    let cols = nearest_indices(src.width, width);
    let mut data = Vec::with_capacity(src.channels * height * width);
    for c in 0..src.channels {
        for &sy in &rows {
            let row = &src.data[(c * src.height + sy) * src.width..][..src.width];
            data.extend(cols.iter().map(|&sx| row[sx]));
        }
    }
    Dense { channels: src.channels, height: rows.len(), width: cols.len(), data }
}

/// One destination position of a bilinear resize: two source taps and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    frac: f64,
}

/// Bilinear taps for `output` positions over `input` samples with half-pixel centres.
///
/// `fixed` rounds the source coordinate to `f32` first, as OpenCV's `uint8` path does (its
/// weights start from that `f32`); otherwise the coordinate stays in `f64`. `clamp` mirrors
/// OpenCV's column handling (a tap left of 0 or right of the last sample becomes the edge sample
/// with weight 1); rows are not clamped, only their indices clipped, which matters for the
/// fixed-point rounding (both taps then read the same row with weights that still sum to 2048).
fn linear_taps(input: usize, output: usize, clamp: bool, fixed: bool) -> Vec<Tap> {
    let scale = 1.0 / (output as f64 / input as f64);
    let last = input as i64 - 1;
    (0..output)
        .map(|d| {
            let pos = (d as f64 + 0.5) * scale - 0.5;
            let (mut base, mut frac) = if fixed {
                // OpenCV: fx = (float)(...); sx = floor(fx); fx -= sx — all in f32.
                let p = pos as f32;
                let b = p.floor();
                (b as i64, (p - b) as f64)
            } else {
                let b = pos.floor();
                (b as i64, pos - b)
            };
            if clamp && base < 0 {
                (base, frac) = (0, 0.0);
            }
            if clamp && base >= last {
                (base, frac) = (last, 0.0);
            }
            let clip = |i: i64| i.clamp(0, last) as usize;
            Tap { i0: clip(base), i1: clip(base + 1), frac }
        })
        .collect()
}

/// OpenCV's 11-bit weights `(round((1−f)·2048), round(f·2048))`, rounded half to even.
fn fixed_weights(f: f64) -> (i32, i32) {
    let f = f as f32;
    (((1.0 - f) * 2048.0).round_ties_even() as i32, (f * 2048.0).round_ties_even() as i32)
}

/// Resizes an 8-bit image bit-exactly like OpenCV `INTER_LINEAR` on `uint8`.
pub fn resize_bilinear_u8(src: &Dense<u8>, height: usize, width: usize) -> Dense<u8> {
    if (src.height, src.width) == (height, width) || src.height == 0 || src.width == 0 {
        return if (src.height, src.width) == (height, width) { src.clone() } else { Dense::filled(src.channels, height, width, 0) };
    }
    let cols = linear_taps(src.width, width, true, true);
    let rows = linear_taps(src.height, height, false, true);
    let mut out = Dense::filled(src.channels, height, width, 0u8);
    let mut horiz = vec![0i32; src.height * width];
    for c in 0..src.channels {
        // Horizontal pass: sums scaled by 2048.
        for y in 0..src.height {
            let row = &src.data[(c * src.height + y) * src.width..][..src.width];
            for (x, t) in cols.iter().enumerate() {
                let (a0, a1) = fixed_weights(t.frac);
                horiz[y * width + x] = row[t.i0] as i32 * a0 + row[t.i1] as i32 * a1;
            }
        }
        // Vertical pass with OpenCV's truncating shifts (>>4, >>16), then +2 >> 2.
        for (y, t) in rows.iter().enumerate() {
            let (b0, b1) = fixed_weights(t.frac);
            let (r0, r1) = (&horiz[t.i0 * width..][..width], &horiz[t.i1 * width..][..width]);
            let dst = &mut out.data[(c * height + y) * width..][..width];
            for x in 0..width {
                let v = ((b0 * (r0[x] >> 4)) >> 16) + ((b1 * (r1[x] >> 4)) >> 16) + 2;
                // OpenCV's vector path saturates; weights summing to 2049 could reach 256.
                dst[x] = (v >> 2).clamp(0, 255) as u8;
            }
        }
    }
    out
}

/// Resizes a float image like OpenCV `INTER_LINEAR` on `float32` (to within about 2 ulp).
pub fn resize_bilinear_f32(src: &Dense<f32>, height: usize, width: usize) -> Dense<f32> {
    if (src.height, src.width) == (height, width) || src.height == 0 || src.width == 0 {
        return if (src.height, src.width) == (height, width) { src.clone() } else { Dense::filled(src.channels, height, width, 0.0) };
    }
    let cols = linear_taps(src.width, width, true, false);
    let rows = linear_taps(src.height, height, false, false);
    let mut out = Dense::filled(src.channels, height, width, 0.0f32);
    let mut horiz = vec![0f64; src.height * width];
    for c in 0..src.channels {
        for y in 0..src.height {
            let row = &src.data[(c * src.height + y) * src.width..][..src.width];
            for (x, t) in cols.iter().enumerate() {
                horiz[y * width + x] = row[t.i0] as f64 * (1.0 - t.frac) + row[t.i1] as f64 * t.frac;
            }
        }
        for (y, t) in rows.iter().enumerate() {
            let (r0, r1) = (&horiz[t.i0 * width..][..width], &horiz[t.i1 * width..][..width]);
            let dst = &mut out.data[(c * height + y) * width..][..width];
            for x in 0..width {
                dst[x] = (r0[x] * (1.0 - t.frac) + r1[x] * t.frac) as f32;
            }
        }
    }
    out
}

/// Mirrors every channel left–right in place.
pub fn flip_horizontal<T>(img: &mut Dense<T>) {
    if img.width == 0 {
        return;
    }
    for row in img.data.chunks_exact_mut(img.width) {
        row.reverse();
    }
}

/// Centre-pads `src` with `fill` to at least `crop` (height, width), then cuts the `crop`
/// window whose top-left corner is `offset` in the padded canvas.
///
/// The padding puts `(pad − size) / 2` (rounded down) before the content, like the reference.
/// Offsets beyond the canvas read `fill`.
pub fn pad_and_crop<T: Copy>(src: &Dense<T>, crop: (usize, usize), offset: (usize, usize), fill: T) -> Dense<T> {
    let (ch, cw) = crop;
    let pad_top = (src.height.max(ch) - src.height) / 2;
    let pad_left = (src.width.max(cw) - src.width) / 2;
    let mut out = Dense::filled(src.channels, ch, cw, fill);
    for c in 0..src.channels {
        for y in 0..ch {
            // Canvas row y+offset.0 holds source row (y + offset.0 − pad_top) when in range.
            let Some(sy) = (y + offset.0).checked_sub(pad_top).filter(|&sy| sy < src.height) else { continue };
            let src_row = &src.data[(c * src.height + sy) * src.width..][..src.width];
            let dst_row = &mut out.data[(c * ch + y) * cw..][..cw];
            for (x, d) in dst_row.iter_mut().enumerate() {
                if let Some(sx) = (x + offset.1).checked_sub(pad_left).filter(|&sx| sx < src.width) {
                    *d = src_row[sx];
                }
            }
        }
    }
    out
}

/// Reverses the channel order (R,G,B ↔ B,G,R).
pub fn reverse_channels<T: Copy>(src: &Dense<T>) -> Dense<T> {
    let plane = src.height * src.width;
    let data = (0..src.channels).rev().flat_map(|c| src.data[c * plane..(c + 1) * plane].iter().copied()).collect();
    Dense { channels: src.channels, height: src.height, width: src.width, data }
}

/// Converts an 8-bit image to `f32` without rescaling (0..255).
pub fn to_f32(src: &Dense<u8>) -> Dense<f32> {
    Dense { channels: src.channels, height: src.height, width: src.width, data: src.data.iter().map(|&v| v as f32).collect() }
}

/// Subtracts [`BGR_MEAN`] from a 3×H×W image whose channels are B,G,R.
pub fn subtract_bgr_mean(img: &mut Dense<f32>) {
    let plane = img.height * img.width;
    for (c, &mean) in BGR_MEAN.iter().enumerate().take(img.channels) {
        for v in &mut img.data[c * plane..(c + 1) * plane] {
            *v -= mean;
        }
    }
}

/// Resizes a target and its mask with `INTER_NEAREST` (the test-mode label path).
pub fn resize_target(target: &RawTarget, height: usize, width: usize) -> RawTarget {
    RawTarget { value: resize_nearest(&target.value, height, width), valid: resize_nearest(&target.valid, height, width) }
}

/// One draw of the train-time augmentation: random scale, flip and crop offset (docs/REFERENCE.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmentation {
    /// Size (height, width) after random scaling, before padding.
    pub scaled: (usize, usize),
    /// Whether the sample is mirrored left–right.
    pub flip: bool,
    /// Top-left corner (row, column) of the crop in the centred zero-padded canvas.
    pub offset: (usize, usize),
    /// Output size (height, width).
    pub crop: (usize, usize),
}

impl Augmentation {
    /// Draws scale, flip and crop offset, in that order, for a `size` (height, width) sample.
    ///
    /// Four draws from `rng`: `U[0,1)` for the scale, `U[0,1)` for the flip (`> 0.5` flips, as
    /// in the reference), then the crop row and column offsets.
    pub fn sample<R: Rng + ?Sized>(rng: &mut R, size: (usize, usize), crop: (usize, usize)) -> Self {
        let scale = rng.random::<f64>() + MIN_SCALE;
        // Python's int() truncates; a 1-pixel floor keeps tiny inputs valid.
        let scaled = (((size.0 as f64 * scale) as usize).max(1), ((size.1 as f64 * scale) as usize).max(1));
        let flip = rng.random::<f64>() > 0.5;
        let slack_h = scaled.0.max(crop.0) - crop.0;
        let slack_w = scaled.1.max(crop.1) - crop.1;
        let offset = (rng.random_range(0..=slack_h), rng.random_range(0..=slack_w));
        Augmentation { scaled, flip, offset, crop }
    }

    /// Flips (if drawn), pads with `fill` and crops an array already resized to `scaled`.
    pub fn place<T: Copy>(&self, mut src: Dense<T>, fill: T) -> Dense<T> {
        if self.flip {
            flip_horizontal(&mut src);
        }
        pad_and_crop(&src, self.crop, self.offset, fill)
    }

    /// Nearest-resizes, flips, pads and crops a target; padded pixels are invalid with value 0.
    pub fn apply_target(&self, target: &RawTarget) -> RawTarget {
        let (h, w) = self.scaled;
        let t = resize_target(target, h, w);
        RawTarget { value: self.place(t.value, 0.0), valid: self.place(t.valid, 0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn grey(height: usize, width: usize, data: Vec<u8>) -> Dense<u8> {
        Dense { channels: 1, height, width, data }
    }

    #[test]
    fn nearest_indices_match_opencv_floor() {
        // 40 → 16: source column floor(i·40/16) = floor(2.5·i).
        let expect: Vec<usize> = (0..16).map(|i| i * 40 / 16).collect();
        assert_eq!(expect, vec![0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 30, 32, 35, 37]);
        assert_eq!(nearest_indices(40, 16), expect);
        // 16 → 40 (upsampling): floor(i·0.4) repeats each source column 2 or 3 times.
        let up = nearest_indices(16, 40);
        assert_eq!(&up[..8], &[0, 0, 0, 1, 1, 2, 2, 2]);
        assert_eq!(up[39], 15);
        // 256 → 224: 1/(224/256) = 1.142857142857142793… in double; 7 · that still floors to 8.
        let d = nearest_indices(256, 224);
        assert_eq!((d[6], d[7], d[8], d[223]), (6, 8, 9, 254));
        assert_eq!(nearest_indices(5, 5), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn resize_nearest_picks_rows_and_columns() {
        // 2×4 → 1×2: row floor(0·2) = 0, columns floor(0·2)=0, floor(1·2)=2.
        let src = grey(2, 4, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(resize_nearest(&src, 1, 2).data, vec![1, 3]);
    }

    #[test]
    fn bilinear_u8_hand_computed() {
        // Row [10, 50, 90] from 3 to 2 columns (in/out = 1.5), height 1 → 1:
        //   dst 0: src = 0.5·1.5 − 0.5 = 0.25 → taps 0,1, weights (1536, 512)
        //          H = 10·1536 + 50·512 = 40960 = 20·2048 → 20   (float: 10·0.75 + 50·0.25 = 20)
        //   dst 1: src = 1.5·1.5 − 0.5 = 1.75 → taps 1,2, weights (512, 1536)
        //          H = 50·512 + 90·1536 = 163840 = 80·2048 → 80
        //   row pass (1 → 1 row): weight (2048, 0): ((2048·(H>>4))>>16 + 2)>>2 = (H/512 + 2)>>2 = H/2048.
        let out = resize_bilinear_u8(&grey(1, 3, vec![10, 50, 90]), 1, 2);
        assert_eq!(out.data, vec![20, 80]);

        // Row [0, 100, 200, 255], 4 → 2 (exact halving): dst 0 averages 0,100 → 50;
        // dst 1 averages 200,255: H = 1024·455 = 465920; H>>4 = 29120; 2048·29120>>16 = 910;
        // (910 + 2)>>2 = 228 (227.5 rounds up).
        let out = resize_bilinear_u8(&grey(1, 4, vec![0, 100, 200, 255]), 1, 2);
        assert_eq!(out.data, vec![50, 228]);

        // Right-edge clamp: 2 → 4 columns of [0, 200]: src = (d+0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25
        // → d0 clamps to column 0 (0), d1 = 0.75·0 + 0.25·200 = 50, d2 = 150, d3 clamps to 200.
        let out = resize_bilinear_u8(&grey(1, 2, vec![0, 200]), 1, 4);
        assert_eq!(out.data, vec![0, 50, 150, 200]);
    }

    #[test]
    fn bilinear_u8_matches_opencv_fixed_point_rounding() {
        // Expected values produced by cv2.resize(src, (3, 4), interpolation=cv2.INTER_LINEAR)
        // with OpenCV 4.5.5 and 5.0 (identical). Float bilinear rounded to nearest differs at
        // [0][2] (60 instead of 59). By hand:
        //   column: src = 2.5·5/3 − 0.5 = 3.6667 → taps 3,4; f32 frac 0.66666675 → weights
        //           (round(682.6665), round(1365.3334)) = (683, 1365);
        //           H = 165·683 + 7·1365 = 122250 (row 0 holds 165, 7 at columns 3, 4)
        //   row:    src = 0.5·3/4 − 0.5 = −0.125 → base −1, frac 0.875, weights (256, 1792),
        //           both taps clipped to row 0; H>>4 = 7640;
        //           (256·7640)>>16 = 29, (1792·7640)>>16 = 208; (29 + 208 + 2)>>2 = 59.
        //   float:  165/3 + 7·2/3 = 59.667 → 60.
        let src = grey(3, 5, vec![12, 200, 83, 165, 7, 250, 31, 99, 140, 64, 5, 190, 222, 18, 77]);
        let out = resize_bilinear_u8(&src, 4, 3);
        assert_eq!(out.data, vec![75, 83, 59, 139, 93, 78, 136, 145, 77, 67, 222, 57]);
    }

    #[test]
    fn bilinear_f32_hand_computed() {
        // [0, 8, 16, 24] (4 → 3): src = (d+0.5)·4/3 − 0.5 = 1/6, 3/2, 17/6
        // → 0 + 8/6 = 1.3333, 8 + 4 = 12, 16 + 8·5/6 = 22.6667.
        let src = Dense { channels: 1, height: 1, width: 4, data: vec![0.0f32, 8.0, 16.0, 24.0] };
        let out = resize_bilinear_f32(&src, 1, 3);
        let want = [8.0f32 / 6.0, 12.0, 16.0 + 8.0 * 5.0 / 6.0];
        for (a, b) in out.data.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Vertical direction, 2 → 3 rows of [0; 30]: src = −1/6, 1/2, 7/6 → 0, 15, 30 (edges clip).
        let src = Dense { channels: 1, height: 2, width: 1, data: vec![0.0f32, 30.0] };
        let out = resize_bilinear_f32(&src, 3, 1);
        assert_eq!(out.data, vec![0.0, 15.0, 30.0]);
    }

    #[test]
    fn flip_pad_crop_known_layout() {
        let mut a = grey(2, 3, vec![1, 2, 3, 4, 5, 6]);
        flip_horizontal(&mut a);
        assert_eq!(a.data, vec![3, 2, 1, 6, 5, 4]);
        // Pad 2×3 to 4×4: top (4−2)/2 = 1, left (4−3)/2 = 0; canvas rows: 0 pad, 1–2 content, 3 pad.
        let p = pad_and_crop(&grey(2, 3, vec![1, 2, 3, 4, 5, 6]), (4, 4), (0, 0), 9);
        assert_eq!(p.data, vec![9, 9, 9, 9, 1, 2, 3, 9, 4, 5, 6, 9, 9, 9, 9, 9]);
        // No padding needed: a 2×2 crop at (1, 1) of a 3×3 image.
        let p = pad_and_crop(&grey(3, 3, (1..=9).collect()), (2, 2), (1, 1), 0);
        assert_eq!(p.data, vec![5, 6, 8, 9]);
    }

    #[test]
    fn mean_subtraction_is_bgr() {
        let mut img = Dense { channels: 3, height: 1, width: 1, data: vec![200.0f32, 200.0, 200.0] };
        subtract_bgr_mean(&mut img);
        // 200 − 104.00698793 = 95.99301207, 200 − 116.66876762 = 83.33123238, 200 − 122.67891434 = 77.32108566
        let want = [95.99301207f64, 83.33123238, 77.32108566];
        for (a, b) in img.data.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn augmentation_is_reproducible_and_in_range() {
        let draw = |seed| Augmentation::sample(&mut ChaCha8Rng::seed_from_u64(seed), (32, 40), (24, 24));
        assert_eq!(draw(3), draw(3));
        let draws: Vec<_> = (0..64).map(draw).collect();
        assert!(draws.iter().any(|a| a != &draws[0]));
        assert!(draws.iter().any(|a| a.flip) && draws.iter().any(|a| !a.flip));
        for a in &draws {
            // floor(32·[0.5, 1.5)) ∈ [16, 47], floor(40·[0.5, 1.5)) ∈ [20, 59].
            assert!((16..=47).contains(&a.scaled.0) && (20..=59).contains(&a.scaled.1), "{a:?}");
            assert!(a.offset.0 <= a.scaled.0.max(24) - 24 && a.offset.1 <= a.scaled.1.max(24) - 24);
        }
    }

    #[test]
    fn augmentation_pads_targets_as_invalid() {
        // Scaling 2×2 → 2×2, no flip, crop 4×4 at (0,0): content lands at rows 1–2, cols 1–2.
        let aug = Augmentation { scaled: (2, 2), flip: false, offset: (0, 0), crop: (4, 4) };
        let t = RawTarget {
            value: Dense { channels: 1, height: 2, width: 2, data: vec![1.0, 2.0, 3.0, 4.0] },
            valid: Dense::filled(1, 2, 2, 1u8),
        };
        let out = aug.apply_target(&t);
        assert_eq!(out.valid.data, vec![0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(out.value.at(0, 1, 1), 1.0);
        assert_eq!(out.value.at(0, 2, 2), 4.0);
        assert_eq!(out.value.at(0, 0, 0), 0.0);
        let flipped = Augmentation { flip: true, ..aug }.apply_target(&t);
        assert_eq!((flipped.value.at(0, 1, 1), flipped.value.at(0, 1, 2)), (2.0, 1.0));
    }
}
