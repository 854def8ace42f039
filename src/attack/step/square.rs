//! The Square attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
//! black-box adversarial attack via random search", ECCV 2020), L∞ only: a random search that
//! only reads the model's losses, never a gradient, so it is the check that an apparently robust
//! model is not merely hiding its gradient.
//!
//! Each sample's score is the direction's per-sample objective, maximised (for GB-MTA the balanced
//! relative increase Σ_t (L_t(x′) − L_t(x))/L_t(x), for Single-x that task's loss, and so on), so
//! the rule composes with every direction. The run:
//!
//! 1. **Vertical stripes.** `x_best = clip(x + ε·s)` with one random sign s ∈ {−1, +1} per
//!    (sample, channel, column), the same down every row: every pixel starts on a corner of the
//!    ε-ball. One query.
//! 2. **`n_queries` iterations** `i = 0, 1, …`: a square of side
//!    `s = clamp(round_half_even(√(p·H·W)), 1, min(H, W))` (`p·n_features/c` with
//!    `n_features = C·H·W`, as AutoAttack writes it) at a uniformly random position, the top-left
//!    corner in `[0, H − s] × [0, W − s]`; inside it every channel is set to `x ± ε` with one
//!    random sign per channel, projected onto the ball and clipped to the pixel range. The fraction `p` follows the paper's schedule
//!    ([`p_selection`]): `p_init` halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of
//!    10 000, the iteration counter rescaled to `n_queries` as in the authors' repository (AutoAttack's
//!    `standard` version switches the rescaling off and relies on n_queries = 5000 ≈ the paper's
//!    10 000; rescaled, the schedule means the same for any budget). One query per iteration.
//! 3. **Per-sample acceptance.** A sample keeps its proposal only when its objective is strictly
//!    larger than its best so far; so every sample's best objective never decreases, and every
//!    pixel of the result is `clip(x + ε)` or `clip(x − ε)`: ‖δ‖∞ = ε unless the range clips it.
//!
//! Where it differs from the references, and why:
//! - positions and signs are drawn **per sample** (the authors' repository), not one for the
//!   whole batch (AutoAttack), so each sample searches on its own;
//! - every position of the square is possible: both references draw the corner as
//!   `int(low + (high − low)·u)` over `[0, H − s)`, so no square ever touches the last row or
//!   column unless it fills the side (never, in the authors' repository, which also caps `s` at
//!   H − 1): those pixels keep their initial stripes for the whole run. Negligible at 224 px,
//!   it is 31 of a 16 × 16 image's 256 pixels;
//! - a sign vector that would leave the square exactly as it is (a 1-pixel square whose channels
//!   already have those signs, or pixels pinned by the range) is redrawn, as in the authors'
//!   repository, but at most [`REDRAWS`] times: the candidates are drawn in advance and the
//!   first that changes the square is taken on the device, so no iteration waits for the host and
//!   the random stream does not depend on the model's outputs;
//! - no early stop: the references stop a sample once it is misclassified, a margin rule that
//!   has no meaning for dense multi-task losses; every run spends its full budget, so the pass
//!   counts are exact and the same for every batch;
//! - L2 Square is not implemented: `norm = "l2"` is refused when the attack is configured;
//! - a given start point ([`super::RunContext::start`]) is ignored: the search starts from its
//!   stripes, as in AutoAttack, where Square runs on its own.
//!
//! Passes: one forward for the clean losses when the direction needs them (GB-MTA), one for the
//! stripes, one per iteration — `[1] + 1 + n_queries` forwards, no backward. A "query" is one
//! forward of the whole batch; `n_queries` counts the iterations after the initialisation (the
//! paper's query count of a sample that never stops early is `n_queries + 1`).
//! Randomness comes from the batch's seeded stream only: the same seed gives the same examples,
//! bit for bit on CPU.
use super::{MAX_COUNT, RunContext, StepRule, select};
use crate::attack::{Budget, Norm};
use crate::error::{Error, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Random search over squares of the L∞ ball's corners.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Square {
    /// Iterations (one forward of the batch each) after the initialisation.
    pub n_queries: usize,
    /// The fraction of the image's pixels the first squares cover, in (0, 1].
    pub p_init: f64,
}

impl Default for Square {
    /// AutoAttack's standard L∞ Square: 5000 queries, p_init = 0.8.
    fn default() -> Self {
        Square { n_queries: 5000, p_init: 0.8 }
    }
}

/// How many times a sign vector that would not change its square is redrawn.
pub const REDRAWS: usize = 10;

/// The fraction of pixels the square of iteration `it` (0-based) of `n_queries` covers: `p_init`
/// halved at the paper's fractions of the run. The iteration is rescaled to 10 000 as the authors'
/// repository does (`int(it / n_queries · 10000)`, in f64 then truncated), then
/// ≤ 10 → p_init; ≤ 50 → /2; ≤ 200 → /4; ≤ 500 → /8; ≤ 1000 → /16; ≤ 2000 → /32; ≤ 4000 → /64;
/// ≤ 6000 → /128; ≤ 8000 → /256; beyond → /512.
pub fn p_selection(it: usize, n_queries: usize, p_init: f64) -> f64 {
    let it = (it as f64 / n_queries.max(1) as f64 * 10000.0) as u64;
    let halvings = match it {
        0..=10 => 0,
        11..=50 => 1,
        51..=200 => 2,
        201..=500 => 3,
        501..=1000 => 4,
        1001..=2000 => 5,
        2001..=4000 => 6,
        4001..=6000 => 7,
        6001..=8000 => 8,
        _ => 9,
    };
    p_init / f64::from(1u32 << halvings)
}

/// The side of a square covering the fraction `p` of a `c × h × w` image's pixels:
/// `round_half_even(√(p·n_features/c))` with `n_features = c·h·w` (Python's `round`), at least 1
/// and at most the shorter side.
pub fn square_side(p: f64, c: i64, h: i64, w: i64) -> i64 {
    let n_features = (c * h * w) as f64;
    let s = (p * n_features / c as f64).sqrt().round_ties_even() as i64;
    s.max(1).min(h.min(w))
}

/// The `[B]` objective of a batch of points (one query).
pub type QueryFn<'q> = dyn FnMut(&Tensor) -> Result<Tensor> + 'q;

/// Sees the search after its initialisation (`0`) and after each iteration (`1..=n_queries`):
/// the best point and the `[B]` best objective.
pub type WatchFn<'w> = dyn FnMut(usize, &Tensor, &Tensor) + 'w;

impl StepRule for Square {
    fn check(&self) -> Result<()> {
        if self.n_queries == 0 {
            return Err(Error::parameter("n_queries", "Square needs at least one query after its initialisation"));
        }
        if self.n_queries > MAX_COUNT {
            return Err(Error::parameter(
                "n_queries",
                format!("{} is more than {MAX_COUNT} queries; nothing would finish", self.n_queries),
            ));
        }
        if !(self.p_init.is_finite() && self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(Error::parameter(
                "p_init",
                format!("{} is not a fraction of the image's pixels in (0, 1] (default 0.8)", self.p_init),
            ));
        }
        Ok(())
    }

    fn check_norm(&self, norm: Norm) -> Result<()> {
        match norm {
            Norm::Linf => Ok(()),
            Norm::L2 => Err(l2_refused()),
        }
    }

    fn run(&self, cx: &mut RunContext) -> Result<Tensor> {
        if cx.budget.norm != Norm::Linf {
            return Err(l2_refused());
        }
        cx.ensure_clean(false)?;
        let x = cx.x.shallow_clone();
        let budget = cx.budget;
        let mut rng = cx.rng(0);
        let mut query = |point: &Tensor| -> Result<Tensor> { Ok(cx.objective(point, false)?.objective) };
        let (x_best, _) = self.search(&x, budget, &mut rng, &mut query, &mut |_, _, _| {})?;
        Ok(x_best)
    }
}

fn l2_refused() -> Error {
    Error::parameter("norm", "the Square attack is implemented for the L∞ ball only; use --norm linf (or another rule for L2)")
}

impl Square {
    /// The search around the clean `x` in `budget` (L∞): the best point and its `[B]` objective.
    /// `query` scores a batch of points (called `1 + n_queries` times); `watch` sees the state
    /// after every query.
    ///
    /// # Errors
    /// What `query` fails with; an input that is not `[B, C, H, W]`.
    pub fn search(
        &self,
        x: &Tensor,
        budget: &Budget,
        rng: &mut ChaCha8Rng,
        query: &mut QueryFn,
        watch: &mut WatchFn,
    ) -> Result<(Tensor, Tensor)> {
        let _guard = tch::no_grad_guard();
        let (b, c, h, w) = x.size4()?;
        let device = x.device();
        let bools = |flags: Vec<bool>, shape: &[i64]| {
            let v: Vec<u8> = flags.into_iter().map(u8::from).collect();
            Tensor::from_slice(&v).view(shape).to_device(device).gt(0)
        };
        // The two values every pixel can take: the ball's corners, clipped to the range.
        let plus = budget.project(&(x + budget.eps), x);
        let minus = budget.project(&(x - budget.eps), x);

        let stripes: Vec<bool> = (0..b * c * w).map(|_| rng.random()).collect();
        let mut x_best = plus.where_self(&bools(stripes, &[b, c, 1, w]), &minus);
        let mut f_best = query(&x_best)?;
        watch(0, &x_best, &f_best);

        let rows = Tensor::arange(h, (Kind::Int64, device));
        let cols = Tensor::arange(w, (Kind::Int64, device));
        let k = REDRAWS as i64 + 1;
        for i in 0..self.n_queries {
            let s = square_side(p_selection(i, self.n_queries, self.p_init), c, h, w);
            let (mut vh, mut vw, mut signs) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..b {
                vh.push(corner(rng, h - s));
                vw.push(corner(rng, w - s));
                signs.extend((0..k * c).map(|_| rng.random::<bool>()));
            }
            let inside = |lines: &Tensor, start: Vec<i64>| {
                let start = Tensor::from_slice(&start).to_device(device).view([-1, 1]);
                lines.view([1, -1]).ge_tensor(&start).logical_and(&lines.view([1, -1]).lt_tensor(&(start + s)))
            };
            let window = inside(&rows, vh).view([b, 1, h, 1]).logical_and(&inside(&cols, vw).view([b, 1, 1, w]));
            // Per sample and channel: would the square change with sign + / sign −?
            let changes = |corner: &Tensor| corner.ne_tensor(&x_best).logical_and(&window).any_dims([2i64, 3].as_slice(), false);
            let (up, down) = (changes(&plus).view([b, 1, c]), changes(&minus).view([b, 1, c]));
            // The first of the k candidate sign vectors that changes the square (the first if none does).
            let signs = bools(signs, &[b, k, c]);
            let moves = up.where_self(&signs, &down).any_dim(2, false);
            let first = moves.to_kind(Kind::Int64).cumsum(1, Kind::Int64).eq(0).sum_dim_intlist(1, false, Kind::Int64).clamp_max(k - 1);
            let chosen = signs.gather(1, &first.view([b, 1, 1]).expand([b, 1, c], false), false).view([b, c, 1, 1]);
            let x_new = plus.where_self(&chosen, &minus).where_self(&window, &x_best);
            let f_new = query(&x_new)?;
            let better = f_new.gt_tensor(&f_best);
            x_best = select(&better, &x_new, &x_best);
            f_best = f_new.where_self(&better, &f_best);
            watch(i + 1, &x_best, &f_best);
        }
        Ok((x_best, f_best))
    }
}

/// A square's corner along a side with `room = side − s` free lines: uniform in `[0, room]`,
/// every position a square of side `s` can take (0 when it fills the side).
fn corner(rng: &mut ChaCha8Rng, room: i64) -> i64 {
    rng.random_range(0..=room.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InputSpace;
    use tch::Device;

    #[test]
    fn p_follows_the_papers_schedule_rescaled_to_the_budget() {
        let p = |it, n| 0.8 / p_selection(it, n, 0.8);
        // n = 5000: it' = int(it/5000·10000) = 2·it. it' ≤ 10 ⇔ it ≤ 5 → p_init; it = 6 → 12 → /2;
        // 25 → 50 → /2, 26 → 52 → /4; 100 → 200 → /4, 101 → 202 → /8; 250 → 500 → /8, 251 → /16;
        // 500 → 1000 → /16, 501 → /32; 1000 → 2000 → /32, 1001 → /64; 2000 → 4000 → /64,
        // 2001 → /128; 3000 → 6000 → /128, 3001 → /256; 4000 → 8000 → /256, 4001 → /512; the last
        // iteration 4999 → 9998 → /512.
        let at_5000 = [
            (0, 1.0),
            (5, 1.0),
            (6, 2.0),
            (25, 2.0),
            (26, 4.0),
            (100, 4.0),
            (101, 8.0),
            (250, 8.0),
            (251, 16.0),
            (500, 16.0),
            (501, 32.0),
            (1000, 32.0),
            (1001, 64.0),
            (2000, 64.0),
            (2001, 128.0),
            (3000, 128.0),
            (3001, 256.0),
            (4000, 256.0),
            (4001, 512.0),
            (4999, 512.0),
        ];
        for (it, div) in at_5000 {
            assert_eq!(p(it, 5000), div, "it = {it}");
        }
        // n = 100: it' = 100·it. 0 → p_init; 1 → 100 → /4 (the /2 band is skipped); 2 → 200 → /4;
        // 3 → 300 → /8; 6 → 600 → /16; 11 → 1100 → /32; 21 → 2100 → /64; 41 → /128; 61 → /256;
        // 81 → 8100 → /512.
        for (it, div) in
            [(0, 1.0), (1, 4.0), (2, 4.0), (3, 8.0), (5, 8.0), (6, 16.0), (11, 32.0), (21, 64.0), (41, 128.0), (61, 256.0), (81, 512.0)]
        {
            assert_eq!(p(it, 100), div, "it = {it}");
        }
        // n = 3: 1/3·10000 = 3333.33… → 3333 → /64; 2 → 6666 → /256.
        assert_eq!([p(0, 3), p(1, 3), p(2, 3)], [1.0, 64.0, 256.0]);
        // n = 10000: the counter is not rescaled; 3/10000·10000 is 2.9999999999999996 in f64 and
        // truncates to 2 as in Python (still p_init); 10 → p_init, 11 → /2.
        assert_eq!([p(3, 10000), p(10, 10000), p(11, 10000)], [1.0, 1.0, 2.0]);
        assert_eq!(p_selection(7, 100, 0.5), 0.5 / 16.0);
    }

    #[test]
    fn the_square_side_rounds_half_to_even_and_is_clamped() {
        // √(p·H·W): p = 0.8 on 32×32 → √819.2 = 28.62 → 29.
        assert_eq!(square_side(0.8, 3, 32, 32), 29);
        // Ties to even: p·H·W = 6.25 → 2.5 → 2; 12.25 → 3.5 → 4.
        assert_eq!(square_side(6.25 / 100.0, 3, 10, 10), 2);
        assert_eq!(square_side(12.25 / 100.0, 3, 10, 10), 4);
        // At least 1: p = 0.8/512 on 16×16 → √0.4 = 0.63 → 1; and 0.3 → 0 → 1.
        assert_eq!(square_side(0.8 / 512.0, 3, 16, 16), 1);
        assert_eq!(square_side(0.09 / 100.0, 3, 10, 10), 1);
        // At most the shorter side: p = 1 on 4×100 → √400 = 20 → 4.
        assert_eq!(square_side(1.0, 3, 4, 100), 4);
        assert_eq!(square_side(1.0, 1, 8, 8), 8);
    }

    fn budget(eps: f64) -> Budget {
        Budget::new(Norm::Linf, eps, &InputSpace::reference(), Kind::Float, Device::Cpu).unwrap()
    }

    /// A run of `sq` on `x` scored by `f`, with the state after every query.
    fn watched(sq: Square, x: &Tensor, eps: f64, f: impl Fn(&Tensor) -> Tensor) -> (Tensor, Vec<(Tensor, Vec<f64>)>, usize) {
        let mut states = Vec::new();
        let mut queries = 0;
        let mut query = |p: &Tensor| {
            queries += 1;
            Ok(f(p))
        };
        let mut watch =
            |_: usize, xb: &Tensor, fb: &Tensor| states.push((xb.copy(), Vec::<f64>::try_from(fb.to_kind(Kind::Double)).unwrap()));
        let (x_best, _) = sq.search(x, &budget(eps), &mut crate::rng::stream(3, &[0]), &mut query, &mut watch).unwrap();
        (x_best, states, queries)
    }

    #[test]
    fn a_separable_objective_climbs_per_sample_to_its_corner() {
        // f(x') = Σ w·(x' − x) with w = +1 on the left half of the image, −1 on the right: the best
        // corner is +ε left and −ε right, worth ε·C·H·W = 8·3·8·8 = 1536. Two samples, one of them
        // scored twice as high; the square search must climb both, each on its own.
        let x = Tensor::zeros([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::cat(
            &[Tensor::ones([1, 1, 8, 4], (Kind::Float, Device::Cpu)), -Tensor::ones([1, 1, 8, 4], (Kind::Float, Device::Cpu))],
            3,
        );
        let scale = Tensor::from_slice(&[1.0f32, 2.0]);
        let f = |p: &Tensor| (p * &w).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float) * &scale;
        let (x_best, states, queries) = watched(Square { n_queries: 2000, p_init: 0.3 }, &x, 8.0, f);
        assert_eq!(queries, 2001);
        assert_eq!(states.len(), 2001);
        for pair in states.windows(2) {
            for s in 0..2 {
                assert!(pair[1].1[s] >= pair[0].1[s], "sample {s}: {} → {}", pair[0].1[s], pair[1].1[s]);
            }
        }
        // Every state's pixels are on the ball's corners (x = 0 is far from the range's ends).
        for (xb, _) in &states {
            assert!(bool::try_from(xb.abs().eq(8.0).all()).unwrap());
        }
        let last = &states.last().unwrap().1;
        assert!(last[0] > 0.9 * 1536.0 && last[1] > 0.9 * 2.0 * 1536.0, "{last:?}");
        assert!(last[0] > states[0].1[0] && last[1] > states[0].1[1]);
        assert!(x_best.equal(&states.last().unwrap().0));
    }

    #[test]
    fn a_constant_objective_keeps_the_stripes() {
        // Nothing is strictly better, so the result is the initial vertical stripes: each column
        // of each channel has one sign down all its rows.
        let x = Tensor::zeros([2, 3, 6, 5], (Kind::Float, Device::Cpu));
        let (x_best, states, _) = watched(Square { n_queries: 20, p_init: 0.5 }, &x, 4.0, |p| {
            p.zeros_like().sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
        });
        assert!(x_best.equal(&states[0].0));
        let top = x_best.narrow(2, 0, 1);
        assert!(x_best.equal(&top.expand_as(&x_best)));
        assert!(bool::try_from(x_best.abs().eq(4.0).all()).unwrap());
    }

    #[test]
    fn pixels_pinned_by_the_range_stay_there_and_the_rest_reach_eps() {
        // x at the top of channel 2's range: + ε clips to x there, so those pixels stay; every other
        // pixel moves by exactly ε.
        let (_, hi) = InputSpace::reference().bounds();
        let x = Tensor::zeros([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        let _ = x.narrow(1, 2, 1).fill_(hi[2]);
        let f = |p: &Tensor| (p - &x).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
        let (x_best, _, _) = watched(Square { n_queries: 1000, p_init: 0.5 }, &x, 8.0, f);
        let d = (&x_best - &x).abs();
        assert!(bool::try_from(d.narrow(1, 0, 2).eq(8.0).all()).unwrap());
        let top = d.narrow(1, 2, 1);
        assert!(bool::try_from(top.eq(0.0).logical_or(&top.eq(8.0)).all()).unwrap());
        // The objective rewards +ε everywhere: channels 0 and 1 get there; channel 2 can only go down
        // (−ε), which the search rejects once it has found the pinned value.
        assert!(bool::try_from((&x_best - &x).narrow(1, 0, 2).eq(8.0).all()).unwrap(), "{x_best}");
    }

    #[test]
    fn parameters_and_the_norm_are_checked() {
        assert!(Square::default().check().is_ok());
        assert_eq!(Square::default(), Square { n_queries: 5000, p_init: 0.8 });
        let e = Square { n_queries: 0, ..Square::default() }.check().unwrap_err().to_string();
        assert!(e.starts_with("n_queries:"), "{e}");
        let e = Square { n_queries: MAX_COUNT + 1, ..Square::default() }.check().unwrap_err().to_string();
        assert!(e.starts_with("n_queries:") && e.contains("1000000"), "{e}");
        for bad in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let e = Square { p_init: bad, ..Square::default() }.check().unwrap_err().to_string();
            assert!(e.starts_with("p_init:"), "{bad}: {e}");
        }
        assert!(Square { p_init: 1.0, ..Square::default() }.check().is_ok());
        assert!(Square::default().check_norm(Norm::Linf).is_ok());
        let e = Square::default().check_norm(Norm::L2).unwrap_err().to_string();
        assert!(e.starts_with("norm:") && e.contains("L∞"), "{e}");
    }
}
