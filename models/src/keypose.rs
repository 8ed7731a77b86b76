//! Keyposes as the action head sees them: each of x, y, z scaled from the workspace
//! bounds (the robot's, [`Workspace`]) to [−1, 1], yaw as (sin, cos) so it has no seam,
//! suction as ±1.

pub use loho_core::pose::Keypose;
pub use loho_core::robot::Workspace;

use crate::head::KEYPOSE_DIMS;

fn to_unit(v: f64, [lo, hi]: [f64; 2]) -> f32 {
    (2.0 * (v - lo) / (hi - lo) - 1.0) as f32
}

fn from_unit(u: f32, [lo, hi]: [f64; 2]) -> f64 {
    lo + (u as f64 + 1.0) / 2.0 * (hi - lo)
}

/// Keyposes scaled to the head's ±1 range over a workspace: the box of the robot's
/// `configs/robots/*.toml`, saved in the checkpoint's `config.json`.
pub trait ActionScale {
    fn encode(&self, k: &Keypose) -> [f32; KEYPOSE_DIMS];
    /// The keypose of six head outputs. Values are not clamped: a pose outside the
    /// workspace is for the safety filter to refuse, not for the model to hide.
    fn decode(&self, v: &[f32]) -> Keypose;
}

impl ActionScale for Workspace {
    fn encode(&self, k: &Keypose) -> [f32; KEYPOSE_DIMS] {
        [
            to_unit(k.x, self.x),
            to_unit(k.y, self.y),
            to_unit(k.z, self.z),
            k.yaw.sin() as f32,
            k.yaw.cos() as f32,
            if k.suction { 1.0 } else { -1.0 },
        ]
    }

    fn decode(&self, v: &[f32]) -> Keypose {
        Keypose {
            x: from_unit(v[0], self.x),
            y: from_unit(v[1], self.y),
            z: from_unit(v[2], self.z),
            yaw: (v[3] as f64).atan2(v[4] as f64),
            suction: v[5] > 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_the_same_keypose() {
        let w = Workspace::default();
        let k = Keypose {
            x: 0.61,
            y: -0.27,
            z: 0.06,
            yaw: -2.5,
            suction: true,
        };
        let v = w.encode(&k);
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
        let back = w.decode(&v);
        assert!((back.x - k.x).abs() < 1e-6 && (back.y - k.y).abs() < 1e-6);
        assert!((back.z - k.z).abs() < 1e-6 && (back.yaw - k.yaw).abs() < 1e-6);
        assert!(back.suction);
        assert_eq!(
            w.encode(&w.decode(&[-1.0, 1.0, 0.0, 0.0, 1.0, -1.0]))[..3],
            [-1.0, 1.0, 0.0]
        );
    }
}
