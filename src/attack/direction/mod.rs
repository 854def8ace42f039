//! Directions: how the task losses become one input gradient (docs/REFERENCE.md §4.1). A direction is data —
//! one differentiable scalar *term* per task it uses, a rule to combine the terms' gradients, and
//! the per-sample objective that APGD tracks — so each file states its formula and nothing else;
//! [`objective`], [`gradient`] and [`components`] do the autograd for all of them:
//! - `Sum`: one backward of Σ terms (Single, Total, weighted, GB-MTA: one backward each);
//! - `SignSum`: one backward per term from one shared forward, then Σ sign(·) (SignTotal).
//!
//! Per-task gradients (Auto-SAGE's components) are the terms' individual gradients.
mod gbmta;
mod linear;
mod sign_total;

pub use gbmta::Gbmta;
pub use linear::Linear;
pub use sign_total::SignTotal;

use super::oracle::Oracle;
use crate::error::{Error, Result};
use crate::task::{LossParts, Task, TaskKind, TaskMap, TaskSet};
use std::fmt;
use std::str::FromStr;
use tch::{Kind, Tensor};

/// How Single/Total/weighted terms reduce a task loss over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Σ_b L_{t,b}: every sample's gradient is its own loss's gradient, independent of the batch.
    #[default]
    PerSample,
    /// The pooled batch mean Σ_b S_{t,b} / Σ_b W_{t,b} (the reference's `mean` criteria): Total's
    /// task weighting then depends on the batch composition.
    Pooled,
}

/// How the terms' gradients become the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// ∇ Σ terms, one backward.
    Sum,
    /// Σ sign(∇ term), one backward per term.
    SignSum,
}

/// What a step rule needs to know at a point, beyond the losses themselves.
#[derive(Debug, Default)]
pub struct DirectionContext {
    /// Reduction for linear directions.
    pub reduction: Reduction,
    /// `[B]` per-sample clean losses per task (GB-MTA's l_i of Alg. 3 line 3).
    pub clean: Option<TaskMap<Tensor>>,
    /// Dataset-level clean `mean` losses per task: the reference's `criterionBase` for the
    /// paper-profile APGD objective of GB-MTA (docs/REFERENCE.md §7 item 9). Batch clean means when absent.
    pub base: Option<TaskMap<f64>>,
}

/// A direction.
pub trait Direction {
    /// The tasks whose paths the forward pass runs.
    fn tasks(&self) -> TaskSet;
    /// How term gradients combine.
    fn combine(&self) -> Combine;
    /// True when the objective is relative to the clean losses (GB-MTA).
    fn needs_clean(&self) -> bool {
        false
    }
    /// One differentiable scalar per used task, in task order.
    fn terms(&self, losses: &TaskMap<LossParts>, ctx: &DirectionContext) -> Vec<Tensor>;
    /// `[B]` per-sample objective (detached), the quantity APGD maximises per sample.
    fn objective(&self, losses: &TaskMap<Tensor>, ctx: &DirectionContext) -> Tensor;
    /// The reference's batch-level objective (scalar tensor), used by the paper APGD profile.
    fn batch_objective(&self, losses: &TaskMap<LossParts>, ctx: &DirectionContext) -> Tensor;
}

/// A direction by name, as the CLI and reports spell it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DirectionSpec {
    /// ∇ L_task through the task's path only.
    Single(TaskKind),
    /// ∇ Σ_t L_t.
    Total,
    /// Σ_t sign(∇ L_t).
    SignTotal,
    /// Σ_t ∇ L_t / L_t (per-sample losses): GB-MTA.
    Gbmta,
    /// ∇ Σ_t w_t L_t over the listed tasks only.
    Weighted(Vec<(TaskKind, f64)>),
}

impl fmt::Display for DirectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectionSpec::Single(t) => write!(f, "single:{}", t.name()),
            DirectionSpec::Total => f.write_str("total"),
            DirectionSpec::SignTotal => f.write_str("sign-total"),
            DirectionSpec::Gbmta => f.write_str("gbmta"),
            DirectionSpec::Weighted(w) => {
                let parts: Vec<String> = w.iter().map(|(t, w)| format!("{}={w}", t.name())).collect();
                write!(f, "weighted:{}", parts.join(","))
            }
        }
    }
}

impl From<DirectionSpec> for String {
    fn from(d: DirectionSpec) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DirectionSpec {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl FromStr for DirectionSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::parameter("direction", reason);
        let s = s.trim();
        match s {
            "total" => return Ok(DirectionSpec::Total),
            "sign-total" | "signtotal" | "sign_total" => return Ok(DirectionSpec::SignTotal),
            "gbmta" | "gb-mta" | "mtl" => return Ok(DirectionSpec::Gbmta),
            _ => {}
        }
        if let Some(task) = s.strip_prefix("single:") {
            return Ok(DirectionSpec::Single(task.parse().map_err(bad)?));
        }
        if let Some(list) = s.strip_prefix("weighted:") {
            let mut weights = Vec::new();
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (t, w) = item.split_once('=').ok_or_else(|| bad(format!("`{item}`: write task=weight, e.g. segm=0.5")))?;
                let kind: TaskKind = t.parse().map_err(bad)?;
                let w: f64 = w.trim().parse().map_err(|_| bad(format!("`{item}`: `{w}` is not a number")))?;
                if !w.is_finite() {
                    return Err(bad(format!("`{item}`: the weight must be finite")));
                }
                if weights.iter().any(|(k, _)| *k == kind) {
                    return Err(bad(format!("task `{kind}` is weighted twice")));
                }
                weights.push((kind, w));
            }
            if weights.is_empty() {
                return Err(bad("`weighted:` needs at least one task=weight".into()));
            }
            return Ok(DirectionSpec::Weighted(weights));
        }
        Err(bad(format!("`{s}` is not a direction; use single:<task>, total, sign-total, gbmta or weighted:<task>=<w>,...")))
    }
}

impl DirectionSpec {
    /// The paper's directions for a model predicting `tasks`: every Single-x in task order, then
    /// Total, SignTotal and GB-MTA (what `all` means on the command line and in study files).
    pub fn all(tasks: &[TaskKind]) -> Vec<DirectionSpec> {
        let mut out: Vec<DirectionSpec> = tasks.iter().map(|&t| DirectionSpec::Single(t)).collect();
        out.extend([DirectionSpec::Total, DirectionSpec::SignTotal, DirectionSpec::Gbmta]);
        out
    }

    /// How the paper names it: `Single-Segm`, `Total`, `SignTotal`, `GB-MTA`, or the id of a
    /// weighted direction.
    pub fn display_name(&self) -> String {
        match self {
            DirectionSpec::Single(t) => format!("Single-{}", t.display_short()),
            DirectionSpec::Total => "Total".into(),
            DirectionSpec::SignTotal => "SignTotal".into(),
            DirectionSpec::Gbmta => "GB-MTA".into(),
            DirectionSpec::Weighted(_) => self.to_string(),
        }
    }

    /// Its fixed colour in figures (RGB): Single-x by task, then Total, SignTotal, GB-MTA; grey
    /// for weighted directions.
    pub fn colour(&self) -> [u8; 3] {
        const TASKS: [[u8; 3]; 5] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [148, 103, 189], [140, 86, 75]];
        match self {
            DirectionSpec::Single(t) => TASKS[t.index()],
            DirectionSpec::Total => [214, 39, 40],
            DirectionSpec::SignTotal => [23, 190, 207],
            DirectionSpec::Gbmta => [20, 20, 20],
            DirectionSpec::Weighted(_) => [127, 127, 127],
        }
    }

    /// Its place in tables and legends: Single-x in task order, Total, SignTotal, GB-MTA, then
    /// weighted directions.
    pub fn rank(&self) -> usize {
        match self {
            DirectionSpec::Single(t) => t.index(),
            DirectionSpec::Total => 10,
            DirectionSpec::SignTotal => 11,
            DirectionSpec::Gbmta => 12,
            DirectionSpec::Weighted(_) => 20,
        }
    }

    /// Builds the direction for a model with `tasks`.
    ///
    /// # Errors
    /// A direction naming a task the model does not predict.
    pub fn build(&self, tasks: &[Task]) -> Result<Box<dyn Direction>> {
        let id_of = |kind: TaskKind| {
            tasks.iter().position(|t| t.kind() == kind).ok_or_else(|| {
                let names: Vec<&str> = tasks.iter().map(|t| t.kind().name()).collect();
                Error::parameter("direction", format!("the model has no `{kind}` task (it predicts {})", names.join(", ")))
            })
        };
        let all: Vec<(usize, TaskKind)> = tasks.iter().enumerate().map(|(i, t)| (i, t.kind())).collect();
        Ok(match self {
            DirectionSpec::Single(kind) => Box::new(Linear::new(vec![(id_of(*kind)?, *kind, 1.0)])),
            DirectionSpec::Total => Box::new(Linear::new(all.iter().map(|&(i, k)| (i, k, 1.0)).collect())),
            DirectionSpec::Weighted(w) => {
                let mut terms = Vec::new();
                for &(kind, weight) in w {
                    terms.push((id_of(kind)?, kind, weight));
                }
                terms.sort_by_key(|t| t.0);
                Box::new(Linear::new(terms))
            }
            DirectionSpec::SignTotal => Box::new(SignTotal::new(all)),
            DirectionSpec::Gbmta => Box::new(Gbmta::new(all)),
        })
    }
}

/// What one forward pass at a point tells, whatever else was computed there.
#[derive(Debug)]
pub struct Probe {
    /// `[B]` per-sample objective.
    pub objective: Tensor,
    /// The reference's batch-level objective (scalar).
    pub batch_objective: Tensor,
    /// `[B]` per-sample losses of the used tasks.
    pub losses: TaskMap<Tensor>,
}

/// The losses and objectives of `dir` at `x`, without autograd. With `at_clean`, the point is the
/// clean input and its per-sample losses become the clean reference of `ctx` if it has none yet.
///
/// # Errors
/// What the model's forward fails with.
pub fn objective(dir: &dyn Direction, oracle: &Oracle, x: &Tensor, ctx: &mut DirectionContext, at_clean: bool) -> Result<Probe> {
    let leaf = x.detach();
    let parts = {
        let _guard = tch::no_grad_guard();
        oracle.losses(&leaf, dir.tasks())?
    };
    Ok(probe(dir, ctx, parts, at_clean))
}

/// [`objective`] plus the combined direction at `x`: one backward of Σ terms (`Combine::Sum`) or
/// Σ sign(∇ term) with one backward per term (`Combine::SignSum`).
///
/// # Errors
/// What the model's forward or backward fails with.
pub fn gradient(dir: &dyn Direction, oracle: &Oracle, x: &Tensor, ctx: &mut DirectionContext, at_clean: bool) -> Result<(Probe, Tensor)> {
    let (leaf, parts) = forward_with_grad(dir, oracle, x)?;
    let losses = remember_clean(ctx, &parts, at_clean);
    let terms = dir.terms(&parts, ctx);
    let grad = match dir.combine() {
        Combine::Sum => {
            let total = sum_all(terms.into_iter());
            oracle.gradients(&[total], &leaf)?.pop().expect("one scalar, one gradient")
        }
        Combine::SignSum => sum_all(oracle.gradients(&terms, &leaf)?.iter().map(Tensor::sign)),
    };
    Ok((finish(dir, ctx, &parts, losses), grad))
}

/// [`objective`] plus one gradient per term (Auto-SAGE's components; signs for `SignSum` directions).
///
/// # Errors
/// What the model's forward or backward fails with.
pub fn components(
    dir: &dyn Direction,
    oracle: &Oracle,
    x: &Tensor,
    ctx: &mut DirectionContext,
    at_clean: bool,
) -> Result<(Probe, Vec<Tensor>)> {
    let (leaf, parts) = forward_with_grad(dir, oracle, x)?;
    let losses = remember_clean(ctx, &parts, at_clean);
    let terms = dir.terms(&parts, ctx);
    let mut grads = oracle.gradients(&terms, &leaf)?;
    if dir.combine() == Combine::SignSum {
        grads = grads.iter().map(Tensor::sign).collect();
    }
    Ok((finish(dir, ctx, &parts, losses), grads))
}

/// One forward at a fresh leaf that requires grad.
fn forward_with_grad(dir: &dyn Direction, oracle: &Oracle, x: &Tensor) -> Result<(Tensor, TaskMap<LossParts>)> {
    let leaf = x.detach().set_requires_grad(true);
    let parts = oracle.losses(&leaf, dir.tasks())?;
    Ok((leaf, parts))
}

/// The detached per-sample losses; at the clean point they also become `ctx.clean` (once).
fn remember_clean(ctx: &mut DirectionContext, parts: &TaskMap<LossParts>, at_clean: bool) -> TaskMap<Tensor> {
    let losses = parts.map(|_, p| p.per_sample().detach());
    if at_clean && ctx.clean.is_none() {
        ctx.clean = Some(losses.map(|_, l| l.shallow_clone()));
    }
    losses
}

fn probe(dir: &dyn Direction, ctx: &mut DirectionContext, parts: TaskMap<LossParts>, at_clean: bool) -> Probe {
    let losses = remember_clean(ctx, &parts, at_clean);
    finish(dir, ctx, &parts, losses)
}

/// The objectives, computed after the gradients (no autograd).
fn finish(dir: &dyn Direction, ctx: &DirectionContext, parts: &TaskMap<LossParts>, losses: TaskMap<Tensor>) -> Probe {
    let _guard = tch::no_grad_guard();
    let parts = parts.map(|_, p| p.detach());
    Probe { objective: dir.objective(&losses, ctx), batch_objective: dir.batch_objective(&parts, ctx), losses }
}

/// Σ of `[B]` tensors (zeros of the first's shape when empty is impossible: directions have terms).
pub(crate) fn sum_all(items: impl Iterator<Item = Tensor>) -> Tensor {
    items.reduce(|a, b| a + b).expect("a direction uses at least one task")
}

/// A scalar f64 tensor.
pub(crate) fn scalar(v: f64, like: &Tensor) -> Tensor {
    Tensor::from(v).to_kind(Kind::Double).to_device(like.device())
}

#[cfg(test)]
mod tests;
