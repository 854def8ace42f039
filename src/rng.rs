//! Reproducible randomness. libtorch's generator is process-global, so **every** draw from it
//! (weight init, dropout, `Tensor::rand*` in tests) happens while [`torch_rng`]'s lock is held:
//! otherwise two threads of one process (tests, for instance) interleave their draws and a seeded
//! run stops being reproducible. (libtorch's CPU kernels are bit-reproducible for one thread
//! issuing ops at a time; tests that compare runs bit for bit therefore live in their own test
//! binary, e.g. `tests/resume.rs`.) Everything else uses seeded
//! ChaCha streams derived from (seed, purpose, index), so results do not depend on order.
//!
//! ```
//! use mtrobust::rng::{derive_seed, stream, torch_rng};
//! use rand::Rng;
//!
//! // A batch's stream depends on the seed and its path only, never on what ran before it.
//! let a: u64 = stream(7, &[3]).random();
//! let b: u64 = stream(7, &[3]).random();
//! assert_eq!(a, b);
//! assert_ne!(derive_seed(7, &[3]), derive_seed(7, &[4]));
//! // libtorch draws under the lock, seeded.
//! let x = { let _g = torch_rng(1); tch::Tensor::rand([3], (tch::Kind::Float, tch::Device::Cpu)) };
//! let y = { let _g = torch_rng(1); tch::Tensor::rand([3], (tch::Kind::Float, tch::Device::Cpu)) };
//! assert!(x.equal(&y));
//! ```
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, MutexGuard};

static TORCH_RNG: Mutex<()> = Mutex::new(());

/// Locks libtorch's global generator and seeds it with `seed`; draw while the guard lives.
pub fn torch_rng(seed: u64) -> MutexGuard<'static, ()> {
    let guard = TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed as i64);
    guard
}

/// A seed derived from a base seed and a path of indices (SplitMix64 mixing), so that e.g.
/// the random start of (batch 3, restart 1) does not depend on what ran before it.
pub fn derive_seed(seed: u64, path: &[u64]) -> u64 {
    let mut z = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in path {
        z = z.wrapping_add(p.wrapping_mul(0xBF58_476D_1CE4_E5B9)).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// A ChaCha8 stream for `derive_seed(seed, path)`.
pub fn stream(seed: u64, path: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_path_and_repeat() {
        assert_eq!(derive_seed(7, &[1, 2]), derive_seed(7, &[1, 2]));
        assert_ne!(derive_seed(7, &[1, 2]), derive_seed(7, &[2, 1]));
        assert_ne!(derive_seed(7, &[1]), derive_seed(8, &[1]));
    }
}
