//! Between loho's tool poses and the controller's: loho speaks of the suction tip in the
//! world, pointing down with a yaw ([`EePose`]); the controller of the TCP in its base
//! frame as position and rotation vector (`p[x, y, z, rx, ry, rz]`). The base frame's
//! place in the world comes from the robot file (`[kinematics] base`).

use loho_core::kinematics::{tip_target, Kinematics};
use loho_core::pose::EePose;
use nalgebra::{Matrix4, Rotation3, UnitQuaternion, Vector3};

/// The robot's base frame in the world: translation and yaw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaseFrame {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub yaw: f64,
}

impl From<&Kinematics> for BaseFrame {
    fn from(k: &Kinematics) -> Self {
        let [x, y, z, yaw] = k.base;
        Self { x, y, z, yaw }
    }
}

impl BaseFrame {
    /// The TCP pose (base frame) of a tool-down pose in the world.
    pub fn to_tcp(&self, p: &EePose) -> [f64; 6] {
        matrix_to_tcp(&self.tcp_matrix(p))
    }

    /// The same, as a homogeneous transform.
    pub fn tcp_matrix(&self, p: &EePose) -> Matrix4<f64> {
        let (s, c) = self.yaw.sin_cos();
        let (dx, dy) = (p.x - self.x, p.y - self.y);
        tip_target(
            c * dx + s * dy,
            -s * dx + c * dy,
            p.z - self.z,
            p.yaw - self.yaw,
        )
    }

    /// The world pose of a TCP given in the base frame: its position, and the yaw of the
    /// tool's x axis (the tool is taken to point down, as loho drives it).
    pub fn to_world(&self, m: &Matrix4<f64>) -> EePose {
        let (s, c) = self.yaw.sin_cos();
        let (x, y) = (m[(0, 3)], m[(1, 3)]);
        let yaw = m[(1, 0)].atan2(m[(0, 0)]) + self.yaw;
        EePose::new(
            self.x + c * x - s * y,
            self.y + s * x + c * y,
            self.z + m[(2, 3)],
            (yaw + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI,
        )
    }
}

/// `p[x, y, z, rx, ry, rz]` as a homogeneous transform.
pub fn tcp_to_matrix(p: &[f64; 6]) -> Matrix4<f64> {
    let mut m = Rotation3::from_scaled_axis(Vector3::new(p[3], p[4], p[5])).to_homogeneous();
    m[(0, 3)] = p[0];
    m[(1, 3)] = p[1];
    m[(2, 3)] = p[2];
    m
}

/// A homogeneous transform as `p[x, y, z, rx, ry, rz]`. Through a quaternion: a tool
/// pointing down is a half turn, where the rotation matrix's own axis is undefined.
pub fn matrix_to_tcp(m: &Matrix4<f64>) -> [f64; 6] {
    let r = Rotation3::from_matrix_unchecked(m.fixed_view::<3, 3>(0, 0).into_owned());
    let v = UnitQuaternion::from_rotation_matrix(&r).scaled_axis();
    [m[(0, 3)], m[(1, 3)], m[(2, 3)], v[0], v[1], v[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_pose_survives_the_base_frame_and_the_rotation_vector() {
        for base in [
            BaseFrame {
                x: 0.0,
                y: 0.0,
                z: 0.0,
                yaw: 0.0,
            },
            BaseFrame {
                x: 0.2,
                y: -0.1,
                z: 0.05,
                yaw: 2.5,
            },
        ] {
            for p in [
                EePose::new(0.5, 0.1, 0.2, 0.0),
                EePose::new(0.3, -0.4, 0.0, 1.2),
                EePose::new(0.7, 0.4, 0.3, -3.0),
            ] {
                let tcp = base.to_tcp(&p);
                let back = base.to_world(&tcp_to_matrix(&tcp));
                for (a, b) in [
                    (p.x, back.x),
                    (p.y, back.y),
                    (p.z, back.z),
                    (p.yaw, back.yaw),
                ] {
                    assert!((a - b).abs() < 1e-9, "{p:?} -> {tcp:?} -> {back:?}");
                }
            }
        }
        // Tool down with yaw 0 is a half turn about x: p[…, π, 0, 0].
        let tcp = BaseFrame::from(&loho_core::robot::Robot::ur5e().kinematics)
            .to_tcp(&EePose::new(0.5, 0.0, 0.1, 0.0));
        assert!((tcp[3].abs() - std::f64::consts::PI).abs() < 1e-9 && tcp[4].abs() < 1e-9);
    }
}
