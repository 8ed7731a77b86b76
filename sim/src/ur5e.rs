//! UR5e kinematics from Universal Robots' published DH parameters (in
//! `configs/robots/ur5e.toml`), carrying a suction tool that points straight down.
//!
//! The simulator moves the suction tip along its setpoints (Cartesian, as Ravens' position
//! controller effectively does); these kinematics give the joint angles that go with each
//! tip pose, for the `state` topic, drivers and pictures. Inverse kinematics is damped
//! least squares seeded by the previous solution, so joint paths stay continuous.

use loho_runtime::robot::{Kinematics, Robot};
use nalgebra::{Matrix4, Matrix6, Rotation3, Vector3, Vector6};

/// The arm's parameters: `[kinematics]` of `configs/robots/ur5e.toml`.
pub fn params() -> &'static Kinematics {
    &Robot::ur5e().kinematics
}

/// The home configuration (rad).
pub fn home() -> [f64; 6] {
    params().home
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

/// Pose of the suction tip (homogeneous transform, base frame = world frame).
pub fn forward(q: &[f64; 6]) -> Matrix4<f64> {
    let k = params();
    let mut t = Matrix4::<f64>::identity();
    for (i, &qi) in q.iter().enumerate() {
        t *= dh(qi, k.d[i], k.a[i], k.alpha[i]);
    }
    let mut tool = Matrix4::<f64>::identity();
    tool[(2, 3)] = k.tool;
    t * tool
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

/// Joint angles reaching `target` from the `seed` configuration, and the remaining
/// position error (m); an error above a millimetre means the pose is out of reach.
pub fn inverse(target: &Matrix4<f64>, seed: &[f64; 6]) -> ([f64; 6], f64) {
    let mut q = *seed;
    let lambda2 = 1e-4;
    for _ in 0..100 {
        let cur = forward(&q);
        let e = error(target, &cur);
        if e.norm() < 1e-7 {
            break;
        }
        let mut j = Matrix6::zeros();
        let h = 1e-6;
        for k in 0..6 {
            let mut qh = q;
            qh[k] += h;
            let col = error(&forward(&qh), &cur) / h;
            j.set_column(k, &col);
        }
        let jjt = j * j.transpose() + Matrix6::identity() * lambda2;
        let Some(inv) = jjt.try_inverse() else { break };
        let dq = j.transpose() * inv * e;
        for k in 0..6 {
            q[k] += dq[k].clamp(-0.5, 0.5);
        }
    }
    let e = error(target, &forward(&q));
    (q, Vector3::new(e[0], e[1], e[2]).norm())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ik_reaches_workspace_poses_and_fk_agrees() {
        let mut seed = home();
        for &(x, y, z, yaw) in &[
            (0.5, 0.0, 0.3, 0.0),
            (0.4, -0.3, 0.05, 0.5),
            (0.6, 0.3, 0.02, -1.0),
            (0.3, 0.2, 0.2, 2.0),
        ] {
            let t = tip_target(x, y, z, yaw);
            let (q, err) = inverse(&t, &seed);
            assert!(err < 1e-4, "({x}, {y}, {z}): error {err}");
            let f = forward(&q);
            assert!((f[(0, 3)] - x).abs() < 1e-4 && (f[(2, 3)] - z).abs() < 1e-4);
            // The tool points down.
            assert!((f[(2, 2)] + 1.0).abs() < 1e-4);
            seed = q;
        }
    }
}
