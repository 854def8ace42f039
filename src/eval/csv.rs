//! CSV with one row per condition. The first columns follow the reference's CSV (docs/REFERENCE.md §6:
//! `version, epsilon, avg. acc., <t4> acc.…, <t4> loss…`, relative values as fractions, negative =
//! degradation) so existing analysis scripts keep working; then the raw metric values, ARP in
//! percent, and the attack and pass counts.
use crate::eval::{ConditionReport, Evaluation};

/// The reference's `version` for a direction (`ind_segm`, `total_loss`, `mtl`, `sign_sum`), or the
/// direction's own id for directions the reference does not have.
fn version(r: &ConditionReport) -> String {
    use crate::attack::DirectionSpec;
    match r.attack.as_ref().map(|a| &a.direction) {
        None => "clean".into(),
        Some(DirectionSpec::Single(t)) => format!("ind_{}", t.short()),
        Some(DirectionSpec::Total) => "total_loss".into(),
        Some(DirectionSpec::Gbmta) => "mtl".into(),
        Some(DirectionSpec::SignTotal) => "sign_sum".into(),
        Some(d) => d.to_string(),
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Renders every condition of `e` as CSV (header included).
pub fn render(e: &Evaluation) -> String {
    let tasks: Vec<_> = e.clean.metrics.keys().collect();
    let metric_names: Vec<(crate::task::TaskKind, String)> =
        e.clean.metrics.iter().flat_map(|(t, ms)| ms.iter().map(move |m| (t, m.name.clone()))).collect();
    let mut header = vec!["version".to_string(), "epsilon".into(), "attack".into(), "avg. acc.".into()];
    header.extend(tasks.iter().map(|t| format!("{} acc.", t.short())));
    header.extend(tasks.iter().map(|t| format!("{} loss", t.short())));
    header.extend(metric_names.iter().map(|(t, n)| format!("{}/{n}", t.short())));
    header.extend(["ARP %".into(), "forward".into(), "backward".into()]);
    let mut out = header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(",") + "\n";
    for r in std::iter::once(&e.clean).chain(&e.attacked) {
        let arp = r.arp.as_ref();
        let mut row = vec![
            version(r),
            r.attack.as_ref().map_or(String::new(), |a| a.eps.to_string()),
            r.attack.as_ref().map_or("none".into(), |a| a.label()),
            arp.map_or(String::new(), |a| format!("{:.6}", -a.arp / 100.0)),
        ];
        row.extend(tasks.iter().map(|t| arp.and_then(|a| a.per_task.get(*t)).map_or(String::new(), |v| format!("{:.6}", -v / 100.0))));
        row.extend(tasks.iter().map(|t| {
            let base = e.clean.losses.get(*t).copied().unwrap_or(f64::NAN);
            let now = r.losses.get(*t).copied().unwrap_or(f64::NAN);
            if r.attack.is_some() { format!("{:.6}", (base - now) / base) } else { String::new() }
        }));
        row.extend(metric_names.iter().map(|(t, n)| {
            r.metrics.get(*t).and_then(|ms| ms.iter().find(|m| &m.name == n)).map_or(String::new(), |m| format!("{}", m.value))
        }));
        row.push(arp.map_or(String::new(), |a| format!("{:.4}", a.arp)));
        row.push(r.counts.map_or(String::new(), |c| c.forward.to_string()));
        row.push(r.counts.map_or(String::new(), |c| c.backward.to_string()));
        out += &(row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}
