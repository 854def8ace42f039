//! Comparing models from their reports alone: the clean accuracy of each model with its relative
//! cost against a baseline model (the paper's Table 13: what adversarial training costs), and the
//! ARP of every attack on every model (Table 3: what it buys).
use super::RunRecord;
use super::table::align;
use crate::eval::arp;

/// Renders both comparison tables; `records[0]` is the baseline.
pub fn render(records: &[(String, RunRecord)]) -> String {
    let Some((_, base)) = records.first() else { return String::new() };
    let base_clean = &base.evaluation.clean.metrics;
    // Clean accuracy.
    let metrics: Vec<(crate::task::TaskKind, String, bool)> =
        base_clean.iter().flat_map(|(t, ms)| ms.iter().map(move |m| (t, m.name.clone(), m.higher_is_better))).collect();
    let mut rows = Vec::new();
    let mut header = vec!["model".to_string()];
    header.extend(metrics.iter().map(|(t, n, hib)| format!("{}/{n} {}", t.short(), if *hib { "↑" } else { "↓" })));
    header.push("cost %".into());
    rows.push(header);
    for (name, r) in records {
        let clean = &r.evaluation.clean.metrics;
        let mut row = vec![name.clone()];
        row.extend(metrics.iter().map(|(t, n, _)| {
            clean.get(*t).and_then(|ms| ms.iter().find(|m| &m.name == n)).map_or("-".into(), |m| format!("{:.4}", m.value))
        }));
        // The relative accuracy drop against the baseline, as ARP treats an attack.
        let (cost, _) = arp(base_clean, clean);
        row.push(format!("{:.2}", cost.arp));
        rows.push(row);
    }
    let mut out = String::from("clean accuracy (cost % = average relative drop against the first model)\n");
    out += &align(&rows, 1);
    // ARP per attack.
    let mut labels: Vec<String> = Vec::new();
    for (_, r) in records {
        for a in &r.evaluation.attacked {
            if !labels.contains(&a.label) {
                labels.push(a.label.clone());
            }
        }
    }
    if !labels.is_empty() {
        let mut rows = Vec::new();
        let mut header = vec!["model".to_string()];
        header.extend(labels.iter().cloned());
        rows.push(header);
        for (name, r) in records {
            let mut row = vec![name.clone()];
            row.extend(labels.iter().map(|l| {
                r.evaluation
                    .attacked
                    .iter()
                    .find(|a| &a.label == l)
                    .and_then(|a| a.arp.as_ref())
                    .map_or("-".into(), |a| format!("{:.2}", a.arp))
            }));
            rows.push(row);
        }
        out += "\nARP % under attack (each model against its own clean run)\n";
        out += &align(&rows, 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{ConditionReport, EvalOptions, Evaluation};
    use crate::task::{MetricValue, TaskKind, TaskMap};

    fn record(miou: f64, abs: f64) -> RunRecord {
        let metrics: TaskMap<Vec<MetricValue>> = [
            (TaskKind::SegmentSemantic, vec![MetricValue::new("mIoU", miou, true)]),
            (TaskKind::DepthZbuffer, vec![MetricValue::new("abs_err", abs, false)]),
        ]
        .into_iter()
        .collect();
        let clean = ConditionReport {
            label: "clean".into(),
            attack: None,
            samples: 1,
            metrics,
            losses: TaskMap::new(),
            objective: None,
            counts: None,
            checks: None,
            arp: None,
            ensemble: None,
        };
        let e = Evaluation { options: EvalOptions::default(), clean, attacked: Vec::new(), warnings: Vec::new() };
        RunRecord::new("cpu".into(), "m".into(), "small".into(), "d".into(), 0.0, e)
    }

    #[test]
    fn accuracy_cost_is_the_relative_drop_against_the_baseline() {
        // mIoU 0.5 → 0.4 (r = −0.2), abs_err 1.0 → 1.2 (r = −0.2): cost 20 %.
        let out = render(&[("clean".into(), record(0.5, 1.0)), ("fat".into(), record(0.4, 1.2))]);
        let fat = out.lines().find(|l| l.starts_with("fat")).unwrap();
        assert!(fat.trim_end().ends_with("20.00"), "{out}");
        let clean = out.lines().find(|l| l.starts_with("clean ") && l.contains("0.5000")).unwrap();
        assert!(clean.trim_end().ends_with("0.00"), "{out}");
    }
}
