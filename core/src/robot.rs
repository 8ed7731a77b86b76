//! The robot as loho knows it (`configs/robots/*.toml`): the [`Workspace`] it works in,
//! the [`Limits`] every setpoint keeps, and its [`Kinematics`]. One file per robot; the
//! shipped UR5e is also compiled in ([`Robot::ur5e`]), so the simulator's camera, the
//! safety filter and the model's action scale read the same box.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::config_file::{ConfigError, ConfigFile};
use crate::kinematics::Kinematics;
use crate::pose::EePose;

/// `configs/robots/ur5e.toml`, compiled in.
pub const UR5E: &str = include_str!("../../configs/robots/ur5e.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    pub name: String,
    pub workspace: Workspace,
    pub limits: Limits,
    pub kinematics: Kinematics,
}

/// The table area the camera sees and keyposes aim at (m, base frame), and the heights a
/// keypose may have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    pub x: [f64; 2],
    pub y: [f64; 2],
    pub z: [f64; 2],
}

/// What the tool tip may do while it moves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Heights the tip may reach (m): below the table at a descent, above it in transfer.
    pub tip_z: [f64; 2],
    /// m/s
    pub max_speed: f64,
    /// m/s²
    pub max_accel: f64,
    /// rad/s
    pub max_yaw_speed: f64,
    /// Where the arm can put its tool tip pointing down.
    pub reach: Reach,
}

/// The tip positions a top-down tool can reach: a ball around a point on the base's
/// vertical axis. Fitted inside the arm's true reach (which is not a ball), so every
/// point inside is reachable; transfers are kept below its top (`trajectory`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reach {
    /// Height of the ball's centre on the base's axis (m).
    pub center_z: f64,
    /// m
    pub radius: f64,
}

impl Reach {
    /// The highest reachable tip at (x, y) (base frame), or −∞ beyond the reach.
    pub fn max_z(&self, x: f64, y: f64) -> f64 {
        let r2 = x * x + y * y;
        if r2 > self.radius * self.radius {
            return f64::NEG_INFINITY;
        }
        self.center_z + (self.radius * self.radius - r2).sqrt()
    }
}

impl Workspace {
    /// Whether a keypose lies in the workspace (its heights included).
    pub fn contains(&self, p: &EePose) -> bool {
        let inside = |v: f64, [lo, hi]: [f64; 2]| (lo..=hi).contains(&v);
        inside(p.x, self.x) && inside(p.y, self.y) && inside(p.z, self.z)
    }
}

impl Default for Workspace {
    /// The shipped robot's.
    fn default() -> Self {
        Robot::ur5e().workspace.clone()
    }
}

impl Robot {
    /// The shipped UR5e (`configs/robots/ur5e.toml`).
    pub fn ur5e() -> &'static Robot {
        static R: LazyLock<Robot> = LazyLock::new(|| {
            Robot::parse(UR5E).expect("the shipped configs/robots/ur5e.toml is valid")
        });
        &R
    }
}

impl ConfigFile for Robot {
    fn validate(&self) -> Result<(), ConfigError> {
        let (w, l) = (&self.workspace, &self.limits);
        for (name, [lo, hi]) in [
            ("workspace.x", w.x),
            ("workspace.y", w.y),
            ("workspace.z", w.z),
            ("limits.tip_z", l.tip_z),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(ConfigError::Invalid(format!(
                    "{name} = [{lo}, {hi}]: expected a finite range low < high"
                )));
            }
        }
        for (name, v) in [
            ("max_speed", l.max_speed),
            ("max_accel", l.max_accel),
            ("max_yaw_speed", l.max_yaw_speed),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} = {v}: expected a positive number"
                )));
            }
        }
        if self.kinematics.joint_names.len() != 6 {
            return Err(ConfigError::Invalid(format!(
                "kinematics.joint_names: expected 6 names, got {}",
                self.kinematics.joint_names.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_robot_parses_and_bad_values_are_named() {
        let r = Robot::ur5e();
        assert_eq!(r.workspace.x, [0.25, 0.75]);
        assert_eq!(r.kinematics.joint_names[0], "shoulder_pan_joint");
        assert!(r.workspace.contains(&EePose::new(0.5, 0.0, 0.1, 0.0)));
        assert!(!r.workspace.contains(&EePose::new(0.5, 0.0, 0.31, 0.0)));
        let bad = UR5E.replace("max_speed = 1.5", "max_speed = -1");
        let e = Robot::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("max_speed"), "{e}");
        let bad = UR5E.replace("x = [0.25, 0.75]", "x = [0.75, 0.25]");
        let e = Robot::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("workspace.x"), "{e}");
    }
}
