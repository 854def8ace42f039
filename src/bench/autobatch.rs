//! `--batch-size auto`: the largest batch whose attack iteration fits the GPU's memory.
//!
//! On CUDA: double the batch from 1 until a probe (one forward and backward to the input under
//! the caller's attack, on random inputs of the right size) runs out of memory, then bisect
//! between the last success and the first failure, and keep 90 % of the result as headroom for
//! the evaluation's own buffers (metrics, clean outputs). The attack's forward and backward are
//! fallible, so libtorch's out-of-memory error comes back as an [`Error`] that the probe tells
//! apart from every other failure ([`Error::is_out_of_memory`]); the allocator's cache is emptied
//! after each failure. On CPU there is no memory wall worth probing (throughput per image hardly
//! grows past a few images, and the machine swaps long before it fails), so it is refused.
use crate::error::{Error, Result};
use tch::Device;

/// The largest `n` in `1..=max` with `fits(n)`, assuming `fits` is monotone (true up to some
/// size, false beyond); 0 when even 1 does not fit. Doubling then bisection: O(log max) probes.
///
/// # Errors
/// The first error of `fits` (a failure that is not "too large").
pub fn largest_fitting(max: usize, mut fits: impl FnMut(usize) -> Result<bool>) -> Result<usize> {
    if max == 0 || !fits(1)? {
        return Ok(0);
    }
    let (mut good, mut bad) = (1usize, None);
    while bad.is_none() && good < max {
        let next = (good * 2).min(max);
        if fits(next)? { good = next } else { bad = Some(next) }
    }
    let Some(mut bad) = bad else { return Ok(good) };
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid)? { good = mid } else { bad = mid }
    }
    Ok(good)
}

/// The batch size `--batch-size auto` gives on `device`: 90 % of the largest batch for which
/// `probe(n)` (one attack iteration on `n` images) succeeds, at most `max`.
///
/// # Errors
/// A CPU device, a GPU on which not even one image fits, or a probe that fails for another reason
/// than memory.
pub fn auto_batch_size(device: Device, max: usize, mut probe: impl FnMut(usize) -> Result<()>) -> Result<usize> {
    if !matches!(device, Device::Cuda(_)) {
        return Err(Error::parameter(
            "batch_size",
            "`auto` probes GPU memory and this run is on the CPU; give a number (on CPU, images per second \
             hardly grow past a batch of a few images)",
        ));
    }
    let largest = largest_fitting(max, |n| {
        let outcome = probe(n);
        crate::bench::sync(device);
        crate::model::shim::cuda_empty_cache();
        match outcome {
            Ok(()) => Ok(true),
            Err(e) if e.is_out_of_memory() => Ok(false),
            Err(e) => Err(e),
        }
    })?;
    if largest == 0 {
        return Err(Error::parameter("batch_size", "auto: not even one image fits in the GPU's free memory; use a smaller resize"));
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
                Ok(n <= limit)
            })
            .unwrap();
            assert_eq!(got, want, "limit {limit}, max {max}");
            assert!(probes <= 2 * 10 + 2, "{probes} probes");
        }
    }

    #[test]
    fn a_failure_other_than_memory_stops_the_search() {
        let e = largest_fitting(64, |n| if n < 8 { Ok(true) } else { Err(Error::config("module", "shape mismatch")) }).unwrap_err();
        assert_eq!(e.to_string(), "module: shape mismatch");
    }

    #[test]
    fn out_of_memory_is_recognised_in_a_chain() {
        let oom = Error::context("attack", Error::from(tch::TchError::Torch("CUDA out of memory. Tried to allocate 2.00 GiB".into())));
        assert!(oom.is_out_of_memory());
        let cpu =
            Error::from(tch::TchError::Torch("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory".into()));
        assert!(cpu.is_out_of_memory());
        assert!(!Error::config("x", "shape mismatch").is_out_of_memory());
    }

    #[test]
    fn cpu_is_refused_with_a_reason() {
        let e = auto_batch_size(Device::Cpu, 64, |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("give a number"), "{e}");
    }
}
