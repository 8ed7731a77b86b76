//! Where the tool goes: [`EePose`] (a top-down suction tool's position and yaw) and
//! [`Keypose`] (an `EePose` with its suction), the vocabulary of every decision, plan and
//! setpoint; `msg::Pose` and `msg::Keypose` are their wire forms.

use serde::{Deserialize, Serialize};

/// An end-effector pose for a top-down suction tool: position and yaw about +z.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EePose {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub yaw: f64,
}

impl EePose {
    pub const fn new(x: f64, y: f64, z: f64, yaw: f64) -> Self {
        Self { x, y, z, yaw }
    }
    pub fn is_finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.z.is_finite() && self.yaw.is_finite()
    }
    /// The pose a fraction `s` of the way to `o` (straight line, yaw unwrapped).
    pub fn lerp(&self, o: &Self, s: f64) -> Self {
        Self {
            x: self.x + (o.x - self.x) * s,
            y: self.y + (o.y - self.y) * s,
            z: self.z + (o.z - self.z) * s,
            yaw: self.yaw + (o.yaw - self.yaw) * s,
        }
    }
    /// The position and yaw of a message pose (the tool points straight down).
    pub fn from_pose(p: &crate::msg::Pose) -> Self {
        Self::new(p.position.x, p.position.y, p.position.z, p.yaw())
    }
    /// As a message pose, pointing straight down.
    pub fn to_pose(&self) -> crate::msg::Pose {
        crate::msg::Pose::from_xyz_yaw(self.x, self.y, self.z, self.yaw)
    }
    /// Straight-line distance between the positions (m).
    pub fn dist(&self, o: &Self) -> f64 {
        ((o.x - self.x).powi(2) + (o.y - self.y).powi(2) + (o.z - self.z).powi(2)).sqrt()
    }
}

/// A keypose of an action, as the model writes it and datasets store it: where the tool
/// goes and whether its suction is on there. On the wire it is `loho_msgs/Keypose`
/// (pose, gripper), built by [`crate::policy::codec::chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Keypose {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub yaw: f64,
    pub suction: bool,
}

impl Keypose {
    pub fn new(p: EePose, suction: bool) -> Self {
        Self {
            x: p.x,
            y: p.y,
            z: p.z,
            yaw: p.yaw,
            suction,
        }
    }
    pub fn pose(&self) -> EePose {
        EePose::new(self.x, self.y, self.z, self.yaw)
    }
}

/// Where the tool waits, above the middle of the workspace pointing down (out of the way
/// of the camera's view): the simulator's start, and an emulated arm's with no simulator
/// behind it.
pub const HOME: EePose = EePose::new(0.5, 0.0, 0.45, 0.0);

/// An angle wrapped into [−π, π).
pub fn wrap_angle(a: f64) -> f64 {
    use std::f64::consts::PI;
    (a + PI).rem_euclid(2.0 * PI) - PI
}
