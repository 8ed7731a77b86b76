//! The anchor of an action: the centroid and yaw of the objects its pointers pick. The
//! head learns each keypose relative to it, so a block's position and turn reach the
//! action from its pixels instead of through the network's features.
//!
//! Position: the pick and a place on a block or zone are about 0 from their anchor.
//! Yaw: the pick's anchor is the picked object's yaw folded into (−45°, 45°], and the
//! place's is the pick's turned by the fold of (place object − pick object): the turn that
//! leaves the block square with what it is put on, which the oracle makes and the pose
//! metric checks (within 15° modulo 90°). A network asked to output that turn itself got
//! it no better than at random (blocks on zones 20–45° off).

use candle_core::{Result, Tensor};

use crate::head::KEYPOSE_DIMS;
use crate::stem::{SLOT_X, SLOT_YAW4};

/// Angles modulo 90° in (−45°, 45°].
fn fold(a: f32) -> f32 {
    let q = std::f32::consts::FRAC_PI_2;
    a - q * (a / q).round()
}

/// Per `<act>` row and keypose: x, y on the workspace's ±1 scale, and yaw (radians).
pub struct Anchor {
    keyposes: usize,
    poses: Vec<[f32; 3]>,
}

impl Anchor {
    /// Where pointer weights `w` (n, K, N) put each keypose among the objects of stem
    /// inputs `frames` (n, N, FEATURES). A soft `w` gives the weighted centroid and the
    /// weighted mean of the yaws (on the 90°-periodic circle).
    pub fn new(w: &Tensor, frames: &Tensor) -> Result<Self> {
        let (_, k, _) = w.dims3()?;
        let xy: Vec<Vec<Vec<f32>>> = w.matmul(&frames.narrow(2, SLOT_X, 2)?)?.to_vec3()?;
        let y4: Vec<Vec<Vec<f32>>> = w
            .matmul(&frames.narrow(2, SLOT_YAW4, 2)?.contiguous()?)?
            .to_vec3()?;
        let mut poses = Vec::with_capacity(xy.len() * k);
        for (xy, y4) in xy.iter().zip(&y4) {
            let mut prev: Option<f32> = None;
            for (p, s) in xy.iter().zip(y4) {
                let yaw = s[0].atan2(s[1]) / 4.0;
                let yaw = prev.map_or(yaw, |a| a + fold(yaw - a));
                prev = Some(yaw);
                poses.push([p[0], p[1], yaw]);
            }
        }
        Ok(Self { keyposes: k, poses })
    }

    fn keyposes<'a>(
        &'a self,
        row: usize,
        action: &'a mut [f32],
    ) -> impl Iterator<Item = (&'a [f32; 3], &'a mut [f32])> {
        self.poses[row * self.keyposes..][..self.keyposes]
            .iter()
            .zip(action.chunks_mut(KEYPOSE_DIMS))
    }

    /// Turns a normalised action (K × 6) of `<act>` row `row` into its anchor's frame.
    pub fn relative(&self, row: usize, action: &mut [f32]) {
        for (a, k) in self.keyposes(row, action) {
            k[0] -= a[0];
            k[1] -= a[1];
            rotate(k, -a[2]);
        }
    }

    /// The inverse of [`Anchor::relative`]: a head sample to a normalised action.
    pub fn absolute(&self, row: usize, action: &mut [f32]) {
        for (a, k) in self.keyposes(row, action) {
            k[0] += a[0];
            k[1] += a[1];
            rotate(k, a[2]);
        }
    }
}

/// Adds `by` to a keypose's yaw, held as (sin, cos) in slots 3 and 4.
fn rotate(k: &mut [f32], by: f32) {
    let (s, c) = (k[3], k[4]);
    let (sb, cb) = by.sin_cos();
    k[3] = s * cb + c * sb;
    k[4] = c * cb - s * sb;
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::stem::FEATURES;

    /// Stem inputs with objects at (x, y) turned by yaw (degrees).
    fn frames(objects: &[(f32, f32, f32)]) -> Tensor {
        let mut f = vec![0f32; objects.len() * FEATURES];
        for (o, row) in objects.iter().zip(f.chunks_mut(FEATURES)) {
            row[SLOT_X] = o.0;
            row[SLOT_X + 1] = o.1;
            let y4 = 4.0 * o.2.to_radians();
            row[SLOT_YAW4] = y4.sin();
            row[SLOT_YAW4 + 1] = y4.cos();
        }
        Tensor::from_vec(f, (1, objects.len(), FEATURES), &Device::Cpu).unwrap()
    }

    fn yaw(k: &[f32]) -> f32 {
        k[3].atan2(k[4]).to_degrees()
    }

    #[test]
    fn one_hot_pointers_anchor_on_the_objects_and_turn_the_block_square() {
        // A block at 80° (= −10° modulo 90°), a zone at 25°, a third object.
        let f = frames(&[(0.1, -0.2, 80.0), (0.3, 0.4, 25.0), (-0.9, 0.8, 0.0)]);
        let w = Tensor::new(&[[[1f32, 0., 0.], [0., 1., 0.]]], &Device::Cpu).unwrap();
        let anchor = Anchor::new(&w, &f).unwrap();
        // A head sample of 0 offset and 0 yaw is the anchor itself.
        let mut a = [0., 0., 0.5, 0., 1., 1., 0., 0., 0.5, 0., 1., -1.];
        anchor.absolute(0, &mut a);
        assert!(
            (a[0] - 0.1).abs() < 1e-6 && (a[1] + 0.2).abs() < 1e-6,
            "{a:?}"
        );
        assert!(
            (a[6] - 0.3).abs() < 1e-6 && (a[7] - 0.4).abs() < 1e-6,
            "{a:?}"
        );
        assert_eq!(
            (a[2], a[5], a[8], a[11]),
            (0.5, 1., 0.5, -1.),
            "z and suction kept"
        );
        assert!(
            (yaw(&a[..6]) + 10.0).abs() < 1e-3,
            "pick at the block's fold"
        );
        // The block turns by place − pick = 35°: from 80° to 115° = 25° modulo 90°.
        assert!((yaw(&a[6..]) - 25.0).abs() < 1e-3, "{}", yaw(&a[6..]));
        let before = a;
        anchor.relative(0, &mut a);
        anchor.absolute(0, &mut a);
        for (x, y) in a.iter().zip(before) {
            assert!((x - y).abs() < 1e-5, "relative then absolute: {a:?}");
        }
    }

    #[test]
    fn the_place_turn_is_the_shortest_one() {
        // Block at 40°, zone at −40°: the turn is +10° (to 50°), not −80°.
        let f = frames(&[(0., 0., 40.0), (0., 0., -40.0)]);
        let w = Tensor::new(&[[[1f32, 0.], [0., 1.]]], &Device::Cpu).unwrap();
        let mut a = [0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 1., 0.];
        Anchor::new(&w, &f).unwrap().absolute(0, &mut a);
        assert!((yaw(&a[..6]) - 40.0).abs() < 1e-3);
        assert!((yaw(&a[6..]) - 50.0).abs() < 1e-3, "{}", yaw(&a[6..]));
    }

    #[test]
    fn soft_pointers_anchor_between_the_objects() {
        let f = frames(&[(0.1, -0.2, 10.0), (0.3, 0.4, 20.0)]);
        let w = Tensor::new(&[[[0.5f32, 0.5], [0.5, 0.5]]], &Device::Cpu).unwrap();
        let mut a = [0f32; 12];
        a[4] = 1.0;
        a[10] = 1.0;
        Anchor::new(&w, &f).unwrap().absolute(0, &mut a);
        assert!(
            (a[0] - 0.2).abs() < 1e-6 && (a[1] - 0.1).abs() < 1e-6,
            "{a:?}"
        );
        assert!((yaw(&a[..6]) - 15.0).abs() < 1e-3, "{}", yaw(&a[..6]));
    }
}
