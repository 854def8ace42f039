//! numpy's float arithmetic as the reference code runs it, for `--convention reference`: its angle
//! statistics are numpy `float32` reductions and its rounding and ARP arithmetic keep numpy's scalar
//! types (docs/REFERENCE.md §3.2, §3.4). Modelled on numpy ≥ 2.3; numpy ≤ 2.2 sums a long array
//! in sequential blocks of 8192 instead of one pairwise tree, which moves a float32 mean in its
//! last digits only.
use std::ops::{Add, Div, Sub};

/// Sum of a contiguous `float32` array as `np.sum` / `np.add.reduce` computes it: numpy's pairwise
/// summation (blocks of up to 128 summed with 8 interleaved accumulators, split in halves above).
pub fn sum_f32(values: &[f32]) -> f32 {
    let n = values.len();
    if n < 8 {
        // numpy starts from −0.0 so that a sum of −0.0s stays −0.0.
        return values.iter().fold(-0.0f32, |acc, &v| acc + v);
    }
    if n <= 128 {
        let mut r = [0f32; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        for block in values[8..whole].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(block) {
                *acc += v;
            }
        }
        let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        return values[whole..].iter().fold(res, |acc, &v| acc + v);
    }
    // Halve, keeping the first part a multiple of the 8-way unroll.
    let half = n / 2;
    let half = half - half % 8;
    sum_f32(&values[..half]) + sum_f32(&values[half..])
}

/// `np.mean` of a `float32` array: the float32 sum divided by the count (an `intp`, so the
/// division runs in float64 and is rounded back to float32). NaN when empty.
pub fn mean_f32(values: &[f32]) -> f32 {
    (f64::from(sum_f32(values)) / values.len() as f64) as f32
}

/// `np.median` of a `float32` array: the middle element, or for an even count the float32 mean of
/// the two middle elements (`(a + b)` rounded to float32, then halved). NaN when empty or when any
/// value is NaN. Reorders `values`.
pub fn median_f32(values: &mut [f32]) -> f32 {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let k = n / 2;
    let (below, &mut upper, _) = values.select_nth_unstable_by(k, f32::total_cmp);
    if n % 2 == 1 {
        return upper;
    }
    let lower = below.iter().copied().max_by(f32::total_cmp).expect("k ≥ 1 for an even, non-empty count");
    (f64::from(lower + upper) / 2.0) as f32
}

/// A numpy float scalar. Arithmetic follows numpy's promotion (NEP 50): float32 with float32 stays
/// float32, anything with a float64 is float64, and a Python int does not change the type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NpFloat {
    F32(f32),
    F64(f64),
}

impl NpFloat {
    /// `value` as a float32 (`value` must be a float32 number then) or a float64 scalar.
    pub fn new(value: f64, float32: bool) -> Self {
        if float32 { NpFloat::F32(value as f32) } else { NpFloat::F64(value) }
    }

    /// The value, exactly.
    pub fn get(self) -> f64 {
        match self {
            NpFloat::F32(v) => f64::from(v),
            NpFloat::F64(v) => v,
        }
    }

    /// Division by a Python int.
    pub fn div_int(self, n: usize) -> Self {
        match self {
            NpFloat::F32(v) => NpFloat::F32(v / n as f32),
            NpFloat::F64(v) => NpFloat::F64(v / n as f64),
        }
    }

    /// `round(x, decimals)` of a numpy scalar: `rint(x·10^d) / 10^d`, computed in the scalar's own
    /// precision (ties to even, after the multiplication has rounded).
    pub fn round(self, decimals: i32) -> Self {
        match self {
            NpFloat::F32(v) => {
                let f = 10f32.powi(decimals);
                NpFloat::F32((v * f).round_ties_even() / f)
            }
            NpFloat::F64(v) => NpFloat::F64(round_f64(v, decimals)),
        }
    }

    /// The numpy-rounded value as the float64 nearest to its decimal `k / 10^d`, so that it prints
    /// as the reference prints it and converts back to the same float32.
    pub fn round_decimal(self, decimals: i32) -> f64 {
        match self {
            NpFloat::F32(v) => {
                let k = (v * 10f32.powi(decimals)).round_ties_even();
                f64::from(k) / 10f64.powi(decimals)
            }
            NpFloat::F64(v) => round_f64(v, decimals),
        }
    }

    fn combine(self, other: Self, f32_op: fn(f32, f32) -> f32, f64_op: fn(f64, f64) -> f64) -> Self {
        match (self, other) {
            (NpFloat::F32(a), NpFloat::F32(b)) => NpFloat::F32(f32_op(a, b)),
            (a, b) => NpFloat::F64(f64_op(a.get(), b.get())),
        }
    }
}

/// numpy's `round` of a float64: `rint(x·10^d) / 10^d`.
pub fn round_f64(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round_ties_even() / f
}

impl Add for NpFloat {
    type Output = NpFloat;
    fn add(self, other: Self) -> Self {
        self.combine(other, |a, b| a + b, |a, b| a + b)
    }
}

impl Sub for NpFloat {
    type Output = NpFloat;
    fn sub(self, other: Self) -> Self {
        self.combine(other, |a, b| a - b, |a, b| a - b)
    }
}

impl Div for NpFloat {
    type Output = NpFloat;
    fn div(self, other: Self) -> Self {
        self.combine(other, |a, b| a / b, |a, b| a / b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_groups_as_numpy() {
        // Below 8 values: left to right from −0.0. 2^24 + 1 + 1 in float32 loses both ones.
        let big = 16_777_216f32;
        assert_eq!(sum_f32(&[big, 1.0, 1.0]), big);
        assert!(sum_f32(&[-0.0, -0.0]).is_sign_negative());
        // 2^24 and fifteen ones: accumulators r0 = 2^24 + 1 → 2^24 (ties to even), r1..r7 = 1 + 1 = 2;
        // ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) = (2^24 + 2 + 4) + 8 = 2^24 + 14.
        let mut v = vec![1f32; 16];
        v[0] = big;
        assert_eq!(sum_f32(&v), big + 14.0);
        // A sequential float32 sum loses every one.
        assert_eq!(v.iter().fold(0f32, |a, &b| a + b), big);
        // The mean follows the pairwise sum: (2^24 + 14)/16 = 2^20 + 0.875.
        assert_eq!(f64::from(mean_f32(&v)), 1_048_576.875);
        // 130 values split 64 + 66.
        assert_eq!(sum_f32(&[1.0; 130]), 130.0);
        assert!(mean_f32(&[]).is_nan());
    }

    #[test]
    fn median_takes_the_middle_or_the_float32_mean_of_the_middle_pair() {
        assert_eq!(median_f32(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median_f32(&mut [4.0, 1.0, 2.0, 10.0]), 3.0);
        // Middle pair 1 and 2^24 + 2: their exact mean 2^23 + 1.5 is not a float32; numpy's float32
        // sum 2^24 + 3 rounds to 2^24 + 4 (ties to even), halved 2^23 + 2.
        let b = 16_777_216f32;
        assert_eq!(median_f32(&mut [1e9, b + 2.0, 0.0, 1.0]), 8_388_610.0);
        assert!(median_f32(&mut [1.0, f32::NAN, 2.0]).is_nan());
        assert!(median_f32(&mut []).is_nan());
    }

    #[test]
    fn rounding_follows_the_scalar_type() {
        // float32(16.23695) = 16.236949920654297: exact rounding gives 16.2369, but numpy multiplies
        // in float32 first — 162369.49920… rounds to the float32 162369.5, which rint takes to the
        // even 162370 → 16.237.
        let x = NpFloat::F32(16.23695);
        assert_eq!(x.round_decimal(4), 16.237);
        assert_eq!(x.round(4), NpFloat::F32(16.237));
        assert_eq!(NpFloat::F64(f64::from(16.23695f32)).round(4), NpFloat::F64(16.2369));
        // Ties go to even: 0.78125 · 10^4 = 7812.5 exactly → 7812.
        assert_eq!(round_f64(0.78125, 4), 0.7812);
        // 0.78145 is stored a little below, but ·10^4 rounds to the tie 7814.5 → 7814, as numpy gives.
        assert_eq!(round_f64(0.78145, 4), 0.7814);
    }

    #[test]
    fn arithmetic_promotes_like_numpy() {
        // float32: (3 − 1e-8) stays 3 (1e-8 is below half an ulp), float64 keeps the difference.
        let three = NpFloat::F32(3.0);
        assert_eq!(three - NpFloat::F32(1e-8), NpFloat::F32(3.0));
        assert_eq!(three - NpFloat::F64(1e-8), NpFloat::F64(3.0 - 1e-8));
        assert_eq!(NpFloat::F32(1.0) / NpFloat::F32(3.0), NpFloat::F32(1.0f32 / 3.0));
        assert_eq!(NpFloat::F32(1.0).div_int(3), NpFloat::F32(1.0f32 / 3.0));
        assert_eq!(NpFloat::F64(1.0).div_int(3), NpFloat::F64(1.0 / 3.0));
        assert_eq!(NpFloat::F32(0.5) + NpFloat::F64(0.25), NpFloat::F64(0.75));
    }
}
