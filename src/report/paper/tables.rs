//! The paper's tables from a [`View`]: ARP per model and attack (Tables 1/2), per-task ARP per
//! direction (the numbers of Figure 1), transferability by sharing level (Table 12), ARP of
//! adversarially trained models (Table 3) and their clean cost (Table 13). Each ends in a one-line
//! summary of what it shows.
use super::grid::{Row, Table, bold_max, fmt2};
use super::view::{View, direction_name, rule_name, single_task, task_name};
use crate::attack::fmt_eps;

/// `63.83M`, `412.5K`.
pub fn fmt_params(n: i64) -> String {
    if n >= 1_000_000 { format!("{:.2}M", n as f64 / 1e6) } else { format!("{:.1}K", n as f64 / 1e3) }
}

/// `7/8` plus which direction, for a per-rule "strongest" count.
fn strongest_summary(counts: &[(String, usize)], rows: usize, what: &str) -> String {
    let mut counts: Vec<&(String, usize)> = counts.iter().filter(|c| c.1 > 0).collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    match counts.split_first() {
        None => "no values".into(),
        Some((top, rest)) => {
            let mut s = format!("{} strongest in {}/{rows} {what}", direction_name(&top.0), top.1);
            if !rest.is_empty() {
                let others: Vec<String> = rest.iter().map(|(d, n)| format!("{} {n}", direction_name(d))).collect();
                s += &format!(" ({})", others.join(", "));
            }
            s
        }
    }
}

/// Adds one column group per rule (its directions at `eps`) to a row of model `m`; returns the
/// per-rule bold cells and which directions were strongest.
fn rule_groups(
    view: &View,
    m: usize,
    eps: f64,
    rules: &[(String, Vec<String>)],
    values: &mut Vec<String>,
    bold: &mut Vec<bool>,
) -> Vec<Vec<String>> {
    let mut strongest = Vec::new();
    for (rule, dirs) in rules {
        let v: Vec<Option<f64>> = dirs.iter().map(|d| view.point(m, rule, d, eps).map(|p| p.arp)).collect();
        let b = bold_max(&v);
        strongest.push(dirs.iter().zip(&b).filter(|(_, b)| **b).map(|(d, _)| d.clone()).collect());
        values.extend(v.iter().map(|x| fmt2(*x)));
        bold.extend(b);
    }
    strongest
}

fn count(rules: &[(String, Vec<String>)], strongest: &[Vec<Vec<String>>]) -> Vec<Vec<(String, usize)>> {
    rules
        .iter()
        .enumerate()
        .map(|(r, (_, dirs))| dirs.iter().map(|d| (d.clone(), strongest.iter().filter(|s| s[r].contains(d)).count())).collect())
        .collect()
}

/// Tables 1/2: one row per clean-trained model (name, content digest, sharing, parameters; the
/// digest tells apart two models of one name, e.g. a model retrained at the same path), one column group per
/// step rule with every direction's overall ARP at `eps`; the strongest attack of each row and
/// rule in bold.
pub fn arp_table(view: &View, eps: f64) -> Table {
    let rules: Vec<(String, Vec<String>)> = view.rules_at(eps).into_iter().map(|r| (r.clone(), view.directions_of(&r, eps))).collect();
    let models = view.clean_models();
    let mut rows = Vec::new();
    let mut strongest = Vec::new();
    for &m in &models {
        let info = &view.models[m];
        let (mut values, mut bold) = (Vec::new(), Vec::new());
        strongest.push(rule_groups(view, m, eps, &rules, &mut values, &mut bold));
        let layout = info.row.layout_index.map_or(info.sharing(), |i| format!("#{i} {}", info.sharing()));
        let id = info.row.id[..12.min(info.row.id.len())].to_string();
        rows.push(Row { labels: vec![info.row.name.clone(), id, layout, fmt_params(info.row.parameters)], values, bold });
    }
    let counts = count(&rules, &strongest);
    let summary = rules
        .iter()
        .zip(&counts)
        .map(|((r, _), c)| match ensemble_gain(view, &models, r, eps) {
            Some(gain) => format!("{}: {gain}", rule_name(r)),
            None => format!("{}: {}", rule_name(r), strongest_summary(c, models.len(), "models")),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Table {
        id: "table1_arp".into(),
        title: format!("ARP (%) of {} models on {} under {} attacks at ε = {}/255", models.len(), view.dataset, view.norm, fmt_eps(eps)),
        head: vec!["Model".into(), "Id".into(), "Layout".into(), "#Params".into()],
        groups: rules.iter().map(|(r, dirs)| (rule_name(r), dirs.iter().map(|d| short_direction(d)).collect())).collect(),
        rows,
        summary: format!("{summary}."),
    }
}

/// For an ensemble column group: by how much its ARP exceeds the strongest single attack of the
/// same model at `eps`, its own members included (mean over the models that have both). It can be
/// negative: each sample keeps the example of highest *score*, and ARP is a dataset-level metric.
fn ensemble_gain(view: &View, models: &[usize], rule: &str, eps: f64) -> Option<String> {
    if !rule.starts_with("ensemble:") {
        return None;
    }
    let gains: Vec<f64> = models
        .iter()
        .filter_map(|&m| {
            let ens =
                view.directions_of(rule, eps).iter().filter_map(|d| view.point(m, rule, d, eps)).map(|p| p.arp).fold(f64::NAN, f64::max);
            // Its members are single attacks too: a store holding only the ensemble still compares.
            let members = view
                .members
                .iter()
                .filter(|(k, _)| k.0 == m && k.1 == rule && k.3 == super::view::eps_key(eps))
                .flat_map(|(_, list)| list.iter().filter_map(|p| p.arp));
            let single = view
                .points
                .iter()
                .filter(|(k, _)| k.0 == m && k.3 == super::view::eps_key(eps) && !k.1.starts_with("ensemble:"))
                .map(|(_, p)| p.arp)
                .chain(members)
                .fold(f64::NAN, f64::max);
            (ens.is_finite() && single.is_finite()).then_some(ens - single)
        })
        .collect();
    if gains.is_empty() {
        return Some("no single attack to compare with".into());
    }
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    Some(format!("{mean:+.2} ARP over the strongest single attack of each model, its members included (mean of {})", gains.len()))
}

/// Per ensemble at `eps`: which member gave each sample's worst case, how often (% of samples),
/// and each member's own ARP, per clean-trained model; the ensemble's ARP last. This is the
/// sample-by-sample check of "GB-MTA is the strongest attack".
pub fn ensemble_tables(view: &View, eps: f64) -> Vec<Table> {
    let mut out = Vec::new();
    for rule in view.rules_at(eps).into_iter().filter(|r| r.starts_with("ensemble:")) {
        for direction in view.directions_of(&rule, eps) {
            let models: Vec<usize> = view
                .clean_models()
                .into_iter()
                .filter(|&m| view.members.contains_key(&(m, rule.clone(), direction.clone(), super::view::eps_key(eps))))
                .collect();
            let Some(&first) = models.first() else { continue };
            let key = |m: usize| (m, rule.clone(), direction.clone(), super::view::eps_key(eps));
            let names: Vec<String> = view.members[&key(first)].iter().map(|p| p.name.clone()).collect();
            let mut rows = Vec::new();
            let mut top_share = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let (mut values, mut bold) = (Vec::new(), Vec::new());
                for &m in &models {
                    let p = view.members[&key(m)].get(i).filter(|p| &p.name == name);
                    values.push(
                        p.filter(|p| p.samples > 0).map_or("-".into(), |p| format!("{:.1}", 100.0 * p.wins as f64 / p.samples as f64)),
                    );
                    values.push(fmt2(p.and_then(|p| p.arp)));
                    bold.extend([false, false]);
                }
                rows.push(Row { labels: vec![name.clone()], values, bold });
            }
            // Bold: the member winning most samples of each model.
            for (c, &m) in models.iter().enumerate() {
                let wins: Vec<Option<f64>> = view.members[&key(m)].iter().map(|p| Some(p.wins as f64)).collect();
                let b = bold_max(&wins);
                for (r, row) in rows.iter_mut().enumerate() {
                    if b.get(r).copied().unwrap_or(false) {
                        row.bold[2 * c] = true;
                        top_share.push(names[r].clone());
                    }
                }
            }
            let mut values = Vec::new();
            for &m in &models {
                values.push("100.0".into());
                values.push(fmt2(view.point(m, &rule, &direction, eps).map(|p| p.arp)));
            }
            rows.push(Row {
                labels: vec![format!("{} (per-sample worst case)", rule_name(&rule))],
                bold: vec![false; values.len()],
                values,
            });
            let mut counts: Vec<(String, usize)> =
                names.iter().map(|n| (n.clone(), top_share.iter().filter(|t| *t == n).count())).collect();
            counts.sort_by_key(|c| std::cmp::Reverse(c.1));
            let summary = match counts.first() {
                Some((n, k)) if *k > 0 => format!("{n} gives the most per-sample worst cases in {k}/{} models", models.len()),
                _ => "no member won a sample".into(),
            };
            let gain = ensemble_gain(view, &models, &rule, eps).unwrap_or_default();
            out.push(Table {
                id: format!("table_{}_members", rule.replace(':', "_")),
                title: format!(
                    "{}: which member gave each sample's worst case (% of samples, scored by {}) and each member's own ARP, at ε = {}/255",
                    rule_name(&rule),
                    direction_name(&direction),
                    fmt_eps(eps)
                ),
                head: vec!["Member".into()],
                groups: models.iter().map(|&m| (view.models[m].row.name.clone(), vec!["wins %".into(), "ARP".into()])).collect(),
                rows,
                summary: format!("{summary}; the ensemble: {gain}."),
            });
        }
    }
    out
}

/// `Segm` for Single-Segm (the paper's table columns), otherwise the direction's name.
fn short_direction(d: &str) -> String {
    single_task(d).map_or(direction_name(d), task_name)
}

/// The numbers behind Figure 1: per rule and direction, each task's ARP and the overall ARP at
/// `eps`, averaged over the clean-trained models; per rule, the strongest direction on each task in
/// bold.
pub fn per_task_table(view: &View, eps: f64) -> Table {
    let models = view.clean_models();
    let n_cols = view.tasks.len() + 1;
    // (labels, values, bold)
    type Draft = (Vec<String>, Vec<Option<f64>>, Vec<bool>);
    let mut rows: Vec<Draft> = Vec::new();
    let mut best: Vec<String> = Vec::new();
    for rule in view.rules_at(eps) {
        let first = rows.len();
        for d in view.directions_of(&rule, eps) {
            let points: Vec<_> = models.iter().filter_map(|&m| view.point(m, &rule, &d, eps)).collect();
            let mean = |f: &dyn Fn(&super::view::Point) -> Option<f64>| {
                let v: Vec<f64> = points.iter().filter_map(|p| f(p)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let mut values: Vec<Option<f64>> = view.tasks.iter().map(|&t| mean(&|p| p.per_task.get(t).copied())).collect();
            values.push(mean(&|p| Some(p.arp)));
            rows.push((vec![rule_name(&rule), direction_name(&d)], values, vec![false; n_cols]));
        }
        // Per column, the strongest direction of this rule.
        for c in 0..n_cols {
            let col: Vec<Option<f64>> = rows[first..].iter().map(|r| r.1[c]).collect();
            for (i, bold) in bold_max(&col).into_iter().enumerate() {
                rows[first + i].2[c] = bold;
                if bold
                    && c < view.tasks.len()
                    && !best.iter().any(|b| b.starts_with(&format!("{} {}:", task_name(view.tasks[c]), rule_name(&rule))))
                {
                    best.push(format!("{} {}: {}", task_name(view.tasks[c]), rule_name(&rule), rows[first + i].0[1]));
                }
            }
        }
    }
    let rows =
        rows.into_iter().map(|(labels, values, bold)| Row { labels, values: values.into_iter().map(fmt2).collect(), bold }).collect();
    let mut columns: Vec<String> = view.tasks.iter().map(|&t| format!("ARP {}", task_name(t))).collect();
    columns.push("ARP".into());
    Table {
        id: "table_per_task".into(),
        title: format!("Per-task ARP (%) at ε = {}/255, mean over {} models", fmt_eps(eps), models.len()),
        head: vec!["Attack".into(), "Direction".into()],
        groups: vec![(String::new(), columns)],
        rows,
        summary: format!("Strongest direction per task (and rule): {}.", best.join(", ")),
    }
}

/// Table 12: transferability of each Single-x (Eq. 11) per clean-trained model, models from most
/// to least shared, one column group per rule.
pub fn transfer_table(view: &View, eps: f64) -> Table {
    let mut models = view.clean_models();
    models.sort_by(|&a, &b| view.models[b].row.shared_stages.cmp(&view.models[a].row.shared_stages));
    let rules: Vec<(String, Vec<String>)> = view
        .rules_at(eps)
        .into_iter()
        .map(|r| {
            let dirs = view.directions_of(&r, eps).into_iter().filter(|d| single_task(d).is_some()).collect::<Vec<_>>();
            (r, dirs)
        })
        .filter(|(_, d)| !d.is_empty())
        .collect();
    let row_mean = |m: usize, rule: &str, dirs: &[String]| {
        let v: Vec<f64> = dirs.iter().filter_map(|d| view.point(m, rule, d, eps).and_then(|p| p.transfer)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let rows = models
        .iter()
        .map(|&m| {
            let values: Vec<String> = rules
                .iter()
                .flat_map(|(r, dirs)| dirs.iter().map(move |d| view.point(m, r, d, eps).and_then(|p| p.transfer)))
                .map(fmt2)
                .collect();
            let n = values.len();
            Row { labels: vec![view.models[m].row.name.clone(), view.models[m].sharing()], values, bold: vec![false; n] }
        })
        .collect();
    let summary = match (models.first(), models.last()) {
        (Some(&most), Some(&least)) if view.models[most].row.shared_stages > view.models[least].row.shared_stages => {
            rules
                .iter()
                .map(|(r, dirs)| {
                    format!(
                        "{}: mean transferability {} at {} vs {} at {}",
                        rule_name(r),
                        fmt2(row_mean(most, r, dirs)),
                        view.models[most].sharing(),
                        fmt2(row_mean(least, r, dirs)),
                        view.models[least].sharing()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
                + "."
        }
        _ => "All models share the same number of backbone stages: no trend to show.".into(),
    };
    Table {
        id: "table12_transfer".into(),
        title: format!("Transferability of Single-x attacks at ε = {}/255 by sharing level (shared backbone stages)", fmt_eps(eps)),
        head: vec!["Model".into(), "Sharing".into()],
        groups: rules.iter().map(|(r, dirs)| (rule_name(r), dirs.iter().map(|d| direction_name(d)).collect())).collect(),
        rows,
        summary,
    }
}

/// Table 3: ARP at `eps` of adversarially trained models and their clean twins; rows by how the
/// model was trained, columns the evaluation attacks; the strongest attack of each row in bold.
/// `None` when the store holds no FAT model.
pub fn fat_arp_table(view: &View, eps: f64) -> Option<Table> {
    let groups = view.fat_groups();
    if groups.is_empty() {
        return None;
    }
    let rules: Vec<(String, Vec<String>)> = view.rules_at(eps).into_iter().map(|r| (r.clone(), view.directions_of(&r, eps))).collect();
    let mut rows = Vec::new();
    let mut strongest = Vec::new();
    let (mut clean_arp, mut fat_arp) = (Vec::new(), Vec::new());
    for &m in groups.iter().flatten() {
        let (mut values, mut bold) = (Vec::new(), Vec::new());
        strongest.push(rule_groups(view, m, eps, &rules, &mut values, &mut bold));
        let arps: Vec<f64> = values.iter().filter_map(|v| v.parse().ok()).collect();
        if !arps.is_empty() {
            let mean = arps.iter().sum::<f64>() / arps.len() as f64;
            if view.models[m].training.is_adversarial() { fat_arp.push(mean) } else { clean_arp.push(mean) }
        }
        rows.push(Row { labels: vec![view.models[m].row.name.clone(), view.models[m].training.label()], values, bold });
    }
    let counts = count(&rules, &strongest);
    let mut summary = rules
        .iter()
        .zip(&counts)
        .map(|((r, _), c)| format!("{}: {}", rule_name(r), strongest_summary(c, rows.len(), "rows")))
        .collect::<Vec<_>>();
    let avg = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    summary.push(format!("mean ARP {} without adversarial training vs {} with FAT", fmt2(avg(&clean_arp)), fmt2(avg(&fat_arp))));
    Some(Table {
        id: "table3_fat_arp".into(),
        title: format!("ARP (%) at ε = {}/255 of models trained with and without FAT", fmt_eps(eps)),
        head: vec!["Model".into(), "Adv. train".into()],
        groups: rules.iter().map(|(r, dirs)| (rule_name(r), dirs.iter().map(|d| direction_name(d)).collect())).collect(),
        rows,
        summary: summary.join("; ") + ".",
    })
}

/// Table 13: clean metrics of adversarially trained models and their clean twins, with the clean
/// cost of FAT as ARP against the twin (per task and overall, percent, higher = larger drop).
/// `None` when the store holds no FAT model.
pub fn fat_clean_table(view: &View) -> Option<Table> {
    let groups = view.fat_groups();
    if groups.is_empty() {
        return None;
    }
    let metric_names = |t| -> Vec<(String, bool)> {
        let mut names: Vec<(String, bool)> = Vec::new();
        for r in (0..view.models.len()).filter_map(|m| view.clean.get(&m)) {
            for m in r.metrics.get(t).into_iter().flatten() {
                if !names.iter().any(|n| n.0 == m.name) {
                    names.push((m.name.clone(), m.higher_is_better));
                }
            }
        }
        names
    };
    let layout: Vec<_> = view.tasks.iter().map(|&t| (t, metric_names(t))).collect();
    let mut rows = Vec::new();
    let mut costs = Vec::new();
    for &m in groups.iter().flatten() {
        let own = view.clean.get(&m);
        let twin = view.clean_twin(m).filter(|&o| o != m).and_then(|o| view.clean.get(&o));
        let cost = match (own, twin) {
            (Some(own), Some(twin)) if view.models[m].training.is_adversarial() => Some(crate::eval::arp(&twin.metrics, &own.metrics).0),
            _ => None,
        };
        let mut values = Vec::new();
        for (t, names) in &layout {
            for (name, _) in names {
                let v = own.and_then(|r| r.metrics.get(*t)).and_then(|ms| ms.iter().find(|x| x.name == *name)).map(|x| x.value);
                values.push(v.filter(|x| x.is_finite()).map_or("-".into(), |x| format!("{x:.4}")));
            }
            values.push(fmt2(cost.as_ref().and_then(|c| c.per_task.get(*t).copied())));
        }
        values.push(fmt2(cost.as_ref().map(|c| c.arp)));
        if let Some(c) = &cost {
            costs.push(c.arp);
        }
        let n = values.len();
        rows.push(Row { labels: vec![view.models[m].row.name.clone(), view.models[m].training.label()], values, bold: vec![false; n] });
    }
    let mut group_cols: Vec<(String, Vec<String>)> = layout
        .iter()
        .map(|(t, names)| {
            let mut cols: Vec<String> = names.iter().map(|(n, hib)| format!("{n} {}", if *hib { "↑" } else { "↓" })).collect();
            cols.push(format!("ARP {}", task_name(*t)));
            (task_name(*t), cols)
        })
        .collect();
    group_cols.push((String::new(), vec!["ARP".into()]));
    let summary = if costs.is_empty() {
        "No FAT model has a clean baseline and a clean twin in the store: costs not shown.".into()
    } else {
        let lo = costs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = costs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("FAT costs {}–{} % of clean performance (ARP of the FAT model against its clean twin).", fmt2(Some(lo)), fmt2(Some(hi)))
    };
    Some(Table {
        id: "table13_fat_clean".into(),
        title: "Clean metrics of models trained with and without FAT, and the cost of FAT (ARP %, against the clean twin)".into(),
        head: vec!["Model".into(), "Adv. train".into()],
        groups: group_cols,
        rows,
        summary,
    })
}

/// Every table that the view has data for, at `eps`.
pub fn all(view: &View, eps: f64) -> Vec<Table> {
    let mut v = vec![arp_table(view, eps), per_task_table(view, eps), transfer_table(view, eps)];
    v.extend(ensemble_tables(view, eps));
    v.extend(fat_arp_table(view, eps));
    v.extend(fat_clean_table(view));
    v
}
