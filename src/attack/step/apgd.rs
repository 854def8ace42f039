//! APGD (Croce & Hein, 2020; the paper's "APGD/AutoAttack", Alg. 2–3): momentum steps whose size
//! halves at checkpoints where progress stalled, returning the best point found. Two profiles:
//!
//! - `autoattack` (default): Croce & Hein's algorithm — random start, initial step 2ε, a
//!   per-sample objective, per-sample step sizes, best point and restart-from-best on halving
//!   (with the momentum reset), checkpoint intervals ⌊0.22N⌋ shrinking by ⌊0.03N⌋ down to ⌊0.06N⌋,
//!   condition 1 "≤ 75 % of the steps since the last check increased f", condition 2 "step not
//!   reduced at the last check and no improvement of the best f since", momentum 0.75, restarts.
//! - `paper`: exactly what the authors' code runs (docs/REFERENCE.md §4.4): no random start, step ε/N, their
//!   checkpoint list (float arithmetic included: N = 10 → [0,3,5,6,8,9,10]), a batch-level
//!   objective shared by all samples, condition 2 on the current (not best) objective, ties move
//!   the best point, GB-MTA's objective relative to the dataset-level clean loss when given, and
//!   restart-from-best on halving only with `revised` (their "AAR").
//!
//! Both fuse the objective evaluation into the gradient pass at the same point, so N steps cost
//! N+1 forwards (the reference: 2N+1, docs/REFERENCE.md §8 item 4).
use super::{RunContext, StepRule, mask, select};
use tch::{Kind, Tensor};

/// Which APGD to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ApgdProfile {
    /// Croce & Hein's APGD (per-sample, random start, step 2ε, restarts).
    #[default]
    Autoattack,
    /// The authors' code, for reproduction.
    Paper,
}

/// Momentum weight α of both profiles.
const MOMENTUM: f64 = 0.75;
/// Condition 1's fraction of successful steps.
const RHO: f64 = 0.75;

/// The paper profile's checkpoints `w_j = ⌈p_j·N⌉` (duplicates removed), with
/// `p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)` while `< 1`, computed in
/// f64 exactly as the reference's Python floats.
pub fn paper_checkpoints(n_iter: usize) -> Vec<usize> {
    let mut p = vec![0.0f64, 0.22];
    loop {
        let k = p.len();
        let next = p[k - 1] + (p[k - 1] - p[k - 2] - 0.03).max(0.06);
        if next >= 1.0 {
            break;
        }
        p.push(next);
    }
    let mut w: Vec<usize> = Vec::new();
    for v in p {
        let c = (v * n_iter as f64).ceil() as usize;
        if !w.contains(&c) {
            w.push(c);
        }
    }
    w
}

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

/// The reference's step-size control over a batch-level objective (docs/REFERENCE.md §4.4).
#[derive(Debug, Clone)]
pub struct PaperSchedule {
    checkpoints: Vec<usize>,
    /// f[k] for every iterate so far.
    f: Vec<f64>,
    /// η_k for every iteration so far.
    eta: Vec<f64>,
}

impl PaperSchedule {
    /// After the first step: f(x⁰), f(x¹) and η₀ = η₁.
    pub fn new(n_iter: usize, eta0: f64, f0: f64, f1: f64) -> Self {
        PaperSchedule { checkpoints: paper_checkpoints(n_iter), f: vec![f0, f1], eta: vec![eta0, eta0] }
    }

    /// The current step size η_k.
    pub fn eta(&self) -> f64 {
        *self.eta.last().expect("η₀ is set")
    }

    /// At loop index `k` (1..N−1), after f[k+1] is known: sets η_{k+1}; true when it halved.
    pub fn observe(&mut self, k: usize, f_next: f64) -> bool {
        self.f.push(f_next);
        let eta = self.eta();
        let halve = match self.checkpoints.iter().position(|&w| w == k) {
            Some(j) if j >= 1 => {
                let prev = self.checkpoints[j - 1];
                let increases = (prev..k).filter(|&i| self.f[i + 1] > self.f[i]).count();
                let cond1 = (increases as f64) < RHO * (k - prev) as f64;
                // Condition 2 as the reference codes it: equal step sizes and equal *current* objectives.
                let cond2 = self.eta[prev] == self.eta[k] && self.f[prev] == self.f[k];
                cond1 || cond2
            }
            _ => false,
        };
        self.eta.push(if halve { eta / 2.0 } else { eta });
        halve
    }
}

/// Auto-PGD.
#[derive(Debug, Clone, Copy)]
pub struct Apgd {
    pub n_iter: usize,
    pub profile: ApgdProfile,
    /// Random restarts (autoattack profile); the best point over all is kept per sample.
    pub restarts: usize,
    /// Paper profile: restart from the best point when the step halves (the reference's "AAR").
    pub revised: bool,
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(tch::Device::Cpu)).expect("1-D objective")
}

impl Apgd {
    fn run_autoattack(&self, cx: &mut RunContext) -> Tensor {
        let x = cx.x.shallow_clone();
        cx.ensure_clean(false);
        let mut overall: Option<(Tensor, Tensor)> = None;
        for restart in 0..self.restarts.max(1) {
            let mut rng = cx.rng(restart as u64);
            let start = {
                let _guard = tch::no_grad_guard();
                cx.budget.random_start(&x, &mut rng)
            };
            let (p, mut g) = cx.gradient(&start, false);
            let (mut x_adv, mut x_prev) = (start.shallow_clone(), start.shallow_clone());
            let (mut x_best, mut f_best, mut g_best) = (start.shallow_clone(), p.objective.shallow_clone(), g.shallow_clone());
            let mut eta = cx.per_sample(2.0 * cx.budget.eps);
            let mut schedule = AutoAttackSchedule::new(self.n_iter, &to_vec(&p.objective));
            for i in 0..self.n_iter {
                let a = if i == 0 { 1.0 } else { MOMENTUM };
                {
                    let _guard = tch::no_grad_guard();
                    let z = cx.budget.step(&x_adv, &g, &eta, &x);
                    let next = cx.budget.project(&(&x_adv + (&z - &x_adv) * a + (&x_adv - &x_prev) * (1.0 - a)), &x);
                    x_prev = std::mem::replace(&mut x_adv, next);
                }
                let (p, new_g) = cx.probe(&x_adv, i + 1 < self.n_iter);
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

    fn run_paper(&self, cx: &mut RunContext) -> Tensor {
        let x = cx.x.shallow_clone();
        let batch_f = |t: &Tensor| f64::try_from(t).unwrap_or(f64::NAN);
        let eta0 = cx.budget.eps / self.n_iter.max(1) as f64;
        let (p0, g0) = cx.gradient(&x, true);
        let x1 = {
            let _guard = tch::no_grad_guard();
            cx.budget.step(&x, &g0, &cx.per_sample(eta0), &x)
        };
        let (p1, g1) = cx.probe(&x1, self.n_iter > 1);
        let (f0, f1) = (batch_f(&p0.batch_objective), batch_f(&p1.batch_objective));
        // First index on ties: x⁰ stays best unless x¹ is strictly better.
        let (mut x_best, mut g_best, mut f_best) = if f1 > f0 {
            (x1.shallow_clone(), g1.as_ref().map(Tensor::shallow_clone), f1)
        } else {
            (x.shallow_clone(), Some(g0.shallow_clone()), f0)
        };
        let mut schedule = PaperSchedule::new(self.n_iter, eta0, f0, f1);
        // x¹ has no gradient only when N = 1, and then nothing steps from it.
        let mut g = g1.unwrap_or(g0);
        let (mut x_prev, mut x_cur) = (x.shallow_clone(), x1);
        for k in 1..self.n_iter {
            let next = {
                let _guard = tch::no_grad_guard();
                let eta = cx.per_sample(schedule.eta());
                let step = cx.budget.ascent(&g, &eta);
                let z = cx.budget.project_ball(&(&x_cur + step), &x);
                cx.budget.project(&(&x_cur + (&z - &x_cur) * MOMENTUM + (&x_cur - &x_prev) * (1.0 - MOMENTUM)), &x)
            };
            let (p, mut g_next) = cx.probe(&next, k + 1 < self.n_iter);
            let f_next = batch_f(&p.batch_objective);
            // Ties move the best point (the reference uses ≥).
            if f_next >= f_best {
                x_best = next.shallow_clone();
                g_best = g_next.as_ref().map(Tensor::shallow_clone);
                f_best = f_next;
            }
            let mut next = next;
            if schedule.observe(k, f_next) && self.revised {
                // The reference resets the iterate but keeps f[k+1] and the momentum term x_best − x^(k).
                next = x_best.shallow_clone();
                g_next = g_best.as_ref().map(Tensor::shallow_clone);
            }
            x_prev = std::mem::replace(&mut x_cur, next);
            // Only the last point has no gradient, and nothing steps from it.
            if let Some(g_next) = g_next {
                g = g_next;
            }
        }
        x_best
    }
}

impl StepRule for Apgd {
    fn run(&self, cx: &mut RunContext) -> Tensor {
        match self.profile {
            ApgdProfile::Autoattack => self.run_autoattack(cx),
            ApgdProfile::Paper => self.run_paper(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_checkpoints_match_the_reference() {
        // docs/REFERENCE.md §4.4, including the float artefact at N = 10 (7 is never a checkpoint).
        assert_eq!(paper_checkpoints(10), vec![0, 3, 5, 6, 8, 9, 10]);
        assert_eq!(paper_checkpoints(20), vec![0, 5, 9, 12, 15, 16, 18, 19, 20]);
        assert_eq!(paper_checkpoints(100), vec![0, 22, 41, 58, 70, 80, 87, 93, 99]);
    }

    #[test]
    fn autoattack_checkpoints_follow_croce_and_hein() {
        // intervals ⌊0.22N⌋ → −⌊0.03N⌋ each time → at least ⌊0.06N⌋ (all ≥ 1)
        assert_eq!(autoattack_checkpoints(10), vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(autoattack_checkpoints(20), vec![4, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
        assert_eq!(autoattack_checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
    }

    /// Drives the paper schedule with f[0..=N] and returns η_0..η_N.
    fn paper_etas(f: &[f64]) -> Vec<f64> {
        let n = f.len() - 1;
        let mut s = PaperSchedule::new(n, 1.0, f[0], f[1]);
        for k in 1..n {
            s.observe(k, f[k + 1]);
        }
        s.eta
    }

    #[test]
    fn paper_schedule_halves_exactly_at_stalled_checkpoints() {
        // Strictly increasing f: never halves.
        let inc: Vec<f64> = (0..=10).map(|k| k as f64).collect();
        assert_eq!(paper_etas(&inc), vec![1.0; 11]);
        // f0..f3 = 0,1,2,2: at k = 3, 2 of 3 steps increased, 2 < 0.75·3 → η_4 = 0.5. Then
        // f keeps increasing: k = 5 (2/2), 6 (1/1), 8 (2/2), 9 (1/1) keep η.
        let f = [0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        assert_eq!(paper_etas(&f), vec![1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
        // Condition 2 alone: f[3] = f[5] with equal η at 3 and 5, though both steps 3→4→5 count as
        // increases? No: f4 > f3 and f5 > f4 cannot both hold with f5 = f3. Use f = 0,1,2,3,2,3:
        // at k = 3 all three increased (keep); at k = 5 one of two increased (1 < 1.5) → halve.
        let f = [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(paper_etas(&f)[..7], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]);
    }

    #[test]
    fn paper_condition_two_compares_current_objectives() {
        // With η unchanged since checkpoint 3, f[3] == f[5] triggers condition 2 at k = 5 even though
        // the best objective improved in between (the reference's quirk, docs/REFERENCE.md §7 item 6):
        // f = 0,1,2,3,4,3 → at k = 5: increases 3→4 yes, 4→3 no → 1 < 1.5 (cond1 too). Make cond1
        // false by checking k = 6 instead: checkpoints 5 → 6 with f5 = f6 and η5 = η6.
        let f = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let etas = paper_etas(&f);
        // k = 6: one step 5→6 (no increase → cond1: 0 < 0.75) → halve at η_7.
        assert_eq!(etas[6], 1.0);
        assert_eq!(etas[7], 0.5);
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
