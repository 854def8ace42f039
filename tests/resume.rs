//! A training run interrupted after a few steps and resumed from its checkpoint ends with exactly
//! the weights of an uninterrupted run — with dropout, Adam and augmented data. This file holds a
//! single test on purpose: cargo runs each test binary alone, and libtorch's CPU kernels are only
//! bit-reproducible while one thread issues ops at a time.
use mtrobust::data::synth::export::{SynthOptions, write_dataset};
use mtrobust::data::{InputSpace, Loader, Mode, Sizes, open};
use mtrobust::eval::EvalOptions;
use mtrobust::model::{BackboneKind, Model, ModelConfig, layout_at};
use mtrobust::observe::{Event, Observer, Silent};
use mtrobust::task::taskonomy_tasks;
use mtrobust::train::{OptimizerKind, RunDir, TrainConfig, TrainData, train};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Tensor};

/// Raises the cancel flag once `after` steps are done.
struct StopAfter<'a> {
    after: u64,
    flag: &'a AtomicBool,
}

impl Observer for StopAfter<'_> {
    fn event(&mut self, e: Event) {
        if let Event::Progress { done, .. } = e
            && done >= self.after
        {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

fn weights(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    write_dataset(&root, &SynthOptions { n: 24, size: 32, seed: 2, test_fraction: 0.25 }, &mut Silent).unwrap();
    let loader = || {
        let ds = open(&root, "train", Mode::Train, Sizes::default()).unwrap();
        let specs = taskonomy_tasks(ds.reader.seg_classes() as i64);
        let tasks = ds.tasks_for(&specs).unwrap();
        (Loader::new(ds, specs.iter().map(|s| s.kind).collect(), 4, None).unwrap(), tasks, specs)
    };
    let model = |seed: u64| {
        let (_, _, specs) = loader();
        let mut head = BackboneKind::Small.default_head();
        head.dropout = 0.3;
        let config = ModelConfig { backbone: BackboneKind::Small, tasks: specs, layout: layout_at(5, 5, 9).unwrap(), head };
        Model::new(config, InputSpace::reference(), Device::Cpu, seed).unwrap()
    };
    let mut cfg = TrainConfig::new(5, 6, 4);
    cfg.optimizer.kind = OptimizerKind::Adam;
    cfg.lr = 1e-3;
    cfg.checkpoint_every = 4;
    cfg.seed = 11;

    let (data, tasks, _) = loader();
    let straight_dir = tmp.path().join("straight");
    let mut straight = model(3);
    train(&mut straight, on(&tasks, &data), &cfg, RunDir { path: &straight_dir, restart: false }, None, &mut Silent).unwrap();

    let dir = tmp.path().join("interrupted");
    let flag = AtomicBool::new(false);
    let mut first = model(3);
    let s = train(
        &mut first,
        on(&tasks, &data),
        &cfg,
        RunDir { path: &dir, restart: false },
        Some(&flag),
        &mut StopAfter { after: 3, flag: &flag },
    )
    .unwrap();
    assert!(s.interrupted);
    assert_eq!(s.steps, 3);
    // A new process starts from a new model: different initial weights on purpose.
    let mut resumed = model(99);
    let s = train(&mut resumed, on(&tasks, &data), &cfg, RunDir { path: &dir, restart: false }, None, &mut Silent).unwrap();
    assert_eq!((s.resumed_from, s.steps, s.interrupted), (3, 6, false));
    for ((na, a), (nb, b)) in weights(&straight).iter().zip(weights(&resumed).iter()) {
        assert_eq!(na, nb);
        assert!(a.equal(b), "{na} differs after resuming");
    }
    // Another configuration in the same directory is refused.
    let mut other = cfg.clone();
    other.lr = 2e-3;
    let err = train(&mut model(3), on(&tasks, &data), &other, RunDir { path: &dir, restart: false }, None, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
}

fn on<'a>(tasks: &'a [mtrobust::task::Task], data: &'a dyn mtrobust::data::SampleSource) -> TrainData<'a> {
    TrainData { tasks, samples: data, validation: None, eval_options: EvalOptions::default() }
}
