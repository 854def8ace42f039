//! Semantic segmentation: cross-entropy with an ignore mask and optional class weights
//! (Taskonomy's `semseg_prior_factor`), and the confusion-matrix metrics mIoU / pixel accuracy
//! (docs/REFERENCE.md §3.1–3.2).
use super::Target;
use super::loss::{LossParts, per_sample_sum};
use super::vocabulary::{Convention, MetricValue};
use tch::{Kind, Tensor};

/// Per-pixel `−w_y · log softmax(z)[y]` over valid pixels, weights `w_y · valid`.
pub fn loss(logits: &Tensor, target: &Target, class_weights: Option<&[f32]>) -> LossParts {
    let logp = logits.log_softmax(1, logits.kind());
    let label = target.value.to_kind(Kind::Int64);
    let nll = -logp.gather(1, &label, false); // [B,1,h,w]
    let w = pixel_weights(&label, &target.valid, class_weights);
    LossParts { sum: per_sample_sum(&(nll * &w)), weight: per_sample_sum(&w) }
}

/// `[B,1,H,W]` per-pixel weights: the class weight of the label (1 without weights) times validity.
fn pixel_weights(label: &Tensor, valid: &Tensor, class_weights: Option<&[f32]>) -> Tensor {
    match class_weights {
        None => valid.shallow_clone(),
        Some(cw) => {
            let table = Tensor::from_slice(cw).to_device(label.device());
            table.index_select(0, &label.flatten(0, -1)).view_as(valid) * valid
        }
    }
}

/// Dataset-level confusion matrix → mIoU and pixel accuracy; or Taskonomy's weighted-CE `err`.
#[derive(Debug, Clone)]
pub struct SegMetric {
    classes: usize,
    convention: Convention,
    single: bool,
    class_weights: Option<Vec<f32>>,
    /// rows = ground truth, columns = prediction.
    confusion: Vec<i64>,
    /// Reference pixel accuracy / err: Σ_b n_b·value_b and Σ_b n_b.
    batch_weighted: (f64, f64),
    /// Standard err: Σ w·nll and Σ w over the dataset.
    pooled: (f64, f64),
}

impl SegMetric {
    /// An empty accumulator; `single` selects Taskonomy's one-metric variant (`err`).
    pub fn new(classes: usize, convention: Convention, single: bool, class_weights: Option<Vec<f32>>) -> Self {
        SegMetric {
            classes,
            convention,
            single,
            class_weights,
            confusion: vec![0; classes * classes],
            batch_weighted: (0.0, 0.0),
            pooled: (0.0, 0.0),
        }
    }

    /// Adds a batch; `logits` are at label resolution already.
    pub fn update(&mut self, logits: &Tensor, target: &Target) {
        let n = logits.size()[0] as f64;
        let label = target.value.to_kind(Kind::Int64);
        if self.single {
            let logp = logits.log_softmax(1, logits.kind());
            let w = pixel_weights(&label, &target.valid, self.class_weights.as_deref());
            let num = f64::try_from((-logp.gather(1, &label, false) * &w).sum(Kind::Double)).unwrap_or(f64::NAN);
            let den = f64::try_from(w.sum(Kind::Double)).unwrap_or(0.0);
            self.pooled.0 += num;
            self.pooled.1 += den;
            if den > 0.0 {
                self.batch_weighted.0 += n * num / den;
                self.batch_weighted.1 += n;
            }
            return;
        }
        let pred = logits.argmax(1, true);
        let valid = target.valid.gt(0.5);
        let c = self.classes as i64;
        let pairs = (label * c + pred).masked_select(&valid);
        let counts = pairs.bincount::<Tensor>(None, c * c).to_device(tch::Device::Cpu).to_kind(Kind::Int64);
        let counts = Vec::<i64>::try_from(&counts).expect("bincount is a 1-D int64 tensor");
        let (mut hit, mut all) = (0i64, 0i64);
        for (i, v) in counts.iter().enumerate() {
            self.confusion[i] += v;
            all += v;
            if i / self.classes == i % self.classes {
                hit += v;
            }
        }
        if all > 0 {
            self.batch_weighted.0 += n * hit as f64 / all as f64;
            self.batch_weighted.1 += n;
        }
    }

    /// The metrics over everything added so far.
    pub fn finish(&self) -> Vec<MetricValue> {
        if self.single {
            let err = match self.convention {
                Convention::Standard => self.pooled.0 / self.pooled.1,
                Convention::Reference => self.batch_weighted.0 / self.batch_weighted.1,
            };
            return vec![MetricValue::new("err", err, false)];
        }
        let c = self.classes;
        let at = |i: usize, j: usize| self.confusion[i * c + j] as f64;
        let mut ious = Vec::new();
        for k in 0..c {
            let tp = at(k, k);
            let gt: f64 = (0..c).map(|j| at(k, j)).sum();
            let pr: f64 = (0..c).map(|i| at(i, k)).sum();
            let union = gt + pr - tp;
            let keep = match self.convention {
                // Standard: every class that occurs in ground truth or prediction counts, with IoU 0 if missed.
                Convention::Standard => union > 0.0,
                // Reference: classes without a true positive are dropped (docs/REFERENCE.md §7 item 20).
                Convention::Reference => tp > 0.0,
            };
            if keep {
                ious.push(tp / union);
            }
        }
        let miou = if ious.is_empty() { f64::NAN } else { ious.iter().sum::<f64>() / ious.len() as f64 };
        let acc = match self.convention {
            Convention::Standard => {
                let all: f64 = self.confusion.iter().map(|&v| v as f64).sum();
                (0..c).map(|k| at(k, k)).sum::<f64>() / all
            }
            Convention::Reference => self.batch_weighted.0 / self.batch_weighted.1,
        };
        vec![MetricValue::new("mIoU", miou, true), MetricValue::new("Pixel Acc", acc, true)]
    }
}
