//! Friendly early stopping (FAT, Zhang et al., 2020) for dense multi-task outputs: each sample stops
//! moving τ steps after it first becomes "adversarial", so adversarial training sees the least
//! adversarial points that already fool the model.
//!
//! "Adversarial" has no misclassification to lean on for dense tasks; here a sample is adversarial
//! once the mean relative loss increase over the attacked tasks,
//! `r_b = mean_t (L_{t,b}(x_k) − L_{t,b}(x)) / L_{t,b}(x)`, reaches a threshold (default 0.5: the
//! task losses are up by half on average). Tasks with a zero clean loss are left out of the mean.
//! Once a sample crossed the threshold at step k₀, it takes steps k₀ … k₀+τ−1 and then stays, even
//! if r later drops (τ = 0: it stops at the first adversarial point).

/// Early-stopping parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStop {
    /// Extra steps after a sample first becomes adversarial.
    pub tau: usize,
    /// Mean relative loss increase that makes a sample adversarial.
    pub threshold: f64,
}

/// Per-sample early-stopping state.
#[derive(Debug, Clone)]
pub struct EarlyStopper {
    cfg: EarlyStop,
    first: Vec<Option<usize>>,
}

impl EarlyStopper {
    /// State for `batch` samples.
    pub fn new(cfg: EarlyStop, batch: usize) -> Self {
        EarlyStopper { cfg, first: vec![None; batch] }
    }

    /// Given each sample's relative loss increase `r` at x_k, returns which samples step from x_k.
    pub fn update(&mut self, k: usize, r: &[f64]) -> Vec<bool> {
        self.first
            .iter_mut()
            .zip(r)
            .map(|(first, &r)| {
                if first.is_none() && r >= self.cfg.threshold {
                    *first = Some(k);
                }
                match *first {
                    None => true,
                    Some(f) => k - f < self.cfg.tau,
                }
            })
            .collect()
    }

    /// The step at which each sample first became adversarial.
    pub fn first_adversarial(&self) -> &[Option<usize>] {
        &self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sample_stops_tau_steps_after_it_first_crosses_the_threshold() {
        // Three samples, τ = 2, threshold 0.5, r over steps k = 0..5:
        //   s0 crosses at k = 1 → steps from x_1, x_2; frozen from k = 3 even though r drops at k = 2.
        //   s1 never crosses → always steps.
        //   s2 crosses at k = 0 → steps from x_0, x_1, frozen from k = 2.
        let r = [[0.0, 0.1, 0.9], [0.6, 0.1, 0.9], [0.2, 0.2, 0.9], [0.9, 0.3, 0.9], [0.9, 0.4, 0.9], [0.9, 0.45, 0.9]];
        let mut s = EarlyStopper::new(EarlyStop { tau: 2, threshold: 0.5 }, 3);
        let active: Vec<Vec<bool>> = r.iter().enumerate().map(|(k, rk)| s.update(k, rk)).collect();
        let col = |i: usize| active.iter().map(|a| a[i]).collect::<Vec<_>>();
        assert_eq!(col(0), vec![true, true, true, false, false, false]);
        assert_eq!(col(1), vec![true; 6]);
        assert_eq!(col(2), vec![true, true, false, false, false, false]);
        assert_eq!(s.first_adversarial(), &[Some(1), None, Some(0)]);
    }

    #[test]
    fn tau_zero_stops_at_the_first_adversarial_point() {
        let mut s = EarlyStopper::new(EarlyStop { tau: 0, threshold: 0.5 }, 1);
        assert_eq!(s.update(0, &[0.1]), vec![true]);
        assert_eq!(s.update(1, &[0.5]), vec![false]);
        assert_eq!(s.update(2, &[0.0]), vec![false]);
    }
}
