//! The `autoattack` profile: Croce & Hein's APGD — random start, initial step 2ε, a per-sample
//! objective, per-sample step sizes, best point and restart-from-best on halving (with the
//! momentum reset), checkpoint intervals ⌊0.22N⌋ shrinking by ⌊0.03N⌋ down to ⌊0.06N⌋,
//! condition 1 "≤ 75 % of the steps since the last check increased f", condition 2 "step not
//! reduced at the last check and no improvement of the best f since", momentum 0.75, restarts.
use super::{Apgd, MOMENTUM, RHO, momentum_step};
use crate::attack::step::{RunContext, mask, select};
use tch::{Kind, Tensor};

/// The autoattack profile's checkpoints: the iteration counts after which the step size is
/// checked (intervals ⌊0.22N⌋, shrinking by ⌊0.03N⌋ to at least ⌊0.06N⌋, each at least 1).
pub fn autoattack_checkpoints(n_iter: usize) -> Vec<usize> {
    let (mut interval, decrement, minimum) = autoattack_intervals(n_iter);
    let mut out = Vec::new();
    let mut at = interval;
    while at <= n_iter {
        out.push(at);
        interval = interval.saturating_sub(decrement).max(minimum);
        at += interval;
    }
    out
}

fn autoattack_intervals(n: usize) -> (usize, usize, usize) {
    let f = |frac: f64| ((frac * n as f64) as usize).max(1);
    (f(0.22), f(0.03), f(0.06))
}

/// Croce & Hein's step-size control over per-sample objectives.
#[derive(Debug, Clone)]
pub struct AutoAttackSchedule {
    interval: usize,
    decrement: usize,
    minimum: usize,
    counter: usize,
    /// f after every step, starting with the start point: history[s][b].
    history: Vec<Vec<f64>>,
    best_at_last_check: Vec<f64>,
    reduced_last: Vec<bool>,
}

impl AutoAttackSchedule {
    /// A schedule for `n_iter` steps whose start point scored `f0`.
    pub fn new(n_iter: usize, f0: &[f64]) -> Self {
        let (interval, decrement, minimum) = autoattack_intervals(n_iter);
        AutoAttackSchedule {
            interval,
            decrement,
            minimum,
            counter: 0,
            history: vec![f0.to_vec()],
            best_at_last_check: f0.to_vec(),
            reduced_last: vec![false; f0.len()],
        }
    }

    /// Records the objective after a step and the best objective so far; at a checkpoint
    /// returns which samples halve their step (and restart from their best point).
    pub fn observe(&mut self, f: &[f64], f_best: &[f64]) -> Option<Vec<bool>> {
        self.history.push(f.to_vec());
        self.counter += 1;
        if self.counter < self.interval {
            return None;
        }
        let k = self.interval;
        let n = self.history.len();
        let reduce: Vec<bool> = (0..f.len())
            .map(|b| {
                let increases = (n - k..n).filter(|&s| self.history[s][b] > self.history[s - 1][b]).count();
                let oscillating = increases as f64 <= k as f64 * RHO;
                let stalled = !self.reduced_last[b] && self.best_at_last_check[b] >= f_best[b];
                oscillating || stalled
            })
            .collect();
        self.reduced_last = reduce.clone();
        self.best_at_last_check = f_best.to_vec();
        self.counter = 0;
        self.interval = self.interval.saturating_sub(self.decrement).max(self.minimum);
        Some(reduce)
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(tch::Device::Cpu)).expect("1-D objective")
}

/// Runs the profile: the best point over all restarts, per sample.
pub(super) fn run(apgd: &Apgd, cx: &mut RunContext) -> Tensor {
    let x = cx.x.shallow_clone();
    cx.ensure_clean(false);
    let mut overall: Option<(Tensor, Tensor)> = None;
    for restart in 0..apgd.restarts.max(1) {
        let mut rng = cx.rng(restart as u64);
        let start = {
            let _guard = tch::no_grad_guard();
            cx.budget.random_start(&x, &mut rng)
        };
        let (p, mut g) = cx.gradient(&start, false);
        let (mut x_adv, mut x_prev) = (start.shallow_clone(), start.shallow_clone());
        let (mut x_best, mut f_best, mut g_best) = (start.shallow_clone(), p.objective.shallow_clone(), g.shallow_clone());
        let mut eta = cx.per_sample(2.0 * cx.budget.eps);
        let mut schedule = AutoAttackSchedule::new(apgd.n_iter, &to_vec(&p.objective));
        for i in 0..apgd.n_iter {
            let a = if i == 0 { 1.0 } else { MOMENTUM };
            {
                let _guard = tch::no_grad_guard();
                let z = cx.budget.step(&x_adv, &g, &eta, &x);
                let next = momentum_step(cx.budget, &x_adv, &z, &x_prev, a, &x);
                x_prev = std::mem::replace(&mut x_adv, next);
            }
            let (p, new_g) = cx.probe(&x_adv, i + 1 < apgd.n_iter);
            let _guard = tch::no_grad_guard();
            if let Some(new_g) = new_g {
                g = new_g;
            }
            let improved = p.objective.gt_tensor(&f_best);
            x_best = select(&improved, &x_adv, &x_best);
            g_best = select(&improved, &g, &g_best);
            f_best = p.objective.where_self(&improved, &f_best);
            if let Some(reduce) = schedule.observe(&to_vec(&p.objective), &to_vec(&f_best)) {
                let m = mask(&reduce, &eta);
                eta = (&eta / 2.0).where_self(&m, &eta);
                x_adv = select(&m, &x_best, &x_adv);
                g = select(&m, &g_best, &g);
                // Restarting from the best point also restarts the momentum.
                x_prev = select(&m, &x_best, &x_prev);
            }
        }
        overall = Some(match overall {
            None => (x_best, f_best),
            Some((xb, fb)) => {
                let _guard = tch::no_grad_guard();
                let better = f_best.gt_tensor(&fb);
                (select(&better, &x_best, &xb), f_best.where_self(&better, &fb))
            }
        });
    }
    overall.expect("at least one restart").0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoattack_checkpoints_follow_croce_and_hein() {
        // intervals ⌊0.22N⌋ → −⌊0.03N⌋ each time → at least ⌊0.06N⌋ (all ≥ 1)
        assert_eq!(autoattack_checkpoints(10), vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(autoattack_checkpoints(20), vec![4, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
        assert_eq!(autoattack_checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
    }

    #[test]
    fn autoattack_schedule_per_sample_decisions() {
        // N = 10: checks after 2, 3, 4, … steps. Sample 0 improves every step; sample 1 never moves.
        let mut s = AutoAttackSchedule::new(10, &[0.0, 0.0]);
        let mut best = [0.0f64, 0.0];
        let mut decisions = Vec::new();
        for step in 1..=4 {
            let f = [step as f64, 0.0];
            best[0] = best[0].max(f[0]);
            decisions.push(s.observe(&f, &best));
        }
        // Step 1: no check. Step 2 (interval 2): sample 0 had 2/2 increases (> 1.5) and improved → keep;
        // sample 1 had 0 increases (≤ 1.5) → halve. Step 3 (interval 1): sample 1 again 0 ≤ 0.75 → halve.
        assert_eq!(decisions[0], None);
        assert_eq!(decisions[1], Some(vec![false, true]));
        assert_eq!(decisions[2], Some(vec![false, true]));
        assert_eq!(decisions[3], Some(vec![false, true]));
    }

    #[test]
    fn autoattack_condition_two_needs_no_improvement_and_no_recent_reduction() {
        // One sample that increases once (1/2 ≤ 1.5 → halve by condition 1 at step 2), then
        // increases at step 3 (1/1 > 0.75, cond1 false) but its best did not improve since the
        // last check (f = 1 < best 2)… it did increase from 0.5 to 1: best stays 2 → stalled, yet it
        // was reduced at the last check → keep. At step 4 it falls: cond1 → halve.
        let mut s = AutoAttackSchedule::new(10, &[0.0]);
        let fs = [2.0, 0.5, 1.0, 0.9];
        let mut best = 0.0f64;
        let mut out = Vec::new();
        for f in fs {
            best = best.max(f);
            out.push(s.observe(&[f], &[best]));
        }
        assert_eq!(out, vec![None, Some(vec![true]), Some(vec![false]), Some(vec![true])]);
    }
}
