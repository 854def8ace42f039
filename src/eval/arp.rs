//! Relative performance (docs/REFERENCE.md §3.4) and transferability (docs/REFERENCE.md §3.5).
//!
//! Per metric, `r = (m − m')/m` when lower is better and `(m' − m)/m` when higher is better, with
//! m the clean and m' the attacked value, so r < 0 means the attack hurt. A task's relative change is the mean of its metrics' r; the
//! paper's ARP (Eq. 10) is `−100 ×` the mean over tasks, so higher ARP = stronger attack.
//! Transferability of Single-x (Eq. 11): `(1/(n−1)) Σ_{y≠x} ARP-y / ARP-x`.
use crate::task::{MetricValue, TaskKind, TaskMap};

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

/// ARP of `attacked` metrics against `clean` ones (same tasks, same metric names).
/// Metrics whose r is undefined are left out of the means and reported by name in the second value.
pub fn arp(clean: &TaskMap<Vec<MetricValue>>, attacked: &TaskMap<Vec<MetricValue>>) -> (Arp, Vec<String>) {
    let mut metrics = TaskMap::new();
    let mut per_task = TaskMap::new();
    let mut skipped = Vec::new();
    for (task, clean_values) in clean.iter() {
        let Some(adv_values) = attacked.get(task) else { continue };
        let mut changes = Vec::new();
        for c in clean_values {
            let Some(a) = adv_values.iter().find(|a| a.name == c.name) else { continue };
            let relative = relative_change(c.value, a.value, c.higher_is_better);
            if relative.is_none() {
                skipped.push(format!("{}/{}", task.short(), c.name));
            }
            changes.push(MetricChange { name: c.name.clone(), clean: c.value, attacked: a.value, relative });
        }
        let rs: Vec<f64> = changes.iter().filter_map(|m| m.relative).collect();
        if !rs.is_empty() {
            // `+ 0.0` turns −0 (no change) into 0.
            per_task.insert(task, -100.0 * rs.iter().sum::<f64>() / rs.len() as f64 + 0.0);
        }
        metrics.insert(task, changes);
    }
    let values: Vec<f64> = per_task.values().copied().collect();
    let arp = if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 };
    (Arp { metrics, per_task, arp }, skipped)
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
}
