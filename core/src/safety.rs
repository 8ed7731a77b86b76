//! The safety filter every setpoint passes before it reaches an arm: the robot's
//! workspace (x, y), the heights its tip may reach and its motion limits
//! (`configs/robots/*.toml`).
//!
//! The filter never corrects a setpoint: it rejects it with its reason, and the
//! controller stops the chunk and holds. A filter that bends bad plans into "safe" ones
//! would hide the bug that made them; holding still is always safe for a suction arm.

use thiserror::Error;

use crate::pose::EePose;
use crate::robot::{Limits, Robot, Workspace};

/// Why a setpoint did not pass.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rejection {
    #[error("pose is not finite (NaN or infinite)")]
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

/// Checks a stream of setpoints `dt` seconds apart against a robot's box and limits.
#[derive(Debug, Clone)]
pub struct SafetyFilter {
    workspace: Workspace,
    limits: Limits,
    /// The last accepted pose and the speed that reached it.
    last: Option<(EePose, f64)>,
    estop: bool,
}

impl SafetyFilter {
    pub fn new(robot: &Robot) -> Self {
        Self {
            workspace: robot.workspace.clone(),
            limits: robot.limits.clone(),
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

    /// Whether a keypose (where a pick or place aims) is finite and inside the workspace,
    /// its heights included: the check every decision passes before it is planned.
    pub fn check_keypose(&self, p: &EePose) -> Result<(), Rejection> {
        self.inside(p, self.workspace.z)
    }

    /// Whether a setpoint is finite and inside the workspace box and the heights the tip
    /// may reach while moving (no motion check).
    pub fn check_pose(&self, p: &EePose) -> Result<(), Rejection> {
        self.inside(p, self.limits.tip_z)
    }

    fn inside(&self, p: &EePose, z: [f64; 2]) -> Result<(), Rejection> {
        if !p.is_finite() {
            return Err(Rejection::NotFinite);
        }
        for (axis, value, [lo, hi]) in [
            ("x", p.x, self.workspace.x),
            ("y", p.y, self.workspace.y),
            ("z", p.z, z),
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
            if speed > self.limits.max_speed * 1.001 {
                return Err(Rejection::TooFast {
                    speed,
                    limit: self.limits.max_speed,
                });
            }
            let accel = (speed - prev_speed).abs() / dt;
            if accel > self.limits.max_accel * 1.001 {
                return Err(Rejection::TooHardAccel {
                    accel,
                    limit: self.limits.max_accel,
                });
            }
            let rate = (p.yaw - prev.yaw).abs() / dt;
            if rate > self.limits.max_yaw_speed * 1.001 {
                return Err(Rejection::YawTooFast {
                    rate,
                    limit: self.limits.max_yaw_speed,
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
        SafetyFilter::new(Robot::ur5e())
    }

    #[test]
    fn a_planned_primitive_passes_at_125_and_500_hz() {
        let start = EePose::new(0.5, 0.0, 0.45, 0.0);
        for rate in [125.0, 500.0] {
            let p = PrimitiveParams {
                rate_hz: rate,
                ..PrimitiveParams::for_robot(Robot::ur5e())
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
