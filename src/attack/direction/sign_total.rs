//! SignTotal: Σ_t sign(∇_x L_t) — every task gets one vote per input coordinate, whatever its
//! gradient's magnitude (the paper's "SignTotal"). Needs T input gradients; they share one forward
//! and take one backward each. Objective per sample: Σ_t L_{t,b}.
use super::{Combine, Direction, DirectionContext, sum_all};
use crate::task::{LossParts, TaskKind, TaskMap, TaskSet};
use tch::{Kind, Tensor};

/// The sign-vote direction over all tasks.
pub struct SignTotal {
    tasks: Vec<(usize, TaskKind)>,
}

impl SignTotal {
    /// Over the given (id, task) pairs.
    pub fn new(tasks: Vec<(usize, TaskKind)>) -> Self {
        SignTotal { tasks }
    }
}

impl Direction for SignTotal {
    fn tasks(&self) -> TaskSet {
        TaskSet::from_ids(self.tasks.iter().map(|t| t.0))
    }

    fn combine(&self) -> Combine {
        Combine::SignSum
    }

    /// Σ_b L_{t,b}: its gradient has the sign of the pooled loss's gradient for every sample.
    fn terms(&self, losses: &TaskMap<LossParts>, _ctx: &DirectionContext) -> Vec<Tensor> {
        self.tasks
            .iter()
            .map(|&(_, kind)| {
                let p = losses.get(kind).expect("used task");
                p.per_sample().sum(p.sum.kind())
            })
            .collect()
    }

    fn objective(&self, losses: &TaskMap<Tensor>, _ctx: &DirectionContext) -> Tensor {
        sum_all(self.tasks.iter().map(|&(_, kind)| losses.get(kind).expect("used task").shallow_clone()))
    }

    /// The reference: Σ_t mean_b L_{t,b}.
    fn batch_objective(&self, losses: &TaskMap<LossParts>, _ctx: &DirectionContext) -> Tensor {
        sum_all(self.tasks.iter().map(|&(_, kind)| losses.get(kind).expect("used task").per_sample().mean(Kind::Double)))
    }
}
