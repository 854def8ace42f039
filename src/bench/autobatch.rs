//! `--batch-size auto`: the largest batch whose attack iteration fits the GPU's memory.
//!
//! On CUDA: double the batch from 1 until a probe (one forward and backward to the input under
//! the caller's attack, on random inputs of the right size) runs out of memory, then bisect
//! between the last success and the first failure, and keep 90 % of the result as headroom for
//! the evaluation's own buffers (metrics, clean outputs). libtorch's out-of-memory error reaches
//! Rust as a panic inside tch, which the probe catches; the allocator's cache is emptied after
//! each failure. On CPU there is no memory wall worth probing (throughput per image hardly
//! grows past a few images, and the machine swaps long before it fails), so it is refused.
use crate::error::{Error, Result};
use tch::Device;

/// The largest `n` in `1..=max` with `fits(n)`, assuming `fits` is monotone (true up to some
/// size, false beyond); 0 when even 1 does not fit. Doubling then bisection: O(log max) probes.
pub fn largest_fitting(max: usize, mut fits: impl FnMut(usize) -> bool) -> usize {
    if max == 0 || !fits(1) {
        return 0;
    }
    let (mut good, mut bad) = (1usize, None);
    while bad.is_none() && good < max {
        let next = (good * 2).min(max);
        if fits(next) { good = next } else { bad = Some(next) }
    }
    let Some(mut bad) = bad else { return good };
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid) { good = mid } else { bad = mid }
    }
    good
}

/// The batch size `--batch-size auto` gives on `device`: 90 % of the largest batch for which
/// `probe(n)` (one attack iteration on `n` images) succeeds, at most `max`.
///
/// # Errors
/// A CPU device, or a GPU on which not even one image fits.
pub fn auto_batch_size(device: Device, max: usize, mut probe: impl FnMut(usize) -> Result<()>) -> Result<usize> {
    if !matches!(device, Device::Cuda(_)) {
        return Err(Error::config(
            "--batch-size",
            "`auto` probes GPU memory and this run is on the CPU; give a number (on CPU, images per second \
             hardly grow past a batch of a few images)",
        ));
    }
    // Out-of-memory panics are expected here: keep them off stderr while probing.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let largest = largest_fitting(max, |n| {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe(n))).is_ok_and(|r| r.is_ok());
        crate::bench::sync(device);
        crate::model::shim::cuda_empty_cache();
        ok
    });
    std::panic::set_hook(hook);
    if largest == 0 {
        return Err(Error::config("--batch-size", "auto: not even one image fits in the GPU's free memory; use a smaller --resize"));
    }
    Ok((largest * 9 / 10).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_then_bisection_finds_the_largest_fit() {
        for (limit, max, want) in [(37, 1000, 37), (1, 1000, 1), (0, 1000, 0), (64, 64, 64), (500, 64, 64), (1000, 1000, 1000)] {
            let mut probes = 0;
            let got = largest_fitting(max, |n| {
                probes += 1;
                n <= limit
            });
            assert_eq!(got, want, "limit {limit}, max {max}");
            assert!(probes <= 2 * 10 + 2, "{probes} probes");
        }
    }

    #[test]
    fn cpu_is_refused_with_a_reason() {
        let e = auto_batch_size(Device::Cpu, 64, |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("give a number"), "{e}");
    }
}
