//! A results store read into what the paper's tables and figures need: the models with how they
//! were trained, and the cells of one dataset and one norm averaged over seeds.
use crate::attack::{DirectionSpec, RuleKind};
use crate::error::{Error, Result};
use crate::eval::ConditionReport;
use crate::study::Store;
use crate::study::store::ModelRow;
use crate::task::{TaskKind, TaskMap};
use std::collections::{BTreeMap, HashMap};

/// How a model was trained, read from its checkpoint's provenance (`training.adversarial`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Training {
    /// Clean training, or no training record (an imported or freshly initialised checkpoint).
    Clean,
    /// Adversarial training (FAT) with this step rule id and direction.
    Fat { rule: String, direction: String },
}

impl Training {
    /// Reads the training record of a checkpoint sidecar.
    pub fn of_sidecar(sidecar: &serde_json::Value) -> Training {
        let attack = &sidecar["provenance"]["training"]["adversarial"]["attack"];
        match (attack["step"].as_str(), attack["direction"].as_str()) {
            (Some(rule), Some(direction)) => Training::Fat { rule: rule.to_string(), direction: direction.to_string() },
            _ => Training::Clean,
        }
    }

    /// `w/o AT` or `FAT PGD GB-MTA`, as the rows of the paper's Table 3.
    pub fn label(&self) -> String {
        match self {
            Training::Clean => "w/o AT".into(),
            Training::Fat { rule, direction } => format!("FAT {} {}", rule_name(rule), direction_name(direction)),
        }
    }

    /// Whether the model was trained adversarially.
    pub fn is_adversarial(&self) -> bool {
        matches!(self, Training::Fat { .. })
    }
}

/// A model of the store with its training.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub row: ModelRow,
    pub training: Training,
}

impl ModelInfo {
    /// `AS/5L`, `3L`, `IND/0L`: how many backbone stages all tasks share (the paper's Table 12).
    pub fn sharing(&self) -> String {
        match self.row.shared_stages {
            0 => "IND/0L".into(),
            5 => "AS/5L".into(),
            k => format!("{k}L"),
        }
    }

    /// Architecture identity: the clean twin of a FAT model has the same one.
    fn architecture(&self) -> (&str, &str, &[String]) {
        (&self.row.backbone, &self.row.layout, &self.row.tasks)
    }
}

/// The seed-averaged numbers of one (model, rule, direction, ε) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub arp: f64,
    pub per_task: TaskMap<f64>,
    pub transfer: Option<f64>,
    /// Seeds averaged.
    pub seeds: usize,
}

/// One member of an ensemble cell, summed over seeds: how often its example was a sample's worst
/// case, and its own ARP (mean over seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPoint {
    /// `APGD GB-MTA`.
    pub name: String,
    pub wins: usize,
    /// Samples over the seeds (the denominator of `wins`).
    pub samples: usize,
    pub arp: Option<f64>,
}

/// Key of a point: model index, rule id, direction, ε in thousandths of a grey level.
pub type Key = (usize, String, String, i64);

/// ε as a key (exact for budgets given to three decimals).
pub fn eps_key(eps: f64) -> i64 {
    (eps * 1000.0).round() as i64
}

/// What the report reads from a store.
#[derive(Debug, Clone)]
pub struct View {
    /// The dataset the cells were measured on (path and split).
    pub dataset: String,
    pub norm: String,
    /// Ordered by shared stages (fewest first), then name.
    pub models: Vec<ModelInfo>,
    pub points: BTreeMap<Key, Point>,
    /// Clean baselines by model index.
    pub clean: HashMap<usize, ConditionReport>,
    /// Every task of any model, in Taskonomy order.
    pub tasks: Vec<TaskKind>,
    /// Step rules present, in the paper's order (FGSM, MI-FGSM, PGD, APGD, Auto-SAGE).
    pub rules: Vec<String>,
    /// Directions present: Single-x in task order, Total, SignTotal, GB-MTA, then any other.
    pub directions: Vec<String>,
    /// Budgets present, ascending.
    pub eps: Vec<f64>,
    /// The members of each ensemble point (same keys as `points`).
    pub members: BTreeMap<Key, Vec<MemberPoint>>,
}

/// How the paper names a step rule stored as `id` ([`RuleKind::display_name`]; unknown ids as they are).
pub fn rule_name(id: &str) -> String {
    match id.strip_prefix("ensemble:") {
        Some("standard") => "Ensemble".into(),
        Some(name) => format!("Ensemble {name}"),
        None => RuleKind::from_id(id).map_or(id.to_string(), |k| k.display_name().to_string()),
    }
}

/// How the paper names a direction stored as `d`: `Single-Segm`, `Total`, `SignTotal`, `GB-MTA`
/// ([`DirectionSpec::display_name`]).
pub fn direction_name(d: &str) -> String {
    d.parse::<DirectionSpec>().map_or(d.to_string(), |d| d.display_name())
}

/// `Segm`, `Norm`, `Dept`, `Keyp`, `Edge`.
pub fn task_name(t: TaskKind) -> String {
    t.display_short().to_string()
}

/// The task a Single-x direction attacks.
pub fn single_task(d: &str) -> Option<TaskKind> {
    match d.parse::<DirectionSpec>() {
        Ok(DirectionSpec::Single(t)) => Some(t),
        _ => None,
    }
}

/// The paper's rules in its order, then Square, other ids, and ensembles last.
fn rule_rank(id: &str) -> (usize, String) {
    let rank = match RuleKind::from_id(id) {
        Some(k) if k != RuleKind::Ensemble => k as usize,
        _ if id.starts_with("ensemble:") => RuleKind::ALL.len() + 1,
        _ => RuleKind::ALL.len(),
    };
    (rank, id.to_string())
}

fn direction_rank(d: &str) -> (usize, String) {
    match d.parse::<DirectionSpec>() {
        Ok(spec) => (spec.rank(), if matches!(spec, DirectionSpec::Weighted(_)) { d.to_string() } else { String::new() }),
        Err(_) => (DirectionSpec::Weighted(Vec::new()).rank(), d.to_string()),
    }
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, s) = v.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| s / n as f64)
}

impl View {
    /// Reads `store`: the cells of norm `norm` on one dataset — the only one, or the one whose
    /// path, `path:split` or id prefix is `dataset`.
    ///
    /// # Errors
    /// An unreadable store, a store with no cells, or several datasets and no (matching) choice.
    pub fn load(store: &Store, dataset: Option<&str>, norm: &str) -> Result<View> {
        let at = store.path().to_path_buf();
        let cells = store.cells()?;
        if cells.is_empty() {
            return Err(Error::data(&at, "holds no cells; fill it with `mtrobust study run STUDY.toml --db …` first"));
        }
        let datasets = store.datasets()?;
        let describe = |id: &str| datasets.iter().find(|d| d.id == id).map_or(id.to_string(), |d| format!("{}:{}", d.path, d.split));
        let mut ids: Vec<&str> = cells.iter().map(|c| c.dataset_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        let chosen: Vec<&str> = match dataset {
            None => ids.clone(),
            Some(want) => ids
                .iter()
                .copied()
                .filter(|id| id.starts_with(want) || describe(id) == want || describe(id).split(':').next() == Some(want))
                .collect(),
        };
        let list = || ids.iter().map(|id| format!("`{}` (id {})", describe(id), &id[..id.len().min(12)])).collect::<Vec<_>>().join(", ");
        let dataset_id = match chosen.as_slice() {
            [one] => one.to_string(),
            [] => {
                return Err(Error::parameter(
                    "dataset",
                    format!("`{}` matches none of the store's datasets: {}", dataset.unwrap_or(""), list()),
                ));
            }
            _ => return Err(Error::parameter("dataset", format!("the store holds cells on several datasets, choose one: {}", list()))),
        };
        let norms: Vec<String> = {
            let mut v: Vec<String> = cells.iter().filter(|c| c.dataset_id == dataset_id).map(|c| c.norm.clone()).collect();
            v.sort();
            v.dedup();
            v
        };
        if !norms.iter().any(|n| n == norm) {
            return Err(Error::parameter("norm", format!("no cell uses norm `{norm}`; the store has {}", norms.join(", "))));
        }
        let mut all_models = store.models()?;
        all_models.sort_by(|a, b| a.shared_stages.cmp(&b.shared_stages).then(a.name.cmp(&b.name)));
        let used: Vec<&str> = cells.iter().filter(|c| c.dataset_id == dataset_id).map(|c| c.model_id.as_str()).collect();
        let models: Vec<ModelInfo> = all_models
            .into_iter()
            .filter(|m| used.contains(&m.id.as_str()))
            .map(|row| ModelInfo { training: Training::of_sidecar(&row.sidecar), row })
            .collect();
        let index: HashMap<&str, usize> = models.iter().enumerate().map(|(i, m)| (m.row.id.as_str(), i)).collect();
        let mut groups: BTreeMap<Key, Vec<&crate::study::store::CellRow>> = BTreeMap::new();
        for c in cells.iter().filter(|c| c.dataset_id == dataset_id && c.norm == norm) {
            let Some(&m) = index.get(c.model_id.as_str()) else { continue };
            groups.entry((m, c.rule.clone(), c.direction.clone(), eps_key(c.eps))).or_default().push(c);
        }
        let mut points = BTreeMap::new();
        let mut members = BTreeMap::new();
        let mut tasks: Vec<TaskKind> = Vec::new();
        for (key, cs) in groups {
            let Some(arp) = mean(cs.iter().filter_map(|c| c.arp)) else { continue };
            let mut per_task = TaskMap::new();
            for t in TaskKind::ALL {
                if let Some(v) = mean(cs.iter().filter_map(|c| c.report.arp.as_ref().and_then(|a| a.per_task.get(t).copied()))) {
                    per_task.insert(t, v);
                    if !tasks.contains(&t) {
                        tasks.push(t);
                    }
                }
            }
            let transfer = mean(cs.iter().filter_map(|c| c.transfer));
            if let Some(first) = cs[0].report.ensemble.as_ref() {
                let list = first
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let of_seeds = || cs.iter().filter_map(|c| c.report.ensemble.as_ref().and_then(|e| e.get(i)));
                        let name = m.report.attack.as_ref().map_or(m.report.label.clone(), |a| {
                            format!("{} {}", rule_name(&a.rule.key()), direction_name(&a.direction.to_string()))
                        });
                        MemberPoint {
                            name,
                            wins: of_seeds().map(|m| m.wins).sum(),
                            samples: of_seeds().map(|m| m.report.samples).sum(),
                            arp: mean(of_seeds().filter_map(|m| m.report.arp.as_ref().map(|a| a.arp))),
                        }
                    })
                    .collect();
                members.insert(key.clone(), list);
            }
            points.insert(key, Point { arp, per_task, transfer, seeds: cs.len() });
        }
        tasks.sort_by_key(|t| TaskKind::ALL.iter().position(|k| k == t));
        let mut rules: Vec<String> = points.keys().map(|k| k.1.clone()).collect();
        rules.sort_by_key(|r| rule_rank(r));
        rules.dedup();
        let mut directions: Vec<String> = points.keys().map(|k| k.2.clone()).collect();
        directions.sort_by_key(|d| direction_rank(d));
        directions.dedup();
        let mut eps: Vec<i64> = points.keys().map(|k| k.3).collect();
        eps.sort();
        eps.dedup();
        let mut clean = HashMap::new();
        for (model_id, data_id, report) in store.cleans()? {
            if data_id == dataset_id
                && let Some(&m) = index.get(model_id.as_str())
            {
                clean.entry(m).or_insert(report);
            }
        }
        Ok(View {
            dataset: describe(&dataset_id),
            norm: norm.to_string(),
            models,
            points,
            clean,
            tasks,
            rules,
            directions,
            eps: eps.into_iter().map(|e| e as f64 / 1000.0).collect(),
            members,
        })
    }

    /// The point of model `m` under `rule` × `direction` at `eps`.
    pub fn point(&self, m: usize, rule: &str, direction: &str, eps: f64) -> Option<&Point> {
        self.points.get(&(m, rule.to_string(), direction.to_string(), eps_key(eps)))
    }

    /// Directions measured for `rule` at `eps` (on any model), in order.
    pub fn directions_of(&self, rule: &str, eps: f64) -> Vec<String> {
        self.directions.iter().filter(|d| self.points.keys().any(|k| k.1 == rule && k.2 == **d && k.3 == eps_key(eps))).cloned().collect()
    }

    /// Rules measured at `eps`.
    pub fn rules_at(&self, eps: f64) -> Vec<String> {
        self.rules.iter().filter(|r| self.points.keys().any(|k| k.1 == **r && k.3 == eps_key(eps))).cloned().collect()
    }

    /// Indices of the models trained clean.
    pub fn clean_models(&self) -> Vec<usize> {
        (0..self.models.len()).filter(|&m| !self.models[m].training.is_adversarial()).collect()
    }

    /// Groups of models of one architecture that hold at least one FAT model: the clean ones
    /// first, then the FAT ones by label.
    pub fn fat_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for m in 0..self.models.len() {
            match groups.iter_mut().find(|g| self.models[g[0]].architecture() == self.models[m].architecture()) {
                Some(g) => g.push(m),
                None => groups.push(vec![m]),
            }
        }
        groups.retain(|g| g.iter().any(|&m| self.models[m].training.is_adversarial()));
        for g in &mut groups {
            g.sort_by_key(|&m| {
                (self.models[m].training.is_adversarial(), self.models[m].training.label(), self.models[m].row.name.clone())
            });
        }
        groups
    }

    /// The clean twin of model `m`: a clean-trained model of the same architecture.
    pub fn clean_twin(&self, m: usize) -> Option<usize> {
        (0..self.models.len())
            .find(|&o| !self.models[o].training.is_adversarial() && self.models[o].architecture() == self.models[m].architecture())
    }

    /// Checks that cells exist at `eps`.
    ///
    /// # Errors
    /// No cell at that budget (the message lists the budgets there are).
    pub fn check_eps(&self, eps: f64) -> Result<()> {
        if self.points.keys().any(|k| k.3 == eps_key(eps)) {
            return Ok(());
        }
        let have: Vec<String> = self.eps.iter().map(|e| crate::attack::fmt_eps(*e)).collect();
        Err(Error::parameter("eps", format!("no cell at ε = {}; the store has ε = {}", crate::attack::fmt_eps(eps), have.join(", "))))
    }
}
