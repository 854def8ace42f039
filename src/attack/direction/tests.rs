//! Directions against per-task input gradients computed independently (one fresh forward and
//! one backward per task).
use super::*;
use crate::attack::oracle::Oracle;
use crate::data::Batch;
use crate::model::Model;
use crate::task::Task;
use crate::testutil::{poison_head, random_batch, small_model, tasks_of, three_tasks};
use tch::{Kind, Tensor};

struct Setup {
    model: Model,
    tasks: Vec<Task>,
    batch: Batch,
}

fn setup(kind: Kind) -> Setup {
    let specs = three_tasks();
    let mut model = small_model(&specs, 9, 21);
    model.set_kind(kind).unwrap();
    Setup { tasks: tasks_of(&specs), batch: random_batch(&specs, 3, 32, 22, kind), model }
}

/// ∇_x of Σ_b L_{t,b} (per-sample reduction) or of the pooled loss, for task `id`, from a fresh
/// forward, plus the per-sample losses.
fn task_gradient(s: &Setup, id: usize, pooled: bool) -> (Tensor, Tensor) {
    let oracle = Oracle::new(&s.model, &s.tasks, &s.batch.targets).unwrap();
    let x = s.batch.x.detach().set_requires_grad(true);
    let parts = oracle.losses(&x, TaskSet::single(id)).unwrap();
    let p = parts.get(s.tasks[id].kind()).unwrap();
    let scalar = if pooled { p.pooled() } else { p.per_sample().sum(Kind::Double) };
    (oracle.gradients(&[scalar], &x).unwrap().pop().unwrap(), p.per_sample().detach())
}

fn gradient_of(s: &Setup, spec: &str, reduction: Reduction) -> (Tensor, crate::attack::PassCounts) {
    let oracle = Oracle::new(&s.model, &s.tasks, &s.batch.targets).unwrap();
    let dir = spec.parse::<DirectionSpec>().unwrap().build(&s.tasks).unwrap();
    let mut ctx = DirectionContext { reduction, ..Default::default() };
    let (_, g) = gradient(dir.as_ref(), &oracle, &s.batch.x, &mut ctx, true).unwrap();
    (g, oracle.counts())
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let num = f64::try_from((a - b).abs().max()).unwrap();
    let den = f64::try_from(b.abs().max()).unwrap();
    assert!(den > 0.0, "reference gradient is all zero");
    num / den
}

#[test]
fn gbmta_in_one_backward_equals_the_sum_of_normalised_task_gradients() {
    let s = setup(Kind::Float);
    let mut want: Option<Tensor> = None;
    for id in 0..3 {
        let (g, l) = task_gradient(&s, id, false);
        let term = g / l.view([-1, 1, 1, 1]);
        want = Some(match want {
            Some(w) => w + term,
            None => term,
        });
    }
    let (got, counts) = gradient_of(&s, "gbmta", Reduction::PerSample);
    let err = rel_err(&got, &want.unwrap());
    assert!(err <= 1e-4, "max relative error {err:e}");
    assert_eq!(counts, crate::attack::PassCounts { forward: 1, backward: 1 });
}

#[test]
fn total_weighted_and_sign_total_combine_task_gradients() {
    let s = setup(Kind::Double);
    let g: Vec<Tensor> = (0..3).map(|id| task_gradient(&s, id, false).0).collect();
    let (total, c) = gradient_of(&s, "total", Reduction::PerSample);
    assert!(rel_err(&total, &(&g[0] + &g[1] + &g[2])) < 1e-10);
    assert_eq!((c.forward, c.backward), (1, 1));
    let (weighted, _) = gradient_of(&s, "weighted:depth=2,segm=0.5", Reduction::PerSample);
    assert!(rel_err(&weighted, &(&g[0] * 0.5 + &g[2] * 2.0)) < 1e-10);
    let (signs, c) = gradient_of(&s, "sign-total", Reduction::PerSample);
    assert!(signs.equal(&(g[0].sign() + g[1].sign() + g[2].sign())));
    assert_eq!((c.forward, c.backward), (1, 3), "one shared forward, one backward per task");
    // Pooled reduction: the reference's `mean` losses.
    let gp: Vec<Tensor> = (0..3).map(|id| task_gradient(&s, id, true).0).collect();
    let (pooled, _) = gradient_of(&s, "total", Reduction::Pooled);
    assert!(rel_err(&pooled, &(&gp[0] + &gp[1] + &gp[2])) < 1e-10);
}

#[test]
fn single_task_direction_only_runs_that_tasks_path() {
    let s = setup(Kind::Float);
    let (single, c) = gradient_of(&s, "single:normal", Reduction::PerSample);
    let (want, _) = task_gradient(&s, 1, false);
    assert!(rel_err(&single, &want) < 1e-6);
    assert_eq!((c.forward, c.backward), (1, 1));
    poison_head(&s.model, TaskKind::SegmentSemantic);
    poison_head(&s.model, TaskKind::DepthZbuffer);
    let (poisoned, _) = gradient_of(&s, "single:normal", Reduction::PerSample);
    assert!(poisoned.equal(&single), "other heads must not influence Single-normal");
}

#[test]
fn direction_names_parse_and_round_trip() {
    for text in ["single:segment_semantic", "total", "sign-total", "gbmta", "weighted:segment_semantic=0.5,depth_zbuffer=2"] {
        assert_eq!(text.parse::<DirectionSpec>().unwrap().to_string(), text);
    }
    assert_eq!("single:segm".parse::<DirectionSpec>().unwrap(), DirectionSpec::Single(TaskKind::SegmentSemantic));
    let err = |s: &str| s.parse::<DirectionSpec>().unwrap_err().to_string();
    assert!(err("sum").contains("not a direction"));
    assert!(err("weighted:segm").contains("task=weight"));
    assert!(err("weighted:segm=x").contains("not a number"));
    assert!(err("single:sky").contains("unknown task"));
    let tasks = tasks_of(&three_tasks());
    let e = "single:keyp".parse::<DirectionSpec>().unwrap().build(&tasks).err().unwrap().to_string();
    assert!(e.contains("no `keypoints2d` task"), "{e}");
}

#[test]
fn gbmta_ignores_tasks_without_valid_pixels_instead_of_producing_nan() {
    let mut s = setup(Kind::Float);
    // Sample 0 has no valid depth pixel.
    let depth = s.batch.targets.get_mut(TaskKind::DepthZbuffer).unwrap();
    let _ = depth.valid.get(0).fill_(0.0);
    let (g, _) = gradient_of(&s, "gbmta", Reduction::PerSample);
    assert!(bool::try_from(g.isfinite().all()).unwrap());
    let (want0, _) = {
        let mut acc: Option<Tensor> = None;
        for id in 0..2 {
            let (gt, l) = task_gradient(&s, id, false);
            let t = gt / l.view([-1, 1, 1, 1]);
            acc = Some(match acc {
                Some(a) => a + t,
                None => t,
            });
        }
        (acc.unwrap(), ())
    };
    assert!(rel_err(&g.get(0), &want0.get(0)) < 1e-4, "sample 0 is driven by segmentation and normals only");
}

#[test]
fn all_directions_their_names_colours_and_order_come_from_one_place() {
    let kinds = [TaskKind::SegmentSemantic, TaskKind::DepthZbuffer];
    let all = DirectionSpec::all(&kinds);
    let names: Vec<String> = all.iter().map(DirectionSpec::display_name).collect();
    assert_eq!(names, ["Single-Segm", "Single-Dept", "Total", "SignTotal", "GB-MTA"]);
    // Sorted by rank: Single-x in Taskonomy order, then Total, SignTotal, GB-MTA, weighted last.
    let mut shuffled = vec![DirectionSpec::Gbmta, DirectionSpec::Weighted(vec![(TaskKind::Normal, 1.0)]), DirectionSpec::Total];
    shuffled.extend(all.iter().take(2).rev().cloned());
    shuffled.sort_by_key(DirectionSpec::rank);
    assert_eq!(shuffled[..3], [all[0].clone(), all[1].clone(), DirectionSpec::Total]);
    assert!(matches!(shuffled[4], DirectionSpec::Weighted(_)));
    // Every direction of a five-task model has its own colour.
    let five = DirectionSpec::all(&TaskKind::ALL);
    let mut colours: Vec<[u8; 3]> = five.iter().map(DirectionSpec::colour).collect();
    colours.sort();
    colours.dedup();
    assert_eq!(colours.len(), five.len());
}
