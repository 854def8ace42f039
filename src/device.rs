//! Device choice (`--device auto|cpu|cuda|cuda:N`), picked once and passed down. Asking for CUDA
//! where there is none is an error, never a silent CPU run.
//!
//! ```
//! use mtrobust::device::{device_name, parse_device};
//! assert_eq!(device_name(parse_device("cpu")?), "cpu");
//! // A typo is an error that lists the accepted names.
//! assert!(parse_device("gpu").is_err());
//! # Ok::<(), mtrobust::Error>(())
//! ```
use crate::error::{Error, Result};
use tch::Device;

/// Parses a device name and checks that it exists.
///
/// # Errors
/// An unknown name, or CUDA requested on a machine without a usable GPU.
pub fn parse_device(name: &str) -> Result<Device> {
    let cuda_count = || if tch::Cuda::is_available() { tch::Cuda::device_count() as usize } else { 0 };
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "auto" => Ok(if cuda_count() > 0 { Device::Cuda(0) } else { Device::Cpu }),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if cuda_count() == 0 {
                Err(Error::parameter("device", "cuda was requested but no CUDA device is available; use --device cpu (or auto)"))
            } else {
                Ok(Device::Cuda(0))
            }
        }
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) if i < cuda_count() => Ok(Device::Cuda(i)),
            Some(Ok(i)) => Err(Error::parameter("device", format!("cuda:{i} does not exist ({} CUDA device(s) available)", cuda_count()))),
            _ => Err(Error::parameter("device", format!("`{other}` is not a device; use auto, cpu, cuda or cuda:N"))),
        },
    }
}

/// A short human name of a device (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_missing_cuda_is_an_error() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").unwrap_err().to_string().contains("not a device"));
        if !tch::Cuda::is_available() {
            assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
            assert!(parse_device("cuda").unwrap_err().to_string().contains("no CUDA device"));
        }
    }
}
