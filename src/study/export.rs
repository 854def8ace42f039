//! Reading a store back out: filtered cells as CSV (one row per cell, per-task ARP and every
//! adversarial metric in columns) or JSON (the stored rows, reports included).
use super::store::CellRow;
use crate::task::TaskKind;

/// Which cells to export (every given criterion must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Model names.
    pub models: Vec<String>,
    /// Step rule ids (`pgd`, `apgd`, …).
    pub rules: Vec<String>,
    /// Directions (`gbmta`, `single:segment_semantic`, …).
    pub directions: Vec<String>,
    /// Budgets in grey levels.
    pub eps: Vec<f64>,
}

impl Filter {
    /// Whether `c` passes.
    pub fn keeps(&self, c: &CellRow) -> bool {
        (self.models.is_empty() || self.models.contains(&c.model))
            && (self.rules.is_empty() || self.rules.contains(&c.rule))
            && (self.directions.is_empty() || self.directions.iter().any(|d| d == &c.direction || short_direction(&c.direction) == *d))
            && (self.eps.is_empty() || self.eps.iter().any(|e| (e - c.eps).abs() < 1e-9))
    }
}

/// `single:segment_semantic` → `single:segm`; others unchanged.
pub fn short_direction(d: &str) -> String {
    match d.strip_prefix("single:").and_then(|t| t.parse::<TaskKind>().ok()) {
        Some(t) => format!("single:{}", t.short()),
        None => d.to_string(),
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn num(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or(String::new(), |x| format!("{x}"))
}

/// CSV with one row per cell: identity columns, ARP, transferability, per-task ARP, then every
/// adversarial metric value (`<task>/<metric>`), pass counts and seconds.
pub fn to_csv(cells: &[CellRow]) -> String {
    let mut tasks: Vec<TaskKind> = Vec::new();
    let mut metrics: Vec<(TaskKind, String)> = Vec::new();
    for c in cells {
        for (t, ms) in c.report.metrics.iter() {
            if !tasks.contains(&t) {
                tasks.push(t);
            }
            for m in ms {
                if !metrics.iter().any(|(u, n)| *u == t && *n == m.name) {
                    metrics.push((t, m.name.clone()));
                }
            }
        }
    }
    let mut header: Vec<String> =
        ["model", "model_id", "dataset", "rule", "direction", "norm", "eps", "seed", "samples", "ARP", "transfer", "checks_passed"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    header.extend(tasks.iter().map(|t| format!("ARP {}", t.short())));
    header.extend(metrics.iter().map(|(t, n)| format!("{}/{n}", t.short())));
    header.extend(["forward", "backward", "seconds", "device", "cell"].map(String::from));
    let mut out = header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(",") + "\n";
    for c in cells {
        let per_task = c.report.arp.as_ref().map(|a| &a.per_task);
        let mut row = vec![
            quote(&c.model),
            c.model_id[..12.min(c.model_id.len())].to_string(),
            quote(&c.dataset),
            c.rule.clone(),
            quote(&c.direction),
            c.norm.clone(),
            format!("{}", c.eps),
            c.seed.to_string(),
            c.samples.to_string(),
            num(c.arp),
            num(c.transfer),
            (c.checks_passed as u8).to_string(),
        ];
        row.extend(tasks.iter().map(|t| num(per_task.and_then(|p| p.get(*t).copied()))));
        row.extend(
            metrics.iter().map(|(t, n)| num(c.report.metrics.get(*t).and_then(|ms| ms.iter().find(|m| m.name == *n)).map(|m| m.value))),
        );
        let counts = c.report.counts.unwrap_or_default();
        row.extend([counts.forward.to_string(), counts.backward.to_string(), format!("{:.3}", c.seconds), quote(&c.device), c.id.clone()]);
        out += &(row.join(",") + "\n");
    }
    out
}

/// JSON array of the cells.
pub fn to_json(cells: &[CellRow]) -> String {
    serde_json::to_string_pretty(cells).expect("serialisable")
}
