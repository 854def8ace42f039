//! A random batch for timing: inputs inside the valid pixel range and random labels for every
//! task (timings do not depend on the values). The unit tests use the same batches, with some
//! pixels marked invalid.
use crate::data::{Batch, InputSpace, Target};
use crate::task::{TaskKind, TaskMap, TaskSpec};
use tch::{Device, Kind, Tensor};

/// `b` random float inputs of `(height, width)` pixels with labels for `specs`, on `device`.
pub fn random_batch(specs: &[TaskSpec], input: &InputSpace, b: i64, hw: (i64, i64), device: Device, seed: u64) -> Batch {
    random_batch_with(specs, input, b, hw, (Kind::Float, device), seed, 0.0)
}

/// [`random_batch`] in `kind`, with about `invalid` of the label pixels marked invalid (and zeroed).
pub fn random_batch_with(
    specs: &[TaskSpec],
    input: &InputSpace,
    b: i64,
    (h, w): (i64, i64),
    (kind, device): (Kind, Device),
    seed: u64,
    invalid: f64,
) -> Batch {
    let _rng = crate::rng::torch_rng(seed);
    let opts = (kind, device);
    let (lo, hi) = input.bound_tensors(kind, device);
    let x = &lo + (&hi - &lo) * Tensor::rand([b, 3, h, w], opts);
    let mut targets = TaskMap::new();
    for s in specs {
        let value = match s.kind {
            TaskKind::SegmentSemantic => Tensor::randint(s.channels, [b, 1, h, w], opts),
            TaskKind::Normal => Tensor::randn([b, 3, h, w], opts),
            _ => Tensor::rand([b, s.channels, h, w], opts) + 0.1,
        };
        let target = if invalid > 0.0 {
            let valid = Tensor::rand([b, 1, h, w], opts).gt(invalid).to_kind(kind);
            Target { value: value * &valid, valid }
        } else {
            Target { value, valid: Tensor::ones([b, 1, h, w], opts) }
        };
        targets.insert(s.kind, target);
    }
    Batch { x, targets, names: (0..b).map(|i| format!("sample{i}")).collect() }
}
