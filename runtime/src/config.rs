//! `configs/runtime.toml`: the control rate, the safety limits and the watchdog, parsed
//! and checked. The file shipped in the repository is also the compiled-in default, so a
//! node started without `--config` runs exactly its values.

use serde::Deserialize;
use thiserror::Error;

/// The defaults shipped in the repository, compiled in.
pub const DEFAULT_RUNTIME_CONFIG: &str = include_str!("../../configs/runtime.toml");

/// `configs/runtime.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub controller: ControllerLimits,
    pub safety: SafetyConfig,
    pub watchdog: WatchdogConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerLimits {
    pub rate_hz: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    pub timeout_ms: u64,
}

/// Workspace box and motion limits of the tool tip.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    pub x: [f64; 2],
    pub y: [f64; 2],
    pub z: [f64; 2],
    /// m/s
    pub max_speed: f64,
    /// m/s²
    pub max_accel: f64,
    /// rad/s
    pub max_yaw_speed: f64,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self::parse(DEFAULT_RUNTIME_CONFIG).expect("the shipped configs/runtime.toml is valid")
    }
}

impl RuntimeConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let c: Self = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.safety;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let rate = self.controller.rate_hz;
        if !(positive(rate) && rate <= 2000.0) {
            return Err(ConfigError::Invalid(format!(
                "controller.rate_hz = {rate}: expected 0 < rate ≤ 2000"
            )));
        }
        for (name, [lo, hi]) in [("x", s.x), ("y", s.y), ("z", s.z)] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(ConfigError::Invalid(format!(
                    "safety.{name} = [{lo}, {hi}]: expected a finite range low < high"
                )));
            }
        }
        for (name, v) in [
            ("max_speed", s.max_speed),
            ("max_accel", s.max_accel),
            ("max_yaw_speed", s.max_yaw_speed),
        ] {
            if !positive(v) {
                return Err(ConfigError::Invalid(format!(
                    "safety.{name} = {v}: expected a positive number"
                )));
            }
        }
        if self.watchdog.timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "watchdog.timeout_ms must be > 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_parses_and_bad_values_are_named() {
        let c = RuntimeConfig::default();
        assert_eq!(c.controller.rate_hz, 125.0);
        assert_eq!(c.watchdog.timeout_ms, 100);
        let bad = DEFAULT_RUNTIME_CONFIG.replace("max_speed = 1.5", "max_speed = -1");
        let e = RuntimeConfig::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("max_speed"), "{e}");
        let bad = DEFAULT_RUNTIME_CONFIG.replace("timeout_ms", "timeout_s");
        assert!(RuntimeConfig::parse(&bad).is_err());
    }
}
