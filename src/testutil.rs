//! Helpers shared by the unit tests: a small branched model and a random multi-task batch.
use crate::data::{Batch, InputSpace};
use crate::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
use crate::task::{Task, TaskKind, TaskSpec};
use tch::{Device, Kind};

/// Segmentation (4 classes), normals, depth: a 3-task list for quick tests.
pub fn three_tasks() -> Vec<TaskSpec> {
    vec![
        TaskSpec { kind: TaskKind::SegmentSemantic, channels: 4 },
        TaskSpec { kind: TaskKind::Normal, channels: 3 },
        TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 },
    ]
}

/// The tasks of a spec list, without class weights.
pub fn tasks_of(specs: &[TaskSpec]) -> Vec<Task> {
    specs.iter().map(|s| Task::new(*s)).collect()
}

/// A small-backbone model with layout `index` of TreeMTL's enumeration and narrow heads.
pub fn small_model(specs: &[TaskSpec], index: usize, seed: u64) -> Model {
    let config = ModelConfig {
        backbone: BackboneKind::Small,
        tasks: specs.to_vec(),
        layout: layout_at(specs.len(), 5, index).unwrap(),
        head: HeadConfig { width: 8, rates: vec![1, 2], dropout: 0.0 },
    };
    Model::new(config, InputSpace::reference(), Device::Cpu, seed).unwrap()
}

/// A random batch of `b` inputs of `size²` pixels inside the valid pixel range, with random
/// labels for every task and about 10 % invalid pixels.
pub fn random_batch(specs: &[TaskSpec], b: i64, size: i64, seed: u64, kind: Kind) -> Batch {
    crate::bench::random_batch_with(specs, &InputSpace::reference(), b, (size, size), (kind, Device::Cpu), seed, 0.1)
}

/// Sets every weight of `task`'s head to NaN: anything that reads that head turns NaN.
pub fn poison_head(model: &Model, task: TaskKind) {
    let _guard = tch::no_grad_guard();
    let prefix = format!("heads.{}.", task.name());
    for (name, mut v) in model.vs.variables() {
        if name.starts_with(&prefix) {
            let _ = v.fill_(f64::NAN);
        }
    }
}
