//! Task I: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// I: each big block into its zone, then each small block onto its big block.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let n = b.range(3, 5);
    let cols = b.colors(&b.palette.clone(), n);
    let mut zones = Vec::new();
    let (big, small) = pairs_and_distractors(b, &cols, &mut |b| {
        for &c in &cols {
            zones.push(b.zone(c, 0.15)?);
        }
        Some(())
    })?;
    let zone_poses: Vec<ObjPose> = zones.iter().map(|&z| b.pose(z)).collect();
    let mut first = identity_step(
        big,
        zone_poses.iter().map(|z| target_on(z, BIG / 2.0)).collect(),
        cols.iter()
            .map(|&c| sized_name(Kind::BigBlock, c))
            .collect(),
        cols.iter()
            .map(|c| PlaceName::Text(format!("{} zone", c.name)))
            .collect(),
        0.0,
        pose_metric(0.01, true),
    );
    first.max_reward = 0.5;
    let mut second = identity_step(
        small,
        zone_poses
            .iter()
            .map(|z| target_on(z, BIG + SMALL / 2.0))
            .collect(),
        cols.iter()
            .map(|&c| sized_name(Kind::SmallBlock, c))
            .collect(),
        cols.iter()
            .map(|&c| PlaceName::Text(sized_name(Kind::BigBlock, c)))
            .collect(),
        0.0,
        pose_metric(0.01, true),
    );
    second.max_reward = 0.5;
    Some(Spec {
        slots: vec![],
        instruction: "stack all the smaller blocks over the bigger blocks of the same color in the zone with the same color.".into(),
        completed: subtask::done("stacking all the blocks"),
        max_steps: 2 * n + 3,
        steps: vec![first, second],
    })
}
