//! Training: learning, bit-exact resume, batch-norm statistics across eval-mode attacks, FAT.
use super::*;

fn on<'a>(tasks: &'a [Task], data: &'a dyn SampleSource) -> TrainData<'a> {
    TrainData { tasks, samples: data, validation: None, eval_options: EvalOptions::default() }
}
use crate::attack::DirectionSpec;
use crate::attack::{EarlyStop, Pgd, Rule};
use crate::data::{InMemorySamples, RawSample};
use crate::observe::Silent;
use crate::testutil::{random_batch, small_model, tasks_of, three_tasks};
use tch::{Device, Kind, Tensor};

/// Random batches unstacked into raw samples, so the trainer can draw from them.
fn samples(n: i64, size: i64, seed: u64) -> InMemorySamples {
    let specs = three_tasks();
    let b = random_batch(&specs, n, size, seed, Kind::Float);
    let to_dense = |t: &Tensor| {
        let s = t.size();
        crate::data::Dense {
            channels: s[0] as usize,
            height: s[1] as usize,
            width: s[2] as usize,
            data: Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(),
        }
    };
    let raw = (0..n)
        .map(|i| RawSample {
            name: format!("s{i}"),
            input: to_dense(&b.x.get(i)),
            targets: specs
                .iter()
                .map(|s| {
                    let t = b.targets.get(s.kind).unwrap();
                    let valid = to_dense(&t.valid.get(i));
                    let valid = crate::data::Dense {
                        channels: 1,
                        height: valid.height,
                        width: valid.width,
                        data: valid.data.iter().map(|&v| v as u8).collect(),
                    };
                    (s.kind, crate::data::RawTarget { value: to_dense(&t.value.get(i)), valid })
                })
                .collect(),
        })
        .collect::<Vec<RawSample>>();
    InMemorySamples { samples: raw, tasks: specs.iter().map(|s| s.kind).collect() }
}

fn weights(m: &crate::model::Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn the_loss_decreases_on_a_fixed_batch() {
    let specs = three_tasks();
    let mut model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let data = samples(2, 32, 5);
    let mut cfg = TrainConfig::new(3, 40, 2);
    cfg.lr = 0.02;
    cfg.log_every = 40;
    let first = {
        let mut c = cfg.clone();
        c.steps = 1;
        c.log_every = 1;
        let dir = tempfile::tempdir().unwrap();
        let mut m = small_model(&specs, 9, 1);
        train(&mut m, on(&tasks, &data), &c, RunDir { path: dir.path(), restart: false }, None, &mut Silent).unwrap().last_loss.unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let s = train(&mut model, on(&tasks, &data), &cfg, RunDir { path: dir.path(), restart: false }, None, &mut Silent).unwrap();
    let last = s.last_loss.unwrap();
    for (k, v) in last.iter() {
        assert!(*v < 0.8 * first.get(k).unwrap(), "{k}: {} → {v}", first.get(k).unwrap());
    }
    // The run directory holds an ordinary checkpoint with identical outputs.
    let (reloaded, sidecar) = crate::model::Model::load(&dir.path().join("model.safetensors"), Device::Cpu).unwrap();
    assert!(sidecar.provenance.is_some());
    let x = data.samples(&[(0, 0)], Device::Cpu).unwrap().x;
    let _guard = tch::no_grad_guard();
    let (a, b) = (model.forward_t(&x, false).unwrap(), reloaded.forward_t(&x, false).unwrap());
    for (k, t) in a.iter() {
        assert!(t.equal(b.get(k).unwrap()), "{k}");
    }
    assert!(std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap().lines().count() >= 1);
}

#[test]
fn attacks_in_the_middle_of_training_leave_batch_norm_statistics_alone() {
    let specs = three_tasks();
    let mut model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let data = samples(2, 32, 5);
    let stats = |m: &crate::model::Model| -> Vec<(String, Tensor)> {
        weights(m).into_iter().filter(|(n, _)| n.contains("running_")).map(|(n, t)| (n, t.copy())).collect()
    };
    let before = stats(&model);
    let batch = data.samples(&[(0, 0), (1, 0)], Device::Cpu).unwrap();
    let attack = Attack::new(AttackConfig { rule: Rule::Pgd(Pgd { n_iter: 2, ..Pgd::default() }), ..Default::default() }).unwrap();
    attack.run(&model, &tasks, &batch, BatchContext::at(0)).unwrap();
    for ((n, a), (_, b)) in before.iter().zip(stats(&model).iter()) {
        assert!(a.equal(b), "{n} moved during an eval-mode attack");
    }
    // One adversarial training step updates the running statistics (train mode).
    let mut cfg = TrainConfig::new(3, 1, 2);
    cfg.adversarial = Some(AdversarialTraining { attack: attack.config.clone(), clean_weight: 0.0, tau_start: None });
    let dir = tempfile::tempdir().unwrap();
    train(&mut model, on(&tasks, &data), &cfg, RunDir { path: dir.path(), restart: false }, None, &mut Silent).unwrap();
    let moved = before.iter().zip(stats(&model).iter()).filter(|((_, a), (_, b))| !a.equal(b)).count();
    assert_eq!(moved, before.len(), "every running statistic moves in a train-mode step");
}

#[test]
fn friendly_early_stopping_ends_pgd_once_every_sample_is_adversarial() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    let run = |tau: usize, threshold: f64| {
        let cfg = AttackConfig {
            rule: Rule::Pgd(Pgd { n_iter: 10, early_stop: Some(EarlyStop { tau, threshold }), ..Pgd::default() }),
            direction: DirectionSpec::Total,
            ..Default::default()
        };
        Attack::new(cfg).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap()
    };
    // Threshold −1: every sample is adversarial at the clean point. τ = 0 → no step at all.
    let out = run(0, -1.0);
    assert!(out.x_adv.equal(&batch.x));
    assert_eq!((out.counts.forward, out.counts.backward), (1, 1));
    // τ = 3 → exactly three steps, then the loop ends (4 evaluations: x_0..x_3).
    let out = run(3, -1.0);
    assert_eq!(out.counts.forward, 4);
    // An unreachable threshold never stops: the full 10 steps.
    assert_eq!(run(0, 1e9).counts.forward, 10);
    // FAT with a τ schedule: τ grows from 0 to 20 over 100 steps.
    let mut tc = TrainConfig::new(3, 100, 2);
    let rule = Rule::Pgd(Pgd { n_iter: 20, early_stop: Some(EarlyStop { tau: 20, threshold: 0.5 }), ..Pgd::default() });
    tc.adversarial =
        Some(AdversarialTraining { attack: AttackConfig { rule, ..Default::default() }, clean_weight: 0.0, tau_start: Some(0) });
    let tau = |s| match tc.attack_at(s).unwrap().rule {
        Rule::Pgd(Pgd { early_stop: Some(e), .. }) => e.tau,
        other => panic!("{other:?}"),
    };
    assert_eq!((tau(0), tau(50), tau(99)), (0, 10, 19));
}

#[test]
fn a_nan_loss_blames_the_learning_rate_only_after_an_update() {
    let task = &tasks_of(&three_tasks())[2];
    // At the first step of a session the loss comes before any update: weights or data are at fault.
    let first = diverged(task, f64::NAN, 40, 40).to_string();
    assert!(first.contains("depth_zbuffer loss") && first.contains("is NaN at step 40") && first.contains("not the cause"), "{first}");
    assert!(!first.contains("lower the learning rate"), "{first}");
    let later = diverged(task, f64::INFINITY, 41, 40).to_string();
    assert!(later.contains("diverged at step 41") && later.contains("became inf") && later.contains("lower the learning rate"), "{later}");
}

#[test]
fn resuming_keeps_the_log_up_to_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let line = |step: usize| serde_json::to_string(&LogLine { step, lr: 0.1, loss: None, val: None, seconds: 1.0 }).unwrap();
    // Steps 2 and 4 logged, then a kill -9 while writing step 6's line.
    std::fs::write(&path, format!("{}\n{}\n{{\"step\":6,\"lr", line(2), line(4))).unwrap();
    truncate_log(&path, 4).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n{}\n", line(2), line(4)));
    truncate_log(&path, 3).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", line(2)));
    truncate_log(&path, 0).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    truncate_log(&dir.path().join("none.jsonl"), 0).unwrap();
}

#[test]
fn a_foreign_model_in_the_run_directory_is_not_overwritten() {
    let data = samples(4, 32, 1);
    let specs = three_tasks();
    let tasks = tasks_of(&specs);
    let dir = tempfile::tempdir().unwrap();
    let foreign = small_model(&specs, 9, 7);
    foreign.save(&dir.path().join("model.safetensors"), None).unwrap();
    let before = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let cfg = TrainConfig::new(3, 1, 2);
    let mut model = small_model(&specs, 9, 1);
    let err = train(&mut model, on(&tasks, &data), &cfg, RunDir { path: dir.path(), restart: false }, None, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("no checkpoints/") && err.to_string().contains("restart (--restart) to replace it"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("model.safetensors")).unwrap(), before);
    // A batch larger than the data is refused, not drawn with repeats.
    let big = TrainConfig::new(3, 1, 5);
    let err = train(&mut model, on(&tasks, &data), &big, RunDir { path: dir.path(), restart: true }, None, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("larger than the 4 training samples"), "{err}");
    // --restart replaces the foreign model.
    train(&mut model, on(&tasks, &data), &cfg, RunDir { path: dir.path(), restart: true }, None, &mut Silent).unwrap();
    assert_ne!(std::fs::read(dir.path().join("model.safetensors")).unwrap(), before);
}
