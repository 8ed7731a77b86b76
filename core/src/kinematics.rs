//! An arm's kinematics from its Denavit–Hartenberg parameters (the robot file's
//! `[kinematics]`, e.g. Universal Robots' published ones for the UR5e), carrying a tool
//! that points straight down.
//!
//! Loho moves the tool tip along Cartesian setpoints; these kinematics give the joint
//! angles that go with each tip pose (the `state` topic, drivers, the UR emulator).
//! Inverse kinematics is damped least squares seeded by the previous solution, so joint
//! paths stay continuous.

use nalgebra::{Matrix4, Matrix6, Rotation3, Vector3, Vector6};
use serde::Deserialize;

/// A six-joint arm by its Denavit–Hartenberg parameters, with a tool along the flange's z.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kinematics {
    pub d: [f64; 6],
    pub a: [f64; 6],
    pub alpha: [f64; 6],
    /// The tool tip beyond the flange (m).
    pub tool: f64,
    pub joint_names: Vec<String>,
    /// The home configuration (rad).
    pub home: [f64; 6],
    /// Joint speed limit (rad/s).
    pub max_joint_speed: f64,
    /// Where the robot's base frame sits in the world the workspace is given in: x, y, z
    /// (m) and yaw (rad).
    pub base: [f64; 4],
}

fn dh(theta: f64, d: f64, a: f64, alpha: f64) -> Matrix4<f64> {
    let (st, ct) = theta.sin_cos();
    let (sa, ca) = alpha.sin_cos();
    Matrix4::new(
        ct,
        -st * ca,
        st * sa,
        a * ct,
        st,
        ct * ca,
        -ct * sa,
        a * st,
        0.0,
        sa,
        ca,
        d,
        0.0,
        0.0,
        0.0,
        1.0,
    )
}

impl Kinematics {
    /// Pose of the suction tip (homogeneous transform in the base frame).
    pub fn forward(&self, q: &[f64; 6]) -> Matrix4<f64> {
        let mut t = Matrix4::<f64>::identity();
        for (i, &qi) in q.iter().enumerate() {
            t *= dh(qi, self.d[i], self.a[i], self.alpha[i]);
        }
        let mut tool = Matrix4::<f64>::identity();
        tool[(2, 3)] = self.tool;
        t * tool
    }

    /// Joint angles reaching `target` from the `seed` configuration, and the remaining
    /// position error (m); an error above a millimetre means the pose is out of reach.
    /// Damped least squares seeded by `seed`, so joint paths stay continuous.
    pub fn inverse(&self, target: &Matrix4<f64>, seed: &[f64; 6]) -> ([f64; 6], f64) {
        let mut q = *seed;
        let lambda2 = 1e-4;
        for _ in 0..100 {
            let cur = self.forward(&q);
            let e = error(target, &cur);
            if e.norm() < 1e-7 {
                break;
            }
            let mut j = Matrix6::zeros();
            let h = 1e-6;
            for k in 0..6 {
                let mut qh = q;
                qh[k] += h;
                let col = error(&self.forward(&qh), &cur) / h;
                j.set_column(k, &col);
            }
            let jjt = j * j.transpose() + Matrix6::identity() * lambda2;
            let Some(inv) = jjt.try_inverse() else { break };
            let dq = j.transpose() * inv * e;
            for k in 0..6 {
                q[k] += dq[k].clamp(-0.5, 0.5);
            }
        }
        let e = error(target, &self.forward(&q));
        (q, Vector3::new(e[0], e[1], e[2]).norm())
    }
}

/// The tip pose for a top-down tool at (x, y, z) with yaw about +z.
pub fn tip_target(x: f64, y: f64, z: f64, yaw: f64) -> Matrix4<f64> {
    let r = Rotation3::from_axis_angle(&Vector3::z_axis(), yaw)
        * Rotation3::from_axis_angle(&Vector3::x_axis(), std::f64::consts::PI);
    let mut m = r.to_homogeneous();
    m[(0, 3)] = x;
    m[(1, 3)] = y;
    m[(2, 3)] = z;
    m
}

/// Pose error: position difference and the orientation error ½ Σ cᵢ × tᵢ over the
/// frames' axes, which stays finite even for errors near half a turn.
fn error(target: &Matrix4<f64>, cur: &Matrix4<f64>) -> Vector6<f64> {
    let dp = target.fixed_view::<3, 1>(0, 3) - cur.fixed_view::<3, 1>(0, 3);
    let mut dr = Vector3::zeros();
    for k in 0..3 {
        let c: Vector3<f64> = cur.fixed_view::<3, 1>(0, k).into_owned();
        let t: Vector3<f64> = target.fixed_view::<3, 1>(0, k).into_owned();
        dr += 0.5 * c.cross(&t);
    }
    Vector6::new(dp[0], dp[1], dp[2], dr[0], dr[1], dr[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robot::Robot;

    #[test]
    fn ik_reaches_workspace_poses_and_fk_agrees() {
        let k = &Robot::ur5e().kinematics;
        let mut seed = k.home;
        for &(x, y, z, yaw) in &[
            (0.5, 0.0, 0.3, 0.0),
            (0.4, -0.3, 0.05, 0.5),
            (0.6, 0.3, 0.02, -1.0),
            (0.3, 0.2, 0.2, 2.0),
        ] {
            let t = tip_target(x, y, z, yaw);
            let (q, err) = k.inverse(&t, &seed);
            assert!(err < 1e-4, "({x}, {y}, {z}): error {err}");
            let f = k.forward(&q);
            assert!((f[(0, 3)] - x).abs() < 1e-4 && (f[(2, 3)] - z).abs() < 1e-4);
            // The tool points down.
            assert!((f[(2, 2)] + 1.0).abs() < 1e-4);
            seed = q;
        }
    }
}
