//! The `autoattack` profile: Croce & Hein's APGD as AutoAttack's `attack_single_run` computes it
//! (fra31/auto-attack, docs/REFERENCE.md §4.4) — a start on the surface of the ε-ball (or a given
//! start point), initial step 2ε, a per-sample objective, per-sample step sizes, best point, and
//! restart from the best point on halving; checkpoint intervals ⌊0.22N⌋ shrinking by ⌊0.03N⌋ down
//! to ⌊0.06N⌋, condition 1 "≤ 75 % of the steps of the interval increased f", condition 2 "step
//! not reduced at the last check and no improvement of the best f since", momentum 0.75, restarts.
//!
//! Three details follow their code where a reading of the paper would differ:
//! - after a halving the iterate restarts from the best point but the previous iterate is kept,
//!   so the next momentum term is `x_best − x_prev` (not zero);
//! - "reduced at the last check" starts true for every sample, so condition 2 cannot fire at the
//!   first checkpoint;
//! - the first checkpoint's condition 1 compares the first objective with an entry of the
//!   objective buffer that was never written (zero), so it counts as an increase whenever it is
//!   positive.
use super::{MOMENTUM, RHO, momentum_step};
use crate::attack::Budget;
use crate::attack::step::{RunContext, mask, select};
use crate::error::Result;
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
    /// f after step i, for i in 0..N: steps[i][b]; zero where not yet written, as AutoAttack's
    /// `loss_steps` buffer.
    steps: Vec<Vec<f64>>,
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
            steps: vec![vec![0.0; f0.len()]; n_iter.max(1)],
            best_at_last_check: f0.to_vec(),
            reduced_last: vec![true; f0.len()],
        }
    }

    /// Records `f`, the objective after step `i` (0-based), and the best objective so far; at a
    /// checkpoint returns which samples halve their step (and restart from their best point).
    pub fn observe(&mut self, i: usize, f: &[f64], f_best: &[f64]) -> Option<Vec<bool>> {
        self.steps[i] = f.to_vec();
        self.counter += 1;
        if self.counter < self.interval {
            return None;
        }
        let k = self.interval;
        let n = self.steps.len() as i64;
        // Python indexing: step −1 is the buffer's last row.
        let at = |s: i64| &self.steps[s.rem_euclid(n) as usize];
        let reduce: Vec<bool> = (0..f.len())
            .map(|b| {
                let increases = (0..k as i64).filter(|&c| at(i as i64 - c)[b] > at(i as i64 - c - 1)[b]).count();
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

fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(tch::Device::Cpu))?)
}

/// What one restart sees of the model: at a point, the `[B]` objective and, when asked, the
/// direction's gradient.
pub type ProbeFn<'p> = dyn FnMut(&Tensor, bool) -> Result<(Tensor, Option<Tensor>)> + 'p;

/// Runs the profile: the best point over all restarts, per sample. The first restart starts at
/// the given start point when there is one.
pub(super) fn run(n_iter: usize, restarts: usize, cx: &mut RunContext) -> Result<Tensor> {
    let x = cx.x.shallow_clone();
    let budget = cx.budget;
    cx.ensure_clean(false)?;
    let mut overall: Option<(Tensor, Tensor)> = None;
    for restart in 0..restarts.max(1) {
        let start = {
            let _guard = tch::no_grad_guard();
            match (&cx.start, restart) {
                (Some(given), 0) => budget.project(&given.to_kind(x.kind()).to_device(x.device()), &x),
                _ => budget.random_surface_start(&x, &mut cx.rng(restart as u64)),
            }
        };
        let mut probe = |point: &Tensor, with_gradient: bool| -> Result<(Tensor, Option<Tensor>)> {
            let (p, g) = cx.probe(point, with_gradient)?;
            Ok((p.objective, g))
        };
        let (x_best, f_best) = single_run(n_iter, &start, &x, budget, &mut probe)?;
        overall = Some(match overall {
            None => (x_best, f_best),
            Some((xb, fb)) => {
                let _guard = tch::no_grad_guard();
                let better = f_best.gt_tensor(&fb);
                (select(&better, &x_best, &xb), f_best.where_self(&better, &fb))
            }
        });
    }
    Ok(overall.expect("at least one restart").0)
}

/// One restart from `start` (AutoAttack's `attack_single_run`): the best point and its objective,
/// per sample. `probe` is asked for the gradient at every point but the last.
pub fn single_run(n_iter: usize, start: &Tensor, x: &Tensor, budget: &Budget, probe: &mut ProbeFn) -> Result<(Tensor, Tensor)> {
    let (f0, g0) = probe(start, true)?;
    let mut g = g0.expect("a gradient was asked for");
    let (mut x_adv, mut x_prev) = (start.shallow_clone(), start.shallow_clone());
    let (mut x_best, mut f_best, mut g_best) = (start.shallow_clone(), f0.shallow_clone(), g.shallow_clone());
    let mut eta = Tensor::full([x.size()[0]], 2.0 * budget.eps, (x.kind(), x.device()));
    let mut schedule = AutoAttackSchedule::new(n_iter, &to_vec(&f0)?);
    for i in 0..n_iter {
        let a = if i == 0 { 1.0 } else { MOMENTUM };
        {
            let _guard = tch::no_grad_guard();
            let z = budget.step(&x_adv, &g, &eta, x);
            let next = momentum_step(budget, &x_adv, &z, &x_prev, a, x);
            x_prev = std::mem::replace(&mut x_adv, next);
        }
        let (f, new_g) = probe(&x_adv, i + 1 < n_iter)?;
        let _guard = tch::no_grad_guard();
        if let Some(new_g) = new_g {
            g = new_g;
        }
        let improved = f.gt_tensor(&f_best);
        x_best = select(&improved, &x_adv, &x_best);
        g_best = select(&improved, &g, &g_best);
        f_best = f.where_self(&improved, &f_best);
        if let Some(reduce) = schedule.observe(i, &to_vec(&f)?, &to_vec(&f_best)?) {
            let m = mask(&reduce, &eta);
            eta = (&eta / 2.0).where_self(&m, &eta);
            // Back to the best point; the previous iterate stays, so the next momentum term is
            // x_best − x_prev, as AutoAttack computes it.
            x_adv = select(&m, &x_best, &x_adv);
            g = select(&m, &g_best, &g);
        }
    }
    Ok((x_best, f_best))
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
    fn autoattack_schedule_follows_their_buffers_and_flags() {
        // N = 10: checkpoint intervals 2, 1, 1, … (⌊2.2⌋, then −⌊0.3⌋→1 down to ⌊0.6⌋→1), so checks
        // after steps i = 1, 2, 3 (0-based). Five samples, f0 at the start, then f after each step:
        //   s0 rises every step; s1 never moves; s2 starts high (5) and rises from 1;
        //   s3 is negative and rises; s4 starts at its best (10), then rises from 1.
        let f0 = [0.0, 0.0, 5.0, -4.0, 10.0];
        let f = [[1.0, 0.0, 1.0, -3.0, 1.0], [2.0, 0.0, 2.0, -2.0, 2.0], [3.0, 0.0, 3.0, -1.0, 3.0], [4.0, 0.0, 4.0, 0.0, 4.0]];
        let mut s = AutoAttackSchedule::new(10, &f0);
        let mut best = f0;
        let mut out = Vec::new();
        for (i, fi) in f.iter().enumerate() {
            for b in 0..5 {
                best[b] = best[b].max(fi[b]);
            }
            out.push(s.observe(i, fi, &best));
        }
        // i = 0: no check (1 step of an interval of 2).
        assert_eq!(out[0], None);
        // i = 1, k = 2: the two comparisons are f1 > f0 and f0 > "step −1", an unwritten (zero)
        // entry, not the start point. Increases: s0 2, s1 0, s2 2 (1 > 0, though 1 < 5), s3 1
        // (−3 > 0 fails), s4 2. Condition 1 (≤ 1.5) halves s1 and s3. Condition 2 cannot fire:
        // "reduced at the last check" starts true (s4, whose best did not improve, keeps its step).
        assert_eq!(out[1], Some(vec![false, true, false, true, false]));
        // i = 2, k = 1: every sample but s1 rose once (1 > 0.75). Condition 2 (not reduced last
        // time and best not improved since): s2 (best 5 = 5) and s4 (10 = 10) halve; s0 improved.
        assert_eq!(out[2], Some(vec![false, true, true, false, true]));
        // i = 3: s2 and s4 were reduced last time, so condition 2 spares them; s3 improved (−1 → 0).
        assert_eq!(out[3], Some(vec![false, true, false, false, false]));
    }

    #[test]
    fn after_a_halving_the_momentum_term_is_best_minus_previous_iterate() {
        // One sample, x = 0, ε = 8 (input units of the reference space), start at x itself. The
        // probe scripts the objective and the gradient's sign at every point it is asked about.
        let budget =
            Budget::new(crate::attack::Norm::Linf, 8.0, &crate::data::InputSpace::reference(), Kind::Float, tch::Device::Cpu).unwrap();
        let x = Tensor::zeros([1, 3, 1, 1], (Kind::Float, tch::Device::Cpu));
        let script = [(10.0, 1.0), (1.0, -1.0), (2.0, 1.0), (1.5, -1.0)];
        let mut seen = Vec::new();
        let mut probe = |p: &Tensor, _: bool| -> Result<(Tensor, Option<Tensor>)> {
            let (f, g) = script.get(seen.len()).copied().unwrap_or((0.0, 1.0));
            seen.push(f64::try_from(p.flatten(0, -1).get(0)).unwrap());
            Ok((Tensor::from_slice(&[f]), Some(p.ones_like() * g)))
        };
        drop(single_run(10, &x, &x, &budget, &mut probe).unwrap());
        // η = 2ε = 16. Step 0 (a = 1): z = P(0 + 16) = 8 → x1 = 8.
        // Step 1 (a = 0.75, g = −1): z = P(8 − 16) = −8; x2 = 8 + 0.75(−8 − 8) + 0.25(8 − 0) = −2.
        // Step 2 (g = +1): z = P(−2 + 16) = 8; x3 = −2 + 0.75(8 + 2) + 0.25(−2 − 8) = 3.
        // Check after step 2 (interval 1): f(x3) = 1.5 < f(x2) = 2 → halve: η = 8, back to the best
        // point x0 = 0 with its gradient (+1), the previous iterate x2 = −2 kept.
        // Step 3: z = P(0 + 8) = 8; x4 = 0 + 0.75(8 − 0) + 0.25(0 − (−2)) = 6.5 (6 if the
        // momentum were reset to zero).
        assert_eq!(&seen[..5], &[0.0, 8.0, -2.0, 3.0, 6.5]);
    }
}
