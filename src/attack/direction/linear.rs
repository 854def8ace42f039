//! Linear directions: ∇_x Σ_t w_t L_t over a set of tasks.
//! - `single:<task>` (Single-x): one task, w = 1, forward through that task's path only;
//! - `total`: every task, w = 1 (one backward of the summed loss);
//! - `weighted:<t>=<w>,…`: the listed tasks with the given weights (e.g. custom task weights, a subset).
//!
//! With the `pooled` reduction each L_t is the batch-pooled `mean` loss (the reference); with
//! `per-sample` (default) it is Σ_b L_{t,b}. Objective per sample: Σ_t w_t L_{t,b}.
use super::{Combine, Direction, DirectionContext, Reduction, sum_all};
use crate::task::{LossParts, TaskKind, TaskMap, TaskSet};
use tch::{Kind, Tensor};

/// A weighted sum of task losses.
pub struct Linear {
    /// (task id, task, weight), in task order.
    terms: Vec<(usize, TaskKind, f64)>,
}

impl Linear {
    /// A direction over `terms`.
    pub fn new(terms: Vec<(usize, TaskKind, f64)>) -> Self {
        Linear { terms }
    }
}

impl Direction for Linear {
    fn tasks(&self) -> TaskSet {
        TaskSet::from_ids(self.terms.iter().map(|t| t.0))
    }

    fn combine(&self) -> Combine {
        Combine::Sum
    }

    fn terms(&self, losses: &TaskMap<LossParts>, ctx: &DirectionContext) -> Vec<Tensor> {
        self.terms
            .iter()
            .map(|&(_, kind, w)| {
                let parts = losses.get(kind).expect("forwarded tasks have losses");
                let l = match ctx.reduction {
                    Reduction::PerSample => parts.per_sample().sum(parts.sum.kind()),
                    Reduction::Pooled => parts.pooled(),
                };
                l * w
            })
            .collect()
    }

    fn objective(&self, losses: &TaskMap<Tensor>, _ctx: &DirectionContext) -> Tensor {
        sum_all(self.terms.iter().map(|&(_, kind, w)| losses.get(kind).expect("used task") * w))
    }

    fn batch_objective(&self, losses: &TaskMap<LossParts>, _ctx: &DirectionContext) -> Tensor {
        sum_all(self.terms.iter().map(|&(_, kind, w)| losses.get(kind).expect("used task").pooled().to_kind(Kind::Double) * w))
    }
}
