//! The safety filter every setpoint passes before it reaches an arm, and the runtime
//! limits it reads from `configs/runtime.toml`.
//!
//! The filter never corrects a setpoint: it rejects it with its reason, and the
//! controller stops the chunk and holds. A filter that bends bad plans into "safe" ones
//! would hide the bug that made them; holding still is always safe for a suction arm.

use serde::Deserialize;
use thiserror::Error;

use crate::trajectory::EePose;

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

/// Why a setpoint did not pass.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rejection {
    #[error("setpoint is not finite (NaN or infinite)")]
    NotFinite,
    #[error("{axis} = {value:.3} m is outside the workspace [{lo}, {hi}]")]
    Outside {
        axis: &'static str,
        value: f64,
        lo: f64,
        hi: f64,
    },
    #[error("speed {speed:.2} m/s over the limit {limit} m/s")]
    TooFast { speed: f64, limit: f64 },
    #[error("acceleration {accel:.1} m/s² over the limit {limit} m/s²")]
    TooHardAccel { accel: f64, limit: f64 },
    #[error("yaw rate {rate:.2} rad/s over the limit {limit} rad/s")]
    YawTooFast { rate: f64, limit: f64 },
    #[error("e-stop is latched")]
    EStop,
}

/// Checks a stream of setpoints `dt` seconds apart against [`SafetyConfig`].
#[derive(Debug, Clone)]
pub struct SafetyFilter {
    cfg: SafetyConfig,
    /// The last accepted pose and the speed that reached it.
    last: Option<(EePose, f64)>,
    estop: bool,
}

impl SafetyFilter {
    pub fn new(cfg: SafetyConfig) -> Self {
        Self {
            cfg,
            last: None,
            estop: false,
        }
    }

    /// Starts a new stream from `pose`, at rest (the arm's measured pose).
    pub fn reset(&mut self, pose: EePose) {
        self.last = Some((pose, 0.0));
    }

    pub fn estop(&mut self) {
        self.estop = true;
    }
    pub fn clear_estop(&mut self) {
        self.estop = false;
    }
    pub fn estopped(&self) -> bool {
        self.estop
    }

    /// Whether a pose lies in the workspace box (no motion check).
    pub fn check_pose(&self, p: &EePose) -> Result<(), Rejection> {
        if !p.is_finite() {
            return Err(Rejection::NotFinite);
        }
        for (axis, value, [lo, hi]) in [
            ("x", p.x, self.cfg.x),
            ("y", p.y, self.cfg.y),
            ("z", p.z, self.cfg.z),
        ] {
            if !(lo..=hi).contains(&value) {
                return Err(Rejection::Outside {
                    axis,
                    value,
                    lo,
                    hi,
                });
            }
        }
        Ok(())
    }

    /// Accepts the next setpoint, `dt` seconds after the last accepted one, or says why not.
    /// A rejected setpoint leaves the filter where it was.
    pub fn check(&mut self, p: &EePose, dt: f64) -> Result<(), Rejection> {
        if self.estop {
            return Err(Rejection::EStop);
        }
        self.check_pose(p)?;
        let mut speed = 0.0;
        if let Some((prev, prev_speed)) = self.last {
            let dt = dt.max(1e-6);
            let d =
                ((p.x - prev.x).powi(2) + (p.y - prev.y).powi(2) + (p.z - prev.z).powi(2)).sqrt();
            speed = d / dt;
            // A little slack for rounding in the planner's finite steps.
            if speed > self.cfg.max_speed * 1.001 {
                return Err(Rejection::TooFast {
                    speed,
                    limit: self.cfg.max_speed,
                });
            }
            let accel = (speed - prev_speed).abs() / dt;
            if accel > self.cfg.max_accel * 1.001 {
                return Err(Rejection::TooHardAccel {
                    accel,
                    limit: self.cfg.max_accel,
                });
            }
            let rate = (p.yaw - prev.yaw).abs() / dt;
            if rate > self.cfg.max_yaw_speed * 1.001 {
                return Err(Rejection::YawTooFast {
                    rate,
                    limit: self.cfg.max_yaw_speed,
                });
            }
        }
        self.last = Some((*p, speed));
        Ok(())
    }

    /// Checks a whole plan from `start` without moving the filter: a chunk that would
    /// be stopped half-way is refused before its first setpoint.
    pub fn check_plan(&self, start: EePose, plan: &[EePose], dt: f64) -> Result<(), Rejection> {
        let mut dry = self.clone();
        dry.reset(start);
        plan.iter().try_for_each(|p| dry.check(p, dt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::{pick_place, PrimitiveParams};

    fn filter() -> SafetyFilter {
        SafetyFilter::new(RuntimeConfig::default().safety)
    }

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

    #[test]
    fn a_planned_primitive_passes_at_125_and_500_hz() {
        let start = EePose::new(0.5, 0.0, 0.45, 0.0);
        for rate in [125.0, 500.0] {
            let p = PrimitiveParams {
                rate_hz: rate,
                ..Default::default()
            };
            let plan: Vec<EePose> = pick_place(
                start,
                EePose::new(0.3, -0.4, 0.02, 1.2),
                EePose::new(0.7, 0.45, 0.30, -1.4),
                &p,
            )
            .unwrap()
            .iter()
            .map(|s| s.pose)
            .collect();
            filter().check_plan(start, &plan, 1.0 / rate).unwrap();
        }
    }

    #[test]
    fn nan_outside_too_fast_and_estop_are_rejected_with_their_reason() {
        let mut f = filter();
        let home = EePose::new(0.5, 0.0, 0.4, 0.0);
        f.reset(home);
        let nan = EePose {
            x: f64::NAN,
            ..home
        };
        assert_eq!(f.check(&nan, 0.008), Err(Rejection::NotFinite));
        let out = EePose { y: 0.6, ..home };
        assert!(matches!(
            f.check(&out, 0.008),
            Err(Rejection::Outside { axis: "y", .. })
        ));
        // 2 cm in 8 ms is 2.5 m/s.
        let jump = EePose { x: 0.52, ..home };
        assert!(matches!(
            f.check(&jump, 0.008),
            Err(Rejection::TooFast { .. })
        ));
        // 1.2 m/s from rest in one period: 150 m/s².
        let lurch = EePose { x: 0.5096, ..home };
        assert!(matches!(
            f.check(&lurch, 0.008),
            Err(Rejection::TooHardAccel { .. })
        ));
        let spin = EePose { yaw: 0.1, ..home };
        assert!(matches!(
            f.check(&spin, 0.008),
            Err(Rejection::YawTooFast { .. })
        ));
        // A rejected setpoint does not move the filter: a small step still passes.
        let step = EePose { x: 0.5001, ..home };
        f.check(&step, 0.008).unwrap();
        f.estop();
        assert_eq!(f.check(&step, 0.008), Err(Rejection::EStop));
        assert_eq!(f.check(&step, 0.008), Err(Rejection::EStop), "latched");
        f.clear_estop();
        f.check(&step, 0.008).unwrap();
    }
}
