//! The terminal table: one row per task metric, one column for the clean run and one per attack,
//! then the per-task and overall ARP (Eq. 10, percent, higher = stronger attack).
use crate::eval::Evaluation;

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Column names of the attacks: just the direction (tasks abbreviated) when all attacks share step
/// rule, norm and budget — then stated once in a title line — else the full labels.
fn attack_columns(e: &Evaluation) -> (Option<String>, Vec<String>) {
    use crate::attack::{DirectionSpec, fmt_eps, norm_id};
    let configs: Vec<_> = e.attacked.iter().filter_map(|a| a.attack.as_ref()).collect();
    let first = match configs.first() {
        Some(f) if configs.len() == e.attacked.len() => *f,
        _ => return (None, e.attacked.iter().map(|a| a.label.clone()).collect()),
    };
    let shared = configs.iter().all(|c| c.rule.kind() == first.rule.kind() && c.norm == first.norm && c.eps == first.eps);
    if !shared || configs.len() < 2 {
        return (None, e.attacked.iter().map(|a| a.label.clone()).collect());
    }
    let title = format!("attacks: {} {} ε = {}/255", first.rule.id(), norm_id(first.norm), fmt_eps(first.eps));
    let names = configs
        .iter()
        .map(|c| match &c.direction {
            DirectionSpec::Single(t) => format!("single:{}", t.short()),
            d => d.to_string(),
        })
        .collect();
    (Some(title), names)
}

/// Renders `e` as an aligned text table.
pub fn render(e: &Evaluation) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (title, columns) = attack_columns(e);
    let mut header = vec!["task".to_string(), "metric".to_string(), "clean".to_string()];
    header.extend(columns);
    rows.push(header);
    for (task, metrics) in e.clean.metrics.iter() {
        for m in metrics {
            let arrow = if m.higher_is_better { "↑" } else { "↓" };
            let mut row = vec![task.short().to_string(), format!("{} {arrow}", m.name), fmt_value(m.value)];
            for a in &e.attacked {
                let v = a.metrics.get(task).and_then(|ms| ms.iter().find(|x| x.name == m.name)).map(|x| x.value);
                row.push(v.map_or("-".into(), fmt_value));
            }
            rows.push(row);
        }
        let mut loss = vec![task.short().to_string(), "loss".into(), e.clean.losses.get(task).map_or("-".into(), |v| fmt_value(*v))];
        loss.extend(e.attacked.iter().map(|a| a.losses.get(task).map_or("-".into(), |v| fmt_value(*v))));
        rows.push(loss);
    }
    if !e.attacked.is_empty() {
        for task in e.clean.metrics.keys() {
            let mut row = vec![task.short().to_string(), "ARP %".into(), "".into()];
            row.extend(
                e.attacked.iter().map(|a| a.arp.as_ref().and_then(|r| r.per_task.get(task)).map_or("-".into(), |v| format!("{v:.2}"))),
            );
            rows.push(row);
        }
        let mut row = vec!["all".to_string(), "ARP %".into(), "".into()];
        row.extend(e.attacked.iter().map(|a| a.arp.as_ref().map_or("-".into(), |r| format!("{:.2}", r.arp))));
        rows.push(row);
        let mut row = vec!["".to_string(), "objective".into(), "".into()];
        row.extend(e.attacked.iter().map(|a| a.objective.map_or("-".into(), |(c, x)| format!("{c:.3}→{x:.3}"))));
        rows.push(row);
        let mut row = vec!["".to_string(), "passes fwd/bwd".into(), "".into()];
        row.extend(e.attacked.iter().map(|a| a.counts.map_or("-".into(), |c| format!("{}/{}", c.forward, c.backward))));
        rows.push(row);
    }
    match title {
        Some(t) => format!("{t}\n{}", align(&rows, 2)),
        None => align(&rows, 2),
    }
}

/// One row per attack: per-task ARP, overall ARP and, for Single-x attacks, transferability
/// (Eq. 11: the mean over other tasks of ARP-y / ARP-x).
pub fn render_arp(e: &Evaluation) -> String {
    use crate::attack::DirectionSpec;
    let tasks: Vec<_> = e.clean.metrics.keys().collect();
    let (title, names) = attack_columns(e);
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["attack".to_string()];
    header.extend(tasks.iter().map(|t| format!("ARP-{}", t.short())));
    header.extend(["ARP".to_string(), "transfer".to_string()]);
    rows.push(header);
    for (a, name) in e.attacked.iter().zip(names) {
        let Some(arp) = &a.arp else { continue };
        let mut row = vec![name];
        row.extend(tasks.iter().map(|t| arp.per_task.get(*t).map_or("-".into(), |v| format!("{v:.2}"))));
        row.push(format!("{:.2}", arp.arp));
        let transfer = match a.attack.as_ref().map(|c| &c.direction) {
            Some(DirectionSpec::Single(x)) => crate::eval::transferability(arp, *x).map_or("-".into(), |v| format!("{v:.2}")),
            _ => String::new(),
        };
        row.push(transfer);
        rows.push(row);
    }
    match title {
        Some(t) => format!("{t}\n{}", align(&rows, 1)),
        None => align(&rows, 1),
    }
}

/// One table per ensemble attack: each member's wins (samples whose worst case was its example),
/// its own per-task and overall ARP and passes, then the ensemble's worst case and what it adds
/// over the strongest member.
pub fn render_members(e: &Evaluation) -> Vec<String> {
    use crate::attack::{Rule, fmt_eps, norm_id};
    let tasks: Vec<_> = e.clean.metrics.keys().collect();
    let mut out = Vec::new();
    for a in &e.attacked {
        let (Some(members), Some(config)) = (&a.ensemble, &a.attack) else { continue };
        let Rule::Ensemble(ensemble) = &config.rule else { continue };
        let arp_cells = |r: &crate::eval::ConditionReport| -> Vec<String> {
            let mut v: Vec<String> =
                tasks.iter().map(|t| r.arp.as_ref().and_then(|x| x.per_task.get(*t)).map_or("-".into(), |v| format!("{v:.2}"))).collect();
            v.push(r.arp.as_ref().map_or("-".into(), |x| format!("{:.2}", x.arp)));
            v.push(r.counts.map_or("-".into(), |c| format!("{}/{}", c.forward, c.backward)));
            v
        };
        let mut header = vec!["member".to_string(), "wins".into(), "wins %".into()];
        header.extend(tasks.iter().map(|t| format!("ARP-{}", t.short())));
        header.extend(["ARP".to_string(), "passes fwd/bwd".into()]);
        let mut rows = vec![header];
        let share = |w: usize| if a.samples == 0 { "-".to_string() } else { format!("{:.1}", 100.0 * w as f64 / a.samples as f64) };
        for (m, report) in ensemble.members.iter().zip(members) {
            let mut row = vec![m.display_name(), report.wins.to_string(), share(report.wins)];
            row.extend(arp_cells(&report.report));
            rows.push(row);
        }
        let mut row = vec!["worst case".to_string(), a.samples.to_string(), share(a.samples)];
        row.extend(arp_cells(a));
        rows.push(row);
        let title = format!(
            "ensemble {} ({} members, score {}), {} ε = {}/255: per-sample worst case",
            ensemble.name,
            ensemble.members.len(),
            config.direction,
            norm_id(config.norm),
            fmt_eps(config.eps)
        );
        let strongest = members.iter().filter_map(|m| m.report.arp.as_ref().map(|x| x.arp)).fold(f64::NAN, f64::max);
        let gain = match &a.arp {
            Some(x) if strongest.is_finite() => format!("\nover the strongest member alone: {:+.2} ARP points", x.arp - strongest),
            _ => String::new(),
        };
        out.push(format!("{title}\n{}{gain}\n", align(&rows, 1).trim_end()));
    }
    out
}

/// Aligns rows into columns (the first `left` columns left-aligned, the rest right-aligned) with a
/// rule under the header row.
pub(crate) fn align(rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = " ".repeat(widths[c] - s.chars().count());
                if c < left { format!("{s}{pad}") } else { format!("{pad}{s}") }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    out
}
