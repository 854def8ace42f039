//! Surface normals: loss `1 − cos(n̂, ĝ)` over valid pixels and the angle metrics (mean, median,
//! % within 11.25°/22.5°/30°) or Taskonomy's mean cosine similarity (docs/REFERENCE.md §3.1–3.2).
use super::Target;
use super::loss::{LossParts, per_sample_sum};
use super::numpy;
use super::vocabulary::{Convention, MetricValue};
use tch::{Kind, Tensor};

/// `[B,1,H,W]` cosine between the normalised prediction and the normalised label (0 where
/// either is the zero vector, as `F.normalize` + `CosineSimilarity` give in the reference).
pub fn cosine(pred: &Tensor, label: &Tensor) -> Tensor {
    let unit = |t: &Tensor| t / t.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-12);
    (unit(pred) * unit(label)).sum_dim_intlist([1i64].as_slice(), true, pred.kind())
}

/// The cosine as the reference's metric computes it: `F.normalize` of both vectors, then PyTorch's
/// `CosineSimilarity(dim=1, eps=1e-8)`, which normalises them again (libtorch's own kernel, so
/// the float32 arithmetic is the reference's to the last bit; about half of the pixels differ
/// from [`cosine`] in their last bits).
pub fn reference_cosine(pred: &Tensor, label: &Tensor) -> Tensor {
    let unit = |t: &Tensor| t / t.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-12);
    Tensor::cosine_similarity(&unit(pred), &unit(label), 1, 1e-8).unsqueeze(1)
}

/// Per-pixel `(1 − cos)` over valid pixels (the mean of which is `1 − mean cos`).
pub fn loss(pred: &Tensor, target: &Target) -> LossParts {
    let cos = cosine(pred, &target.value);
    LossParts { sum: per_sample_sum(&((1.0 - cos) * &target.valid)), weight: per_sample_sum(&target.valid) }
}

/// Histogram resolution of the angle median (standard convention), in degrees.
const BIN_DEG: f64 = 0.001;
const BINS: i64 = (180.0 / BIN_DEG) as i64;

/// Dataset-level angle statistics. Under `standard` they are accumulated in float64 with the
/// median from a 0.001° histogram (bounded memory whatever the split, for every attack of a run).
/// Under `reference` every valid pixel's float32 angle (or cosine, for `single`) is kept, as the
/// reference concatenates them (67 M floats, 268 MB, for NYUv2's test split), for its float32 mean
/// and exact median.
#[derive(Debug, Clone)]
pub struct NormalMetric {
    convention: Convention,
    single: bool,
    count: f64,
    sum_angle: f64,
    sum_cos: f64,
    within: [f64; 3],
    histogram: Vec<i64>,
    /// Reference: the float32 angles (cosines for `single`) in dataset order.
    pixels: Vec<f32>,
}

const THRESHOLDS: [f64; 3] = [11.25, 22.5, 30.0];

/// A pixel's angle in degrees as the reference computes it from its clipped cosine:
/// `np.arccos(cos) / np.pi * 180.0`, every step in float32 (docs/REFERENCE.md §3.2).
pub fn reference_angle(cos: f32) -> f32 {
    cos.acos() / std::f32::consts::PI * 180.0
}

impl NormalMetric {
    /// An empty accumulator; `single` selects Taskonomy's `cosine_similarity`.
    pub fn new(convention: Convention, single: bool) -> Self {
        let histogram = !single && convention == Convention::Standard;
        NormalMetric {
            convention,
            single,
            count: 0.0,
            sum_angle: 0.0,
            sum_cos: 0.0,
            within: [0.0; 3],
            histogram: if histogram { vec![0; BINS as usize] } else { Vec::new() },
            pixels: Vec::new(),
        }
    }

    /// Adds a batch; `pred` is at label resolution already.
    pub fn update(&mut self, pred: &Tensor, target: &Target) {
        let valid = target.valid.gt(0.5);
        if self.convention == Convention::Reference {
            let cos = reference_cosine(pred, &target.value).to_kind(Kind::Float).clamp(-1.0, 1.0).masked_select(&valid);
            let cos = Vec::<f32>::try_from(cos.to_device(tch::Device::Cpu)).expect("a 1-D float tensor");
            self.count += cos.len() as f64;
            if self.single {
                self.pixels.extend(cos);
                return;
            }
            let start = self.pixels.len();
            self.pixels.extend(cos.into_iter().map(reference_angle));
            for (slot, thr) in self.within.iter_mut().zip(THRESHOLDS) {
                *slot += self.pixels[start..].iter().filter(|&&a| f64::from(a) <= thr).count() as f64;
            }
            return;
        }
        let cos = cosine(pred, &target.value).clamp(-1.0, 1.0).masked_select(&valid).to_kind(Kind::Double);
        self.count += cos.numel() as f64;
        if cos.numel() == 0 {
            return;
        }
        self.sum_cos += f64::try_from(cos.sum(Kind::Double)).unwrap_or(f64::NAN);
        if self.single {
            return;
        }
        let angle = cos.acos() * (180.0 / std::f64::consts::PI);
        self.sum_angle += f64::try_from(angle.sum(Kind::Double)).unwrap_or(f64::NAN);
        for (slot, thr) in self.within.iter_mut().zip(THRESHOLDS) {
            *slot += f64::try_from(angle.le(thr).sum(Kind::Double)).unwrap_or(0.0);
        }
        let bins = (angle / BIN_DEG).floor().clamp(0.0, (BINS - 1) as f64).to_kind(Kind::Int64);
        let counts = bins.bincount::<Tensor>(None, BINS).to_device(tch::Device::Cpu).to_kind(Kind::Int64);
        let counts = Vec::<i64>::try_from(&counts).expect("bincount is a 1-D int64 tensor");
        for (h, c) in self.histogram.iter_mut().zip(counts) {
            *h += c;
        }
    }

    /// The metrics over everything added so far (both conventions pool all pixels of the dataset,
    /// as the reference does for normals; they differ in precision and in the median).
    pub fn finish(&self) -> Vec<MetricValue> {
        let n = self.count;
        let reference = self.convention == Convention::Reference;
        if self.single {
            if reference {
                let cos = MetricValue::new("cosine_similarity", f64::from(numpy::mean_f32(&self.pixels)), true);
                return vec![cos.in_float32()];
            }
            return vec![MetricValue::new("cosine_similarity", self.sum_cos / n, true)];
        }
        let (mean, median) = if reference {
            let mean = MetricValue::new("Angle Mean", f64::from(numpy::mean_f32(&self.pixels)), false);
            let median = numpy::median_f32(&mut self.pixels.clone());
            (mean.in_float32(), MetricValue::new("Angle Median", f64::from(median), false).in_float32())
        } else {
            (
                MetricValue::new("Angle Mean", self.sum_angle / n, false),
                MetricValue::new("Angle Median", histogram_median(&self.histogram, BIN_DEG), false),
            )
        };
        // The reference's `np.mean(angles <= t) * 100`: the fraction first (the last bit can decide a
        // 4-decimal tie).
        let pct = |k: usize| if reference { self.within[k] / n * 100.0 } else { 100.0 * self.within[k] / n };
        vec![
            mean,
            median,
            MetricValue::new("Angle 11.25", pct(0), true),
            MetricValue::new("Angle 22.5", pct(1), true),
            MetricValue::new("Angle 30", pct(2), true),
        ]
    }
}

/// The median of the values binned in `hist` (bin i covers [i·w, (i+1)·w), represented by its
/// centre); for an even count the two middle values are averaged, as numpy does.
fn histogram_median(hist: &[i64], width: f64) -> f64 {
    let total: i64 = hist.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    // The value of the element of 0-based rank `rank` in sorted order.
    let at_rank = |rank: i64| {
        let mut seen = 0i64;
        for (i, &c) in hist.iter().enumerate() {
            seen += c;
            if seen > rank {
                return (i as f64 + 0.5) * width;
            }
        }
        unreachable!("rank < total")
    };
    if total % 2 == 1 { at_rank(total / 2) } else { (at_rank(total / 2 - 1) + at_rank(total / 2)) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_metric_normalises_twice() {
        // One pixel each, [1, 3, 1, 1] float32: what PyTorch 2.11 gives for
        // CosineSimilarity(dim=1, eps=1e-8)(F.normalize(p), F.normalize(g)) (the reference's metric)
        // and for (F.normalize(p) * F.normalize(g)).sum(1), which differ in the last bit.
        let pixel = |v: [f32; 3]| Tensor::from_slice(&v).view([1, 3, 1, 1]);
        let bits = |t: Tensor| f32::try_from(t.flatten(0, -1).get(0)).unwrap().to_bits();
        let cases = [
            ([0.7f32, -1.3, 2.7], [193.0f32, 41.0, 105.0], 0x3f07f6e3, 0x3f07f6e2),
            ([0.7, -1.3, 4.5], [193.0, 41.0, 115.0], 0x3f0dd8f5, 0x3f0dd8f4),
        ];
        for (p, g, twice, once) in cases {
            assert_eq!(bits(reference_cosine(&pixel(p), &pixel(g))), twice, "{p:?}");
            assert_eq!(bits(cosine(&pixel(p), &pixel(g))), once, "{p:?}: the standard convention normalises once");
        }
        // A zero vector still gives 0.
        assert_eq!(bits(reference_cosine(&pixel([0.0; 3]), &pixel([1.0, 2.0, 3.0]))), 0);
    }

    #[test]
    fn histogram_median_uses_bin_centres_and_averages_the_middle_pair() {
        // bins of width 1: one value in bin 0, one in bin 2, one in bin 5 → median = centre of bin 2
        assert_eq!(histogram_median(&[1, 0, 1, 0, 0, 1], 1.0), 2.5);
        // four values in bins 0, 1, 3, 3 → (1.5 + 3.5) / 2
        assert_eq!(histogram_median(&[1, 1, 0, 2], 1.0), 2.5);
        assert!(histogram_median(&[0, 0], 1.0).is_nan());
    }
}
