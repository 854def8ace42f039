//! Per-pixel regression tasks (depth, keypoints, edges): masked L1 loss (docs/REFERENCE.md §3.1), the depth
//! metrics abs/rel error and δ < 1.25^k, and the single L1 errors Taskonomy reports (docs/REFERENCE.md §3.2).
use super::Target;
use super::loss::{LossParts, per_sample_sum};
use super::vocabulary::{Convention, MetricValue};
use tch::{Kind, Tensor};

/// Per-pixel `|z − y|` over valid pixels.
pub fn loss(pred: &Tensor, target: &Target) -> LossParts {
    let err = (pred - &target.value).abs() * &target.valid;
    LossParts { sum: per_sample_sum(&err), weight: per_sample_sum(&target.valid) }
}

/// What a regression metric reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegressionReport {
    /// abs_err, rel_err, sigma_1.25, sigma_1.25^2, sigma_1.25^3 (NYUv2 depth).
    DepthFull,
    /// One mean absolute error under the given name (Taskonomy: abs_err, key_err, edge_err).
    L1(&'static str),
}

/// Dataset-level L1 statistics, δ counts, and their batch-weighted reference variants.
#[derive(Debug, Clone)]
pub struct RegressionMetric {
    report: RegressionReport,
    convention: Convention,
    /// Pooled Σ|z−y|, Σ|z−y|/y, valid pixel count.
    abs: f64,
    rel: f64,
    count: f64,
    /// Reference: Σ_b n_b·abs_b, Σ_b n_b·rel_b, Σ_b n_b.
    batch: (f64, f64, f64),
    within: [f64; 3],
}

impl RegressionMetric {
    /// An empty accumulator.
    pub fn new(report: RegressionReport, convention: Convention) -> Self {
        RegressionMetric { report, convention, abs: 0.0, rel: 0.0, count: 0.0, batch: (0.0, 0.0, 0.0), within: [0.0; 3] }
    }

    /// Adds a batch; `pred` is at label resolution already.
    pub fn update(&mut self, pred: &Tensor, target: &Target) {
        let n = pred.size()[0] as f64;
        let valid = target.valid.gt(0.5);
        let z = pred.masked_select(&valid).to_kind(Kind::Double);
        let y = target.value.masked_select(&valid).to_kind(Kind::Double);
        let count = z.numel() as f64;
        if count == 0.0 {
            return;
        }
        let diff = (&z - &y).abs();
        let abs = f64::try_from(diff.sum(Kind::Double)).unwrap_or(f64::NAN);
        self.abs += abs;
        self.count += count;
        let rel = if self.report == RegressionReport::DepthFull {
            f64::try_from((&diff / &y).sum(Kind::Double)).unwrap_or(f64::NAN)
        } else {
            0.0
        };
        self.rel += rel;
        self.batch.0 += n * abs / count;
        self.batch.1 += n * rel / count;
        self.batch.2 += n;
        if self.report == RegressionReport::DepthFull {
            let ratio = (&z / &y).maximum(&(&y / &z));
            let counted = match self.convention {
                // Standard: a non-positive prediction is never within a ratio threshold.
                Convention::Standard => ratio.shallow_clone().masked_fill(&z.le(0.0), f64::INFINITY),
                // Reference: a negative ratio counts as within (docs/REFERENCE.md §7 item 21).
                Convention::Reference => ratio,
            };
            for (k, slot) in self.within.iter_mut().enumerate() {
                let thr = 1.25f64.powi(k as i32 + 1);
                *slot += f64::try_from(counted.le(thr).sum(Kind::Double)).unwrap_or(0.0);
            }
        }
    }

    /// The metrics over everything added so far.
    pub fn finish(&self) -> Vec<MetricValue> {
        let (abs, rel) = match self.convention {
            Convention::Standard => (self.abs / self.count, self.rel / self.count),
            Convention::Reference => (self.batch.0 / self.batch.2, self.batch.1 / self.batch.2),
        };
        match self.report {
            RegressionReport::L1(name) => vec![MetricValue::new(name, abs, false)],
            RegressionReport::DepthFull => {
                let pct = |k: usize| 100.0 * self.within[k] / self.count;
                vec![
                    MetricValue::new("abs_err", abs, false),
                    MetricValue::new("rel_err", rel, false),
                    MetricValue::new("sigma_1.25", pct(0), true),
                    MetricValue::new("sigma_1.25^2", pct(1), true),
                    MetricValue::new("sigma_1.25^3", pct(2), true),
                ]
            }
        }
    }
}
