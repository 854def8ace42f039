//! Peak memory: the CUDA caching allocator's peak on a GPU, the process's peak resident set
//! (Linux `VmHWM`) on CPU.
use crate::model::shim;
use tch::Device;

/// Starts a new peak window (CUDA only: the resident-set peak cannot be reset).
pub fn reset(device: Device) {
    shim::cuda_reset_peak(device);
}

/// Peak bytes on `device` since [`reset`] (CUDA), or the process's peak resident set (CPU,
/// since the process started); None where it cannot be read.
pub fn peak_bytes(device: Device) -> Option<u64> {
    match device {
        Device::Cuda(_) => shim::cuda_peak_bytes(device),
        _ => peak_rss(),
    }
}

/// `VmHWM` of /proc/self/status in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_peak_is_at_least_a_buffer_just_touched() {
        let buffer = vec![1u8; 64 << 20];
        let peak = peak_bytes(Device::Cpu);
        if cfg!(target_os = "linux") {
            assert!(peak.unwrap() >= buffer.len() as u64, "{peak:?}");
        }
        assert_eq!(buffer.iter().map(|&b| b as u64).sum::<u64>(), 64 << 20);
    }
}
