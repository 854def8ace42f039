//! A random batch for timing: inputs inside the valid pixel range and random labels for every
//! task (timings do not depend on the values).
use crate::data::{Batch, InputSpace, Target};
use crate::task::{TaskKind, TaskMap, TaskSpec};
use tch::{Device, Kind, Tensor};

/// `b` random inputs of `(height, width)` pixels with labels for `specs`, on `device`.
pub fn random_batch(specs: &[TaskSpec], input: &InputSpace, b: i64, (h, w): (i64, i64), device: Device, seed: u64) -> Batch {
    let _rng = crate::rng::torch_rng(seed);
    let opts = (Kind::Float, device);
    let (lo, hi) = input.bound_tensors(Kind::Float, device);
    let x = &lo + (&hi - &lo) * Tensor::rand([b, 3, h, w], opts);
    let mut targets = TaskMap::new();
    for s in specs {
        let value = match s.kind {
            TaskKind::SegmentSemantic => Tensor::randint(s.channels, [b, 1, h, w], opts),
            TaskKind::Normal => Tensor::randn([b, 3, h, w], opts),
            _ => Tensor::rand([b, s.channels, h, w], opts) + 0.1,
        };
        let valid = Tensor::ones([b, 1, h, w], opts);
        targets.insert(s.kind, Target { value, valid });
    }
    Batch { x, targets, names: (0..b).map(|i| format!("bench{i}")).collect() }
}
