//! Task I, the family X that stacks one pair in a zone named by another colour, and the
//! family AD that stacks the pairs in each other's zones: scene, goal, texts.

use super::builder::*;
use super::c::onto_bigger_step;
use loho_core::subtask;

/// I: each big block into its zone, then each small block onto its big block.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let n = b.range(3, 5);
    let (cols, big, small, zones) = pairs_and_zones(b, n)?;
    let zone_poses: Vec<ObjPose> = zones.iter().map(|&z| b.pose(z)).collect();
    let zone_names = cols.iter().map(|c| format!("{} zone", c.name)).collect();
    Some(Spec {
        slots: vec![],
        instruction: "stack all the smaller blocks over the bigger blocks of the same color in the zone with the same color.".into(),
        completed: subtask::done("stacking all the blocks"),
        max_steps: 2 * n + 3,
        steps: pairs_on_zones(big, small, &cols, &zone_poses, zone_names),
    })
}

/// I's scene: `n` pairs of a bigger and a smaller block of `n` colours, a zone of each
/// pair's colour, distractors. Returns the colours, the bigger and smaller blocks, the
/// zones.
pub(super) type PairsAndZones = (Vec<Color>, Vec<usize>, Vec<usize>, Vec<usize>);
pub(super) fn pairs_and_zones(b: &mut Builder, n: usize) -> Option<PairsAndZones> {
    let cols = b.colors(&b.palette.clone(), n);
    let mut zones = Vec::new();
    let (big, small) = pairs_and_distractors(b, &cols, &mut |b| {
        zones = b.zones(&cols, 0.15)?;
        Some(())
    })?;
    Some((cols, big, small, zones))
}

/// Family X: the pair of one colour stacked, smaller over bigger, in the zone of a
/// colour no pair has; the other pairs stay where they are.
pub(super) fn pair_in_zone(b: &mut Builder) -> Option<Spec> {
    let n = b.range(2, 3);
    let pal = b.palette.clone();
    let cols = b.colors(&pal, n + 1);
    let (pairs, zone_color) = (&cols[..n], cols[n]);
    let mut zone = None;
    let (big, small) = pairs_and_distractors(b, pairs, &mut |b| {
        zone = Some(b.zone(zone_color, 0.15)?);
        Some(())
    })?;
    let z = b.pose(zone?);
    let steps = pairs_on_zones(
        vec![big[0]],
        vec![small[0]],
        &pairs[..1],
        &[z],
        vec![format!("{} zone", zone_color.name)],
    );
    let c = pairs[0].name;
    Some(Spec {
        instruction: format!(
            "stack the smaller {c} block over the bigger {c} block in the {} zone.",
            zone_color.name
        ),
        slots: vec![("color", c.into()), ("zone_color", zone_color.name.into())],
        completed: subtask::done("stacking the blocks in the zone"),
        max_steps: 4,
        steps,
    })
}

/// Family AD: I's scene with two pairs, each stacked, smaller over bigger, in the zone of
/// the other pair's colour: I's rule with the zone's relation turned round, as V turns C's
/// and W E's (I keeps "the same color"). Two pairs, so the zones are one swap and the
/// oracle's order is the only one.
pub(super) fn pairs_in_other_zones(b: &mut Builder) -> Option<Spec> {
    let (cols, big, small, zones) = pairs_and_zones(b, 2)?;
    let zone_poses = [b.pose(zones[1]), b.pose(zones[0])];
    let zone_names = vec![
        format!("{} zone", cols[1].name),
        format!("{} zone", cols[0].name),
    ];
    let destination = [
        "zones with mismatched colors",
        "zones with different colors",
        "zone with a different color",
    ][b.range(0, 2)];
    Some(Spec {
        instruction: format!(
            "stack all the smaller blocks over the bigger blocks of the same color in the \
             {destination}."
        ),
        slots: vec![("destination", destination.into())],
        completed: subtask::done("stacking the pairs in the other zones"),
        max_steps: 7,
        steps: pairs_on_zones(big, small, &cols, &zone_poses, zone_names),
    })
}

/// Two steps, half the reward each: big block `i` (of colour `cols[i]`) onto the centre
/// of `zones[i]`, then small block `i` onto it.
fn pairs_on_zones(
    big: Vec<usize>,
    small: Vec<usize>,
    cols: &[Color],
    zones: &[ObjPose],
    zone_names: Vec<String>,
) -> Vec<GoalStep> {
    let mut first = identity_step(
        big,
        zones.iter().map(|z| target_on(z, BIG / 2.0)).collect(),
        cols.iter()
            .map(|&c| sized_name(Kind::BigBlock, c))
            .collect(),
        zone_names.into_iter().map(PlaceName::Text).collect(),
        0.0,
        pose_metric(0.01, true),
    );
    first.max_reward = 0.5;
    let mut second = onto_bigger_step(small, zones, cols, false);
    second.max_reward = 0.5;
    vec![first, second]
}
