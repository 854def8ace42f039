//! Times the attack-gradient designs against the reference's, on the same model and batch in one
//! run, and prints ratios (speed targets live here, never in unit tests):
//! 1. the GB-MTA direction in one backward vs T retained backwards (the reference);
//! 2. input-only gradients (`run_backward` on x) vs `backward()` through every weight (the reference).
//!
//! `cargo bench --bench passes [-- small|resnet34]`
use mtrobust::attack::{DirectionContext, DirectionSpec, Oracle};
use mtrobust::data::{Batch, InputSpace, Target};
use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
use mtrobust::task::{Task, TaskMap, TaskSet, taskonomy_tasks};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn batch(tasks: &[Task], b: i64, size: i64) -> Batch {
    tch::manual_seed(1);
    let opts = (Kind::Float, Device::Cpu);
    let x = Tensor::rand([b, 3, size, size], opts) * 255.0 - 120.0;
    let mut targets = TaskMap::new();
    for t in tasks {
        let c = if t.channels() == 3 { 3 } else { 1 };
        let value = if t.kind() == mtrobust::task::TaskKind::SegmentSemantic {
            Tensor::randint(t.channels(), [b, 1, size, size], opts)
        } else {
            Tensor::rand([b, c, size, size], opts)
        };
        targets.insert(t.kind(), Target { value, valid: Tensor::ones([b, 1, size, size], opts) });
    }
    Batch { x, targets, names: (0..b).map(|i| i.to_string()).collect() }
}

/// Median wall time of `f` over `reps` runs (after one warm-up), in milliseconds.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn main() {
    let which = std::env::args().skip(1).find(|a| a == "small" || a == "resnet34").unwrap_or_else(|| "small".into());
    let (backbone, head, b, size, reps) = match which.as_str() {
        "resnet34" => (BackboneKind::Resnet34, HeadConfig { width: 256, rates: vec![6, 12, 18, 24], dropout: 0.5 }, 2, 129, 5),
        _ => (BackboneKind::Small, BackboneKind::Small.default_head(), 8, 128, 15),
    };
    let specs = taskonomy_tasks(17);
    let config = ModelConfig { backbone, tasks: specs.clone(), layout: layout_at(5, 5, 0).unwrap(), head };
    let model = Model::new(config, InputSpace::reference(), Device::Cpu, 0).unwrap();
    let tasks: Vec<Task> = specs.iter().map(|s| Task::new(*s)).collect();
    let data = batch(&tasks, b, size);
    let oracle = Oracle::new(&model, &tasks, &data.targets).unwrap();
    let gbmta = DirectionSpec::Gbmta.build(&tasks).unwrap();
    println!("{which} backbone, 5 tasks, all-shared layout, batch {b} at {size}², {} threads; median of {reps}", tch::get_num_threads());

    // 1. GB-MTA: one backward of Σ L/sg(L) vs the reference's T backwards with retain_graph.
    let ours = time(reps, || {
        let mut ctx = DirectionContext::default();
        let _ = mtrobust::attack::direction::gradient(gbmta.as_ref(), &oracle, &data.x, &mut ctx, true);
    });
    let reference = time(reps, || {
        let x = data.x.detach().set_requires_grad(true);
        let losses = oracle.losses(&x, TaskSet::all(5)).unwrap();
        let per_task: Vec<Tensor> = losses.values().map(|p| p.per_sample()).collect();
        let scalars: Vec<Tensor> = per_task.iter().map(|l| l.mean(Kind::Float)).collect();
        let grads = oracle.gradients(&scalars, &x).unwrap();
        let _g: Tensor = grads.iter().zip(&per_task).map(|(g, l)| g / l.detach().view([-1, 1, 1, 1])).sum::<Tensor>();
    });
    println!("GB-MTA direction: one backward {ours:.1} ms, T = 5 backwards {reference:.1} ms → {:.2}× faster", reference / ours);

    // 1b. The reference exactly: T backwards with retain_graph, each also computing every weight's gradient.
    let params = model.vs.trainable_variables();
    let reference_full = time(reps, || {
        let x = data.x.detach().set_requires_grad(true);
        let losses = oracle.losses(&x, TaskSet::all(5)).unwrap();
        let per_task: Vec<Tensor> = losses.values().map(|p| p.per_sample()).collect();
        // Asking for the weights' gradients as well costs what `loss.backward()` costs.
        let inputs: Vec<&Tensor> = std::iter::once(&x).chain(params.iter()).collect();
        let mut g: Option<Tensor> = None;
        for (i, l) in per_task.iter().enumerate() {
            let grads = Tensor::run_backward(&[l.mean(Kind::Float)], &inputs, i + 1 < per_task.len(), false);
            let gi = &grads[0] / l.detach().view([-1, 1, 1, 1]);
            g = Some(g.map_or(gi.shallow_clone(), |a| a + &gi));
        }
    });
    println!(
        "GB-MTA direction as the reference computes it (T backwards with weight gradients) {reference_full:.1} ms → ours {:.2}× faster",
        reference_full / ours
    );

    // 2. Input-only gradient vs backward() through every weight (then zeroing the weight grads).
    let input_only = time(reps, || {
        let x = data.x.detach().set_requires_grad(true);
        let total: Tensor = oracle.losses(&x, TaskSet::all(5)).unwrap().values().map(|p| p.pooled()).sum();
        let _ = Tensor::run_backward(&[total], &[&x], false, false);
    });
    let all_weights = time(reps, || {
        let x = data.x.detach().set_requires_grad(true);
        let total: Tensor = oracle.losses(&x, TaskSet::all(5)).unwrap().values().map(|p| p.pooled()).sum();
        total.backward();
        for p in &params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    });
    println!(
        "Total direction: input-only gradient {input_only:.1} ms, with weight gradients {all_weights:.1} ms → {:.2}× faster",
        all_weights / input_only
    );
}
