//! One loss computation, two reductions (docs/REFERENCE.md §3.1): every task loss is a sum of per-pixel
//! terms over valid pixels divided by a per-pixel weight sum, so both the pooled batch mean
//! ("Base", used by Single/Total attacks and training) and the per-sample losses ("MTL", used by
//! GB-MTA and SignTotal) come from the same two `[B]` vectors.
use tch::Tensor;

/// Per-sample numerator and denominator of a task loss.
#[derive(Debug)]
pub struct LossParts {
    /// `[B]`: Σ over the sample's pixels of the weighted per-pixel loss.
    pub sum: Tensor,
    /// `[B]`: Σ over the sample's pixels of the per-pixel weights (valid-pixel count, or class-weight sum).
    pub weight: Tensor,
}

/// Denominators below this count as "no valid pixel"; per-pixel weights are ≥ 1e-3 in practice.
const EMPTY: f64 = 1e-12;

impl LossParts {
    /// `[B]` per-sample losses `sum_b / weight_b`; exactly 0 (not NaN) for a sample without a
    /// valid pixel, whose numerator is 0 as well (the reference divides 0 by 0, docs/REFERENCE.md §7 item 22).
    pub fn per_sample(&self) -> Tensor {
        &self.sum / self.weight.clamp_min(EMPTY)
    }

    /// The pooled batch loss `Σ_b sum_b / Σ_b weight_b` (PyTorch's `mean` reduction).
    pub fn pooled(&self) -> Tensor {
        self.sum.sum(self.sum.kind()) / self.weight.sum(self.weight.kind()).clamp_min(EMPTY)
    }

    /// `[B]` mask, 1 for samples with at least one valid pixel.
    pub fn has_pixels(&self) -> Tensor {
        self.weight.gt(EMPTY).to_kind(self.sum.kind())
    }

    /// The same parts cut from the autograd graph.
    pub fn detach(&self) -> LossParts {
        LossParts { sum: self.sum.detach(), weight: self.weight.detach() }
    }
}

/// Sums a `[B, C, H, W]` tensor to `[B]`.
pub(crate) fn per_sample_sum(t: &Tensor) -> Tensor {
    t.sum_dim_intlist([1i64, 2, 3].as_slice(), false, t.kind())
}
