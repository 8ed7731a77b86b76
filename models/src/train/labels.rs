//! Pointer labels: which object token a labelled keypose is on, or over.

use crate::keypose::ActionScale;
use crate::model::Config;

/// Within this distance (m, in 3-D, to a region's centroid at its top) a keypose is on that
/// object: a pick is on the block's top face, a place on a block it stacks on.
const ON_OBJECT: f64 = 0.04;

/// A keypose is over an object's footprint within this distance (m) of its centroid, or
/// within half its bounding box if that is larger.
const FOOTPRINT: f64 = 0.02;

/// An object token's centroid in the workspace (m), from its ±1 stem features.
fn object_xy(cfg: &Config, f: &[f32]) -> (f64, f64) {
    use crate::stem::{SLOT_X, SLOT_Y};
    let ws = &cfg.workspace;
    let at = |v: f32, r: [f64; 2]| (v as f64 + 1.0) * (r[1] - r[0]) / 2.0 + r[0];
    (at(f[SLOT_X], ws.x), at(f[SLOT_Y], ws.y))
}

/// The pointer targets of a batch with stem inputs `objects` (b × N × FEATURES): for each
/// `<act>` row and keypose, the nearest object token when it is within [`ON_OBJECT`], or
/// else the object it rests on ([`support`]: a place on a zone stands a block's height
/// above the zone's paint, too far for the first rule). Keyposes over open table (a spot
/// in an area) get no pointer label.
pub(super) fn pointer_labels(
    cfg: &Config,
    objects: &[Vec<Vec<f32>>],
    act_rows: &[u32],
    total: usize,
    actions: &[f32],
) -> Vec<(u32, u32)> {
    use crate::stem::{SLOT_PRESENT, SLOT_TOP};
    let ws = &cfg.workspace;
    let dims = crate::head::KEYPOSE_DIMS;
    let k = cfg.head.keyposes;
    let mut out = Vec::new();
    for (a, &row) in act_rows.iter().enumerate() {
        let frame = &objects[row as usize / total];
        for j in 0..k {
            let pose = ws.decode(&actions[(a * k + j) * dims..][..dims]);
            let dist = |f: &Vec<f32>| {
                let (x, y) = object_xy(cfg, f);
                let (dx, dy) = (x - pose.x, y - pose.y);
                let dz = f[SLOT_TOP] as f64 * 0.1 - pose.z;
                (dx * dx + dy * dy + dz * dz).sqrt()
            };
            let nearest = frame
                .iter()
                .enumerate()
                .filter(|(_, f)| f[SLOT_PRESENT] > 0.5)
                .map(|(i, f)| (i, dist(f)))
                .min_by(|x, y| x.1.total_cmp(&y.1));
            let label = match nearest {
                Some((i, d)) if d <= ON_OBJECT => Some(i),
                _ => support(cfg, frame, &pose),
            };
            if let Some(i) = label {
                out.push(((a * k + j) as u32, i as u32));
            }
        }
    }
    out
}

/// The object a keypose rests on: the highest one whose footprint holds its x, y and whose
/// top is below it.
fn support(cfg: &Config, frame: &[Vec<f32>], pose: &crate::Keypose) -> Option<usize> {
    use crate::stem::{SLOT_PRESENT, SLOT_TOP};
    // Metres per heightmap pixel (square pixels: the image spans the workspace).
    let pixel = (cfg.workspace.x[1] - cfg.workspace.x[0]) / cfg.stem.image_width as f64;
    frame
        .iter()
        .enumerate()
        .filter(|(_, f)| f[SLOT_PRESENT] > 0.5)
        .filter(|(_, f)| {
            let (x, y) = object_xy(cfg, f);
            let (dx, dy) = (x - pose.x, y - pose.y);
            // Bounding box rows and columns, in units of 40 px (`stem::features`).
            let reach = FOOTPRINT.max(f[7].max(f[8]) as f64 * 40.0 * pixel / 2.0);
            (dx * dx + dy * dy).sqrt() <= reach && (f[SLOT_TOP] as f64) * 0.1 < pose.z
        })
        .max_by(|a, b| a.1[SLOT_TOP].total_cmp(&b.1[SLOT_TOP]))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keypose::Keypose;
    use crate::stem::{FEATURES, SLOT_PRESENT, SLOT_TOP, SLOT_X, SLOT_Y};
    use candle_core::{Device, Tensor};

    #[test]
    fn a_keypose_on_an_object_points_at_it_and_one_in_the_open_at_none() {
        let cfg = Config::tiny(10);
        let n = cfg.stem.tokens();
        let mut f = vec![0f32; n * FEATURES];
        // Object 1 at the workspace centre, 4 cm tall; object 0 at x 0.3, y −0.4.
        for (i, (x, y, top)) in [(-0.8f32, -0.8f32, 0.4f32), (0.0, 0.0, 0.4)]
            .iter()
            .enumerate()
        {
            let row = &mut f[i * FEATURES..][..FEATURES];
            (row[SLOT_X], row[SLOT_Y], row[SLOT_TOP], row[SLOT_PRESENT]) = (*x, *y, *top, 1.0);
        }
        let objects: Vec<Vec<Vec<f32>>> = Tensor::from_vec(f, (1, n, FEATURES), &Device::Cpu)
            .unwrap()
            .to_vec3()
            .unwrap();
        let pose = |x, y, z| Keypose {
            x,
            y,
            z,
            yaw: 0.0,
            suction: true,
        };
        let mut actions = Vec::new();
        actions.extend(cfg.workspace.encode(&pose(0.51, 0.01, 0.045)));
        actions.extend(cfg.workspace.encode(&pose(0.375, 0.25, 0.02)));
        let total = cfg.subtask_start() + 5;
        let labels = pointer_labels(
            &cfg,
            &objects,
            &[(cfg.subtask_start() + 4) as u32],
            total,
            &actions,
        );
        assert_eq!(
            labels,
            vec![(0, 1)],
            "the pick is on object 1, the place on nothing"
        );
    }

    #[test]
    fn a_place_over_a_zone_points_at_the_zone_or_the_block_in_it() {
        let cfg = Config::tiny(10);
        let n = cfg.stem.tokens();
        let mut f = vec![0f32; n * FEATURES];
        // Object 0: a zone at the workspace centre (1 mm, a 52 px box); object 1: a block
        // 4 cm tall at x 0.56 inside it; object 2: a block outside it.
        for (i, (x, y, top, extent)) in [
            (0.0f32, 0.0f32, 0.01f32, 1.3f32),
            (0.24, 0.0, 0.4, 0.35),
            (-0.8, 0.5, 0.4, 0.35),
        ]
        .iter()
        .enumerate()
        {
            let row = &mut f[i * FEATURES..][..FEATURES];
            (row[SLOT_X], row[SLOT_Y], row[SLOT_TOP], row[SLOT_PRESENT]) = (*x, *y, *top, 1.0);
            (row[7], row[8]) = (*extent, *extent);
        }
        let objects: Vec<Vec<Vec<f32>>> = Tensor::from_vec(f, (1, n, FEATURES), &Device::Cpu)
            .unwrap()
            .to_vec3()
            .unwrap();
        let pose = |x, y, z| Keypose {
            x,
            y,
            z,
            yaw: 0.0,
            suction: false,
        };
        let total = cfg.subtask_start() + 5;
        let act = [(cfg.subtask_start() + 4) as u32];
        let label = |place: Keypose| {
            let mut actions = Vec::new();
            actions.extend(cfg.workspace.encode(&pose(0.3, 0.25, 0.04)));
            actions.extend(cfg.workspace.encode(&place));
            pointer_labels(&cfg, &objects, &act, total, &actions)
        };
        // 4 cm off the zone's centre, a block's height above its paint: the zone.
        assert_eq!(label(pose(0.5, 0.04, 0.06)), vec![(0, 2), (1, 0)]);
        // On the block in the zone, a block's height above its top: the block.
        assert_eq!(label(pose(0.56, 0.005, 0.085)), vec![(0, 2), (1, 1)]);
        // Beside the zone, over bare table: nothing.
        assert_eq!(label(pose(0.5, 0.3, 0.04)), vec![(0, 2)]);
    }
}
