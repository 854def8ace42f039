//! GB-MTA (gradient-balanced multi-task attack, arXiv 2305.12066, Eq. 15): Σ_t ∇_x L_t / L_t with
//! per-sample losses, so that no task's gradient dominates because of its loss scale.
//!
//! One backward instead of the reference's T: with batch norm in eval mode samples are
//! independent, so ∇_{x_b} of the single scalar Σ_b Σ_t L_{t,b} / stopgrad(L_{t,b}) is exactly
//! Σ_t ∇_{x_b} L_{t,b} / L_{t,b} (docs/REFERENCE.md §8 item 2). A sample without valid pixels for a task
//! (L = 0) contributes nothing for that task instead of NaN (docs/REFERENCE.md §7 item 22).
//!
//! Objective per sample (Alg. 3): Σ_t (L_{t,b} − l_{t,b}) / l_{t,b}, with l the clean losses.
//! The paper profile's batch objective is the reference's Σ_t (mean_b L_{t,b} − base_t)/base_t.
use super::{Combine, Direction, DirectionContext, scalar, sum_all};
use crate::task::{LossParts, TaskKind, TaskMap, TaskSet};
use tch::{Kind, Tensor};

/// Losses at or below this are treated as zero (no valid pixel, or a perfect prediction).
const TINY: f64 = 1e-12;

/// The GB-MTA direction over all tasks.
pub struct Gbmta {
    tasks: Vec<(usize, TaskKind)>,
}

impl Gbmta {
    /// Over the given (id, task) pairs.
    pub fn new(tasks: Vec<(usize, TaskKind)>) -> Self {
        Gbmta { tasks }
    }
}

/// `1 / l` where `l > TINY`, else 0.
fn inverse(l: &Tensor) -> Tensor {
    let ok = l.gt(TINY);
    l.clamp_min(TINY).reciprocal() * ok.to_kind(l.kind())
}

impl Direction for Gbmta {
    fn tasks(&self) -> TaskSet {
        TaskSet::from_ids(self.tasks.iter().map(|t| t.0))
    }

    fn combine(&self) -> Combine {
        Combine::Sum
    }

    fn needs_clean(&self) -> bool {
        true
    }

    fn terms(&self, losses: &TaskMap<LossParts>, _ctx: &DirectionContext) -> Vec<Tensor> {
        self.tasks
            .iter()
            .map(|&(_, kind)| {
                let l = losses.get(kind).expect("used task").per_sample();
                let w = inverse(&l.detach());
                (l * w).sum(Kind::Double)
            })
            .collect()
    }

    fn objective(&self, losses: &TaskMap<Tensor>, ctx: &DirectionContext) -> Tensor {
        let clean = ctx.clean.as_ref().expect("GB-MTA's objective is relative to the clean losses; evaluate the clean point first");
        sum_all(self.tasks.iter().map(|&(_, kind)| {
            let l = losses.get(kind).expect("used task");
            let l0 = clean.get(kind).expect("clean losses of every task");
            (l - l0) * inverse(l0)
        }))
    }

    fn batch_objective(&self, losses: &TaskMap<LossParts>, ctx: &DirectionContext) -> Tensor {
        sum_all(self.tasks.iter().map(|&(_, kind)| {
            let mean = losses.get(kind).expect("used task").per_sample().mean(Kind::Double);
            let base = match ctx.base.as_ref().and_then(|b| b.get(kind)) {
                Some(&b) => scalar(b, &mean),
                None => ctx.clean.as_ref().and_then(|c| c.get(kind)).expect("clean losses").mean(Kind::Double),
            };
            (&mean - &base) / base.clamp_min(TINY)
        }))
    }
}
