//! Clean quality against two baselines: an untrained model, and the best *constant* prediction
//! for each task on the same images. An untrained model's outputs are off in scale, so beating
//! it says little; a task is learnt only when a model clearly beats the constant — for the
//! mostly-background keypoint and edge maps, "predict background everywhere" is already good.
use super::view::task_name;
use crate::data::BatchSource;
use crate::error::{Error, Result};
use crate::eval::ConditionReport;
use crate::task::{Convention, MetricProfile, MetricValue, Task, TaskKind, TaskMap};
use tch::{Device, Kind, Tensor};

/// The constant each task predicts at every pixel, as its output channels (segmentation: logits).
///
/// Chosen on the labels of `data` to be the best constant for the task's metrics:
/// - segmentation: logits `log(f_c)` (class frequencies `f_c`; under the Taskonomy profile
///   `log(w_c f_c)` with the class weights, which minimises the weighted cross-entropy); the argmax
///   is the most frequent class, which maximises pixel accuracy and mIoU among constants;
/// - normals: the mean of the unit label vectors, which maximises the mean cosine similarity;
/// - depth, keypoints, edges: the median label (the lower median), which minimises the L1 errors.
///
/// # Errors
/// Unreadable data, or a task without a valid label pixel.
pub fn best_constants(tasks: &[Task], data: &dyn BatchSource, profile: MetricProfile) -> Result<TaskMap<Vec<f64>>> {
    let _guard = tch::no_grad_guard();
    let mut counts: Vec<Vec<f64>> = tasks.iter().map(|t| vec![0.0; t.channels() as usize]).collect();
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); tasks.len()];
    for b in 0..data.num_batches() {
        let batch = data.batch(b, Device::Cpu)?;
        for (i, task) in tasks.iter().enumerate() {
            let target =
                batch.targets.get(task.kind()).ok_or_else(|| Error::config(task.kind().name(), "the data has no labels for it"))?;
            let valid = target.valid.gt(0.5);
            match task.kind() {
                TaskKind::SegmentSemantic => {
                    let labels = target.value.to_kind(Kind::Int64).masked_select(&valid);
                    let c = task.channels();
                    let n = Vec::<i64>::try_from(labels.bincount::<Tensor>(None, c).to_kind(Kind::Int64)).expect("1-D counts");
                    counts[i].iter_mut().zip(n).for_each(|(a, k)| *a += k as f64);
                }
                TaskKind::Normal => {
                    let v = &target.value;
                    let unit = v / v.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Float).sqrt().clamp_min(1e-12);
                    for (c, sum) in counts[i].iter_mut().enumerate() {
                        *sum += f64::try_from(unit.select(1, c as i64).unsqueeze(1).masked_select(&valid).sum(Kind::Double)).unwrap_or(0.0);
                    }
                }
                _ => values[i].extend(Vec::<f32>::try_from(target.value.masked_select(&valid)).expect("1-D values")),
            }
        }
    }
    tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let none = || Error::config(task.kind().name(), "no valid label pixel in the data: no constant baseline");
            let constant = match task.kind() {
                TaskKind::SegmentSemantic => {
                    let single = profile == MetricProfile::Taskonomy;
                    let weights = task.class_weights.as_deref();
                    let scaled: Vec<f64> = counts[i]
                        .iter()
                        .enumerate()
                        .map(|(c, &n)| if single { n * weights.map_or(1.0, |w| w[c] as f64) } else { n })
                        .collect();
                    let total: f64 = scaled.iter().sum();
                    if total <= 0.0 {
                        return Err(none());
                    }
                    // Absent classes get a tiny probability rather than −∞ (a finite loss).
                    scaled.iter().map(|&n| (n / total).max(1e-9).ln()).collect()
                }
                TaskKind::Normal => {
                    let norm = counts[i].iter().map(|x| x * x).sum::<f64>().sqrt();
                    if norm <= 0.0 {
                        return Err(none());
                    }
                    counts[i].iter().map(|x| x / norm).collect()
                }
                _ => {
                    let v = &mut values[i];
                    if v.is_empty() {
                        return Err(none());
                    }
                    v.sort_by(f32::total_cmp);
                    vec![v[(v.len() - 1) / 2] as f64]
                }
            };
            Ok((task.kind(), constant))
        })
        .collect()
}

/// The metrics of predicting `constants` at every pixel of `data`, scored like a model's clean run.
///
/// # Errors
/// Unreadable data.
pub fn constant_metrics(
    tasks: &[Task],
    data: &dyn BatchSource,
    constants: &TaskMap<Vec<f64>>,
    profile: MetricProfile,
    convention: Convention,
) -> Result<TaskMap<Vec<MetricValue>>> {
    let _guard = tch::no_grad_guard();
    let mut metrics: Vec<_> = tasks.iter().map(|t| t.metric(profile, convention)).collect();
    for b in 0..data.num_batches() {
        let batch = data.batch(b, Device::Cpu)?;
        for (task, metric) in tasks.iter().zip(&mut metrics) {
            let target =
                batch.targets.get(task.kind()).ok_or_else(|| Error::config(task.kind().name(), "the data has no labels for it"))?;
            let (n, _, h, w) = target.value.size4().expect("targets are 4-D");
            let c = constants.get(task.kind()).expect("a constant per task");
            let pred =
                Tensor::from_slice(&c.iter().map(|&x| x as f32).collect::<Vec<_>>()).view([1, -1, 1, 1]).expand([n, -1, h, w], false);
            metric.update(&pred.contiguous(), target)?;
        }
    }
    Ok(tasks.iter().zip(&metrics).map(|(t, m)| (t.kind(), m.finish(convention))).collect())
}

/// Relative improvement of `model` over `baseline` on one metric (positive = better than the
/// baseline), as a fraction of the baseline's value.
pub fn improvement(model: &MetricValue, baseline: &MetricValue) -> f64 {
    let gain = if model.higher_is_better { model.value - baseline.value } else { baseline.value - model.value };
    gain / baseline.value.abs().max(1e-12)
}

/// The clean-quality table: one row per metric, columns untrained, constant and each model
/// (`models`: name and clean metrics), followed by a one-line summary of the smallest improvement
/// over the constant on each task's first metric.
pub fn quality_table(
    untrained: &ConditionReport,
    constant: &TaskMap<Vec<MetricValue>>,
    models: &[(String, &TaskMap<Vec<MetricValue>>)],
) -> String {
    let mut out = String::from(
        "**Clean quality on the attacked test images: untrained model, best constant prediction, each trained model**\n\n| Task | Metric | untrained | constant |",
    );
    for (name, _) in models {
        out += &format!(" {name} |");
    }
    out += "\n| :-- | :-- | --: | --: |";
    out += &" --: |".repeat(models.len());
    out.push('\n');
    let find =
        |m: &TaskMap<Vec<MetricValue>>, task: TaskKind, name: &str| m.get(task).and_then(|ms| ms.iter().find(|x| x.name == name)).cloned();
    let mut worst: Vec<(TaskKind, String, f64)> = Vec::new();
    for (task, metrics) in untrained.metrics.iter() {
        for (k, metric) in metrics.iter().enumerate() {
            let arrow = if metric.higher_is_better { "↑" } else { "↓" };
            let base = find(constant, task, &metric.name);
            out += &format!("| {} | {} {arrow} | {:.4} |", task_name(task), metric.name, metric.value);
            out += &base.as_ref().map_or(" - |".into(), |x| format!(" {:.4} |", x.value));
            let mut least = f64::INFINITY;
            for (_, m) in models {
                let v = find(m, task, &metric.name);
                out += &v.as_ref().map_or(" - |".into(), |x| format!(" {:.4} |", x.value));
                if let (Some(v), Some(b)) = (&v, &base) {
                    least = least.min(improvement(v, b));
                }
            }
            out.push('\n');
            if k == 0 && least.is_finite() {
                worst.push((task, metric.name.clone(), least));
            }
        }
    }
    if !worst.is_empty() {
        let overall = worst.iter().map(|w| w.2).fold(f64::INFINITY, f64::min);
        let parts: Vec<String> = worst.iter().map(|(t, name, r)| format!("{} {name} {:+.0} %", task_name(*t), 100.0 * r)).collect();
        let verdict = if overall > 0.0 {
            format!("every task beats the constant baseline by ≥ {:.0} % in every model", 100.0 * overall)
        } else {
            "NOT every task beats the constant baseline in every model".to_string()
        };
        out += &format!("\n*Improvement over the constant on each task's first metric, weakest model: {}; {verdict}.*\n", parts.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Batch, InMemory, Target};
    use crate::task::TaskSpec;

    fn target(values: &[f32], channels: i64, valid: &[f32]) -> Target {
        // Two samples of 2×2 pixels; `values` is sample-major, then channel, then pixel.
        Target { value: Tensor::from_slice(values).view([2, channels, 2, 2]), valid: Tensor::from_slice(valid).view([2, 1, 2, 2]) }
    }

    /// One batch of two 2×2 samples with hand-picked labels for four tasks.
    fn data() -> (Vec<Task>, InMemory) {
        let spec = |kind, channels| Task::new(TaskSpec { kind, channels });
        let tasks = vec![
            spec(TaskKind::SegmentSemantic, 3),
            spec(TaskKind::Normal, 3),
            spec(TaskKind::Keypoints2d, 1),
            spec(TaskKind::EdgeTexture, 1),
        ];
        let all = [1.0f32; 8];
        let mut targets = TaskMap::new();
        // Class counts 0: 2, 1: 4, 2: 2.
        targets.insert(TaskKind::SegmentSemantic, target(&[0., 1., 1., 2., 1., 1., 0., 2.], 1, &all));
        // Per sample three (0, 0, −2) and one (1, 0, 0): the unit vectors sum to (2, 0, −6).
        let normals = [0., 0., 0., 1., 0., 0., 0., 0., -2., -2., -2., 0.];
        targets.insert(TaskKind::Normal, target(&[normals, normals].concat(), 3, &all));
        targets.insert(TaskKind::Keypoints2d, target(&[-1., -1., -1., 1., -1., -1., 0.5, -1.], 1, &all));
        // The 1.0 is an invalid pixel and must not count.
        targets.insert(TaskKind::EdgeTexture, target(&[0.2, 0.4, 0.6, 0.8, 1.0, 0.0, -0.2, 0.3], 1, &[1., 1., 1., 1., 0., 1., 1., 1.]));
        let batch = Batch { x: Tensor::zeros([2, 3, 2, 2], (Kind::Float, Device::Cpu)), targets, names: vec!["a".into(), "b".into()] };
        (tasks, InMemory(vec![batch]))
    }

    fn value(m: &TaskMap<Vec<MetricValue>>, task: TaskKind, name: &str) -> f64 {
        m.get(task).unwrap().iter().find(|v| v.name == name).unwrap().value
    }

    #[test]
    fn best_constants_are_the_frequencies_mean_direction_and_medians() {
        let (tasks, data) = data();
        let c = best_constants(&tasks, &data, MetricProfile::Full).unwrap();
        let seg = c.get(TaskKind::SegmentSemantic).unwrap();
        for (got, want) in seg.iter().zip([0.25f64.ln(), 0.5f64.ln(), 0.25f64.ln()]) {
            assert!((got - want).abs() < 1e-12, "{seg:?}");
        }
        let n = c.get(TaskKind::Normal).unwrap();
        let r10 = 10f64.sqrt();
        assert!((n[0] - 1.0 / r10).abs() < 1e-6 && n[1].abs() < 1e-12 && (n[2] + 3.0 / r10).abs() < 1e-6, "{n:?}");
        // Keypoints: six −1, 0.5 and 1 → lower median −1. Edges: the 7 valid values sorted
        // −0.2, 0, 0.2, 0.3, 0.4, 0.6, 0.8 → median 0.3.
        assert_eq!(c.get(TaskKind::Keypoints2d).unwrap(), &vec![-1.0]);
        assert!((c.get(TaskKind::EdgeTexture).unwrap()[0] - 0.3).abs() < 1e-7);
    }

    #[test]
    fn constant_scores_match_hand_computed_metrics() {
        let (tasks, data) = data();
        let c = best_constants(&tasks, &data, MetricProfile::Taskonomy).unwrap();
        let m = constant_metrics(&tasks, &data, &c, MetricProfile::Taskonomy, Convention::Standard).unwrap();
        // CE of the class frequencies = their entropy: 2·0.25·ln 4 + 0.5·ln 2.
        assert!((value(&m, TaskKind::SegmentSemantic, "err") - (0.5 * 4f64.ln() + 0.5 * 2f64.ln())).abs() < 1e-5);
        // cos with (1, 0, −3)/√10: 3/√10 on six pixels, 1/√10 on two.
        assert!((value(&m, TaskKind::Normal, "cosine_similarity") - 20.0 / (8.0 * 10f64.sqrt())).abs() < 1e-5);
        // |y + 1|: 2 + 1.5 over 8 pixels; |y − 0.3| over the valid edges: 1.8 / 7.
        assert!((value(&m, TaskKind::Keypoints2d, "key_err") - 3.5 / 8.0).abs() < 1e-6);
        assert!((value(&m, TaskKind::EdgeTexture, "edge_err") - 1.8 / 7.0).abs() < 1e-6);
        // Full profile: class 1 everywhere is right on 4 of 8 pixels; IoU 4/8 for class 1, 0 for 0 and 2.
        let c = best_constants(&tasks, &data, MetricProfile::Full).unwrap();
        let m = constant_metrics(&tasks, &data, &c, MetricProfile::Full, Convention::Standard).unwrap();
        assert!((value(&m, TaskKind::SegmentSemantic, "Pixel Acc") - 0.5).abs() < 1e-9);
        assert!((value(&m, TaskKind::SegmentSemantic, "mIoU") - 0.5 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn improvement_is_signed_by_direction() {
        let lower = |v| MetricValue::new("err", v, false);
        let higher = |v| MetricValue::new("acc", v, true);
        assert!((improvement(&lower(0.3), &lower(0.4)) - 0.25).abs() < 1e-12);
        assert!((improvement(&higher(0.6), &higher(0.5)) - 0.2).abs() < 1e-12);
        assert!(improvement(&lower(0.5), &lower(0.4)) < 0.0);
    }
}
