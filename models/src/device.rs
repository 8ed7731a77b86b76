//! Where the model runs: the CPU (the default, and all that CI builds), or an NVIDIA GPU
//! through candle's CUDA backend in a build with the `cuda` feature.
//!
//! The fused kernels of [`crate::ops`] are CPU code; on a GPU every op falls back to
//! candle's own (composite) kernels, which give the same values.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::ModelError;

/// A device as `--device` names it: `cpu`, `cuda` (the first GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = || ModelError::Device(format!("unknown device {s:?}: use cpu, cuda or cuda:N"));
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device; a GPU in a build without the `cuda` feature is an error that says
    /// how to build one.
    pub fn open(self) -> Result<Device, ModelError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(_) if !cfg!(feature = "cuda") => Err(ModelError::Device(format!(
                "{self}: this loho was built without CUDA; build it with `cargo build \
                 --release --features cuda` (needs the CUDA toolkit's nvcc, docs/model.md)"
            ))),
            Self::Cuda(n) => {
                Device::new_cuda(n).map_err(|e| ModelError::Device(format!("{self}: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_a_gpu_without_the_feature_says_how_to_build_one() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            let e = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains("use cpu, cuda or cuda:N"), "{bad:?}: {e}");
        }
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
