//! Relative performance (docs/REFERENCE.md §3.4) and transferability (docs/REFERENCE.md §3.5).
//!
//! Per metric, `r = (m − m')/m` when lower is better and `(m' − m)/m` when higher is better, with
//! m the clean and m' the attacked value, so r < 0 means the attack hurt. A task's relative change is the mean of its metrics' r; the
//! paper's ARP (Eq. 10) is `−100 ×` the mean over tasks, so higher ARP = stronger attack.
//! Transferability of Single-x (Eq. 11): `(1/(n−1)) Σ_{y≠x} ARP-y / ARP-x`.
//!
//! Under `--convention reference` the arithmetic is the reference's `compute_rel`: the metrics are
//! already rounded to 4 decimals, r is computed in each metric's numpy precision (float32 for the
//! angle mean and median), a task's mean is rounded to 6 decimals and the mean over tasks to 4, so
//! ARP comes in steps of 0.01 as the reference prints it.
use crate::task::numpy::NpFloat;
use crate::task::{Convention, MetricValue, TaskKind, TaskMap};

/// The relative change of one metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricChange {
    pub name: String,
    pub clean: f64,
    pub attacked: f64,
    /// r as a fraction (negative = degradation); `None` when the clean value is 0 or not finite.
    pub relative: Option<f64>,
}

/// ARP of one attack against the clean run of the same model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Arp {
    /// Per task: every metric's change.
    pub metrics: TaskMap<Vec<MetricChange>>,
    /// Per task: ARP-x = −100 · mean r over the task's metrics.
    pub per_task: TaskMap<f64>,
    /// −100 · mean over tasks of the task means.
    pub arp: f64,
}

/// r of one metric.
pub fn relative_change(clean: f64, attacked: f64, higher_is_better: bool) -> Option<f64> {
    if clean == 0.0 || !clean.is_finite() || !attacked.is_finite() {
        return None;
    }
    let r = if higher_is_better { (attacked - clean) / clean } else { (clean - attacked) / clean };
    Some(r)
}

/// ARP of `attacked` metrics against `clean` ones (same tasks, same metric names), in standard
/// arithmetic. Metrics whose r is undefined are left out of the means and reported by name in the
/// second value.
pub fn arp(clean: &TaskMap<Vec<MetricValue>>, attacked: &TaskMap<Vec<MetricValue>>) -> (Arp, Vec<String>) {
    arp_with(clean, attacked, Convention::Standard)
}

/// [`arp`] under `convention`: `reference` rounds as the reference does (docs/REFERENCE.md §3.4).
pub fn arp_with(clean: &TaskMap<Vec<MetricValue>>, attacked: &TaskMap<Vec<MetricValue>>, convention: Convention) -> (Arp, Vec<String>) {
    let mut metrics = TaskMap::new();
    let mut per_task = TaskMap::new();
    let mut skipped = Vec::new();
    // Reference: each task's rounded mean r, as a numpy scalar.
    let mut task_means = Vec::new();
    for (task, clean_values) in clean.iter() {
        let Some(adv_values) = attacked.get(task) else { continue };
        let mut changes = Vec::new();
        let mut defined = Vec::new();
        for c in clean_values {
            let Some(a) = adv_values.iter().find(|a| a.name == c.name) else { continue };
            let relative = relative_change(c.value, a.value, c.higher_is_better);
            match relative {
                None => skipped.push(format!("{}/{}", task.short(), c.name)),
                Some(_) => defined.push((c, a)),
            }
            changes.push(MetricChange { name: c.name.clone(), clean: c.value, attacked: a.value, relative });
        }
        match convention {
            Convention::Standard => {
                let rs: Vec<f64> = changes.iter().filter_map(|m| m.relative).collect();
                if !rs.is_empty() {
                    // `+ 0.0` turns −0 (no change) into 0.
                    per_task.insert(task, -100.0 * rs.iter().sum::<f64>() / rs.len() as f64 + 0.0);
                }
            }
            Convention::Reference => {
                if let Some(mean) = reference_task_mean(&defined) {
                    task_means.push(mean);
                    per_task.insert(task, negated_percent(mean, 6));
                }
            }
        }
        metrics.insert(task, changes);
    }
    let arp = match convention {
        Convention::Standard => {
            let values: Vec<f64> = per_task.values().copied().collect();
            if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 }
        }
        Convention::Reference => {
            // `avg_acc = 0; avg_acc += <t> acc.` over tasks, then `round(avg_acc / T, 4)`.
            let sum = task_means.iter().copied().reduce(|a, b| a + b);
            sum.map_or(f64::NAN, |s| negated_percent(s.div_int(task_means.len()).round(4), 4))
        }
    };
    (Arp { metrics, per_task, arp }, skipped)
}

/// The reference's `<t> acc.` of one task from its (clean, attacked) metric pairs:
/// `tmp = 0; tmp += r` per metric in numpy arithmetic, then `round(tmp / M, 6)`.
fn reference_task_mean(pairs: &[(&MetricValue, &MetricValue)]) -> Option<NpFloat> {
    let sum = pairs
        .iter()
        .map(|(c, a)| {
            let (m, m_adv) = (c.numpy(), a.numpy());
            if c.higher_is_better { (m_adv - m) / m } else { (m - m_adv) / m }
        })
        .reduce(|tmp, r| tmp + r)?;
    Some(sum.div_int(pairs.len()).round(6))
}

/// `−100 · x` for an `x` rounded to `decimals`, as the float64 nearest to that decimal (so that
/// 0.3185 gives 31.85, not 31.850000000000005).
fn negated_percent(x: NpFloat, decimals: i32) -> f64 {
    let k = (x.get() * 10f64.powi(decimals)).round();
    // `+ 0.0` turns −0 (no change) into 0.
    -k / 10f64.powi(decimals - 2) + 0.0
}

/// Transferability of the Single-x attack: the mean over the other tasks y of ARP-y / ARP-x.
/// `None` when ARP-x is 0 or there is no other task.
pub fn transferability(single_x: &Arp, x: TaskKind) -> Option<f64> {
    let own = *single_x.per_task.get(x)?;
    let others: Vec<f64> = single_x.per_task.iter().filter(|(t, _)| *t != x).map(|(_, v)| *v).collect();
    if own == 0.0 || others.is_empty() {
        return None;
    }
    Some(others.iter().map(|v| v / own).sum::<f64>() / others.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(name: &str, value: f64, hib: bool) -> MetricValue {
        MetricValue::new(name, value, hib)
    }

    #[test]
    fn arp_by_hand() {
        // seg: mIoU 0.5 → 0.25 (r = −0.5), Pixel Acc 0.8 → 0.6 (r = −0.25) → task mean −0.375 → ARP 37.5
        // depth: abs_err 1.0 → 1.5 (lower-better, r = −0.5) → ARP 50.  Overall (37.5 + 50)/2 = 43.75.
        let clean: TaskMap<Vec<MetricValue>> = [
            (TaskKind::SegmentSemantic, vec![mv("mIoU", 0.5, true), mv("Pixel Acc", 0.8, true)]),
            (TaskKind::DepthZbuffer, vec![mv("abs_err", 1.0, false)]),
        ]
        .into_iter()
        .collect();
        let adv: TaskMap<Vec<MetricValue>> = [
            (TaskKind::SegmentSemantic, vec![mv("mIoU", 0.25, true), mv("Pixel Acc", 0.6, true)]),
            (TaskKind::DepthZbuffer, vec![mv("abs_err", 1.5, false)]),
        ]
        .into_iter()
        .collect();
        let (a, skipped) = arp(&clean, &adv);
        assert!(skipped.is_empty());
        assert!((a.per_task.get(TaskKind::SegmentSemantic).unwrap() - 37.5).abs() < 1e-9);
        assert!((a.per_task.get(TaskKind::DepthZbuffer).unwrap() - 50.0).abs() < 1e-9);
        assert!((a.arp - 43.75).abs() < 1e-9);
        // Transfer of a Single-segm attack: ARP-depth / ARP-segm = 50 / 37.5.
        assert!((transferability(&a, TaskKind::SegmentSemantic).unwrap() - 50.0 / 37.5).abs() < 1e-9);
    }

    #[test]
    fn undefined_relative_changes_are_skipped_and_named() {
        let clean: TaskMap<Vec<MetricValue>> =
            [(TaskKind::EdgeTexture, vec![mv("edge_err", 0.0, false)]), (TaskKind::Keypoints2d, vec![mv("key_err", 0.2, false)])]
                .into_iter()
                .collect();
        let adv: TaskMap<Vec<MetricValue>> =
            [(TaskKind::EdgeTexture, vec![mv("edge_err", 0.1, false)]), (TaskKind::Keypoints2d, vec![mv("key_err", 0.1, false)])]
                .into_iter()
                .collect();
        let (a, skipped) = arp(&clean, &adv);
        assert_eq!(skipped, vec!["edge/edge_err".to_string()]);
        // Only keypoints count: r = (0.2 − 0.1)/0.2 = +0.5 (the "attack" helped) → ARP −50.
        assert!((a.arp + 50.0).abs() < 1e-9);
    }

    #[test]
    fn reference_arp_rounds_task_means_to_6_and_the_average_to_4_decimals() {
        // seg: mIoU 0.3 → 0.2, r = −1/3 → round6 −0.333333 → ARP-segm 33.3333 (standard 33.333…).
        // depth: abs_err 0.2 → 0.3 (lower is better), r = −0.5 → ARP-dept 50.
        // Overall round4((−0.333333 − 0.5)/2 = −0.4166665) = −0.4167 → ARP 41.67 (standard 41.666…).
        let clean: TaskMap<Vec<MetricValue>> =
            [(TaskKind::SegmentSemantic, vec![mv("mIoU", 0.3, true)]), (TaskKind::DepthZbuffer, vec![mv("abs_err", 0.2, false)])]
                .into_iter()
                .collect();
        let adv: TaskMap<Vec<MetricValue>> =
            [(TaskKind::SegmentSemantic, vec![mv("mIoU", 0.2, true)]), (TaskKind::DepthZbuffer, vec![mv("abs_err", 0.3, false)])]
                .into_iter()
                .collect();
        let (a, skipped) = arp_with(&clean, &adv, Convention::Reference);
        assert!(skipped.is_empty());
        assert_eq!(*a.per_task.get(TaskKind::SegmentSemantic).unwrap(), 33.3333);
        assert_eq!(*a.per_task.get(TaskKind::DepthZbuffer).unwrap(), 50.0);
        assert_eq!(a.arp, 41.67);
        let (s, _) = arp(&clean, &adv);
        assert!((s.arp - 125.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn reference_arp_keeps_float32_metrics_in_float32() {
        // Angle Mean, a float32 in the reference, 16.1875 → 18.717 (lower is better). As a float32
        // 18.717 is 18.71699905…, so r = (16.1875 − 18.71699905)/16.1875 = −0.15626249 → round6
        // −0.156262 → ARP-norm 15.6262. The float64 decimals give −2.5295/16.1875 = −0.15626255 →
        // −0.156263 → 15.6263. Overall: round4(−0.156262) → 15.63.
        let clean: TaskMap<Vec<MetricValue>> =
            [(TaskKind::Normal, vec![mv("Angle Mean", 16.1875, false).in_float32()])].into_iter().collect();
        let adv: TaskMap<Vec<MetricValue>> = [(TaskKind::Normal, vec![mv("Angle Mean", 18.717, false).in_float32()])].into_iter().collect();
        let (a, _) = arp_with(&clean, &adv, Convention::Reference);
        assert_eq!(*a.per_task.get(TaskKind::Normal).unwrap(), 15.6262);
        assert_eq!(a.arp, 15.63);
        let as_float64 = |m: &TaskMap<Vec<MetricValue>>| m.map(|_, v| v.iter().map(|m| mv(&m.name, m.value, m.higher_is_better)).collect());
        let (b, _) = arp_with(&as_float64(&clean), &as_float64(&adv), Convention::Reference);
        assert_eq!(*b.per_task.get(TaskKind::Normal).unwrap(), 15.6263);
    }
}
