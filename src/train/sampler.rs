//! Which samples a training step uses: consecutive slices of per-epoch random permutations, each
//! sample with its own augmentation seed — a pure function of (seed, step), so a run resumed at
//! step s sees exactly the batches an uninterrupted run would.
use crate::rng::{derive_seed, stream};
use rand::seq::SliceRandom;

/// `(sample index, augmentation seed)` pairs of step `step`.
pub fn step_items(n: usize, batch_size: usize, seed: u64, step: usize) -> Vec<(usize, u64)> {
    let mut items = Vec::with_capacity(batch_size);
    let mut cached: Option<(usize, Vec<usize>)> = None;
    for p in step * batch_size..(step + 1) * batch_size {
        let epoch = p / n;
        if cached.as_ref().map(|c| c.0) != Some(epoch) {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut stream(seed, &[1, epoch as u64]));
            cached = Some((epoch, perm));
        }
        let index = cached.as_ref().expect("set above").1[p % n];
        items.push((index, derive_seed(seed, &[2, epoch as u64, index as u64])));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_visits_every_sample_once() {
        let n = 10;
        let mut seen: Vec<usize> = (0..5).flat_map(|s| step_items(n, 2, 3, s)).map(|i| i.0).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(step_items(n, 4, 3, 7), step_items(n, 4, 3, 7));
        assert_ne!(step_items(n, 4, 3, 0), step_items(n, 4, 4, 0));
        // A batch crossing an epoch boundary takes the end of one permutation and the start of the next.
        assert_eq!(step_items(n, 4, 3, 2).len(), 4);
    }
}
