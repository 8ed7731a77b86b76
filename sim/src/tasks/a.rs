//! Task A: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// A: one pick-and-place, in one of three forms (base, with size, with absolute position),
/// colours from all 11.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let variant = b.range(0, 2);
    let completed = subtask::done("placing blocks");
    let ((pick, place), step) = match variant {
        0 => base(b)?,
        1 => with_size(b)?,
        _ => with_position(b)?,
    };
    Some(Spec {
        instruction: subtask::pick_place(&pick, &place),
        slots: vec![("pick", pick), ("place", place)],
        completed,
        max_steps: 3,
        steps: vec![step],
    })
}

/// What the one step picks and where it places it, as the instruction names them.
type PickPlace = (String, String);

/// "pick up the red block and place it on the blue block / bowl / zone."
fn base(b: &mut Builder) -> Option<(PickPlace, GoalStep)> {
    let n_bowls = b.range(2, 3);
    let bowl_colors = b.colors(&b.all.clone(), n_bowls);
    let bowls: Vec<usize> = bowl_colors
        .iter()
        .map(|&c| b.bowl(c, true))
        .collect::<Option<_>>()?;
    let (block_colors, blocks) = small_blocks(b)?;
    let n_zones = b.range(1, 2);
    let zone_colors = b.colors(&b.all.clone(), n_zones);
    let zones = b.zones(&zone_colors, 0.1)?;
    let pick = block_name(block_colors[0]);
    let (place, target, metric, sym, rotations, replace) = match b.range(0, 2) {
        0 => (
            block_name(block_colors[1]),
            target_on(&b.pose(blocks[1]), SMALL * 1.5),
            pose_metric(0.05, true),
            FRAC_PI_2,
            true,
            false,
        ),
        1 => (
            format!("{} bowl", bowl_colors[0].name),
            target_on(&b.pose(bowls[0]), BOWL_FLOOR + SMALL / 2.0),
            pose_metric(0.05, false),
            0.0,
            true,
            false,
        ),
        _ => {
            let z = b.pose(zones[0]);
            (
                format!("{} zone", zone_colors[0].name),
                target_on(&z, SMALL / 2.0),
                Metric::Zone {
                    zones: vec![ZoneRect {
                        x: z.pos[0],
                        y: z.pos[1],
                        yaw: z.yaw(),
                        sx: 0.1,
                        sy: 0.1,
                    }],
                },
                0.0,
                false,
                true,
            )
        }
    };
    let words = (pick.clone(), place.clone());
    let mut step = identity_step(
        vec![blocks[0]],
        vec![target],
        vec![pick],
        vec![PlaceName::Text(place)],
        sym,
        metric,
    );
    step.rotations = rotations;
    step.replace = replace;
    Some((words, step))
}

/// "pick up the smaller red block and place it on the bigger blue block."
fn with_size(b: &mut Builder) -> Option<(PickPlace, GoalStep)> {
    let n_bowls = b.range(2, 3);
    for c in b.colors(&b.all.clone(), n_bowls) {
        b.bowl(c, true)?;
    }
    let n_small = b.range(2, 3);
    let n_big = b.range(2, n_small);
    let small_colors = b.colors(&b.all.clone(), n_small);
    // Big blocks reuse the first small colours; (size, colour) stays unique.
    let mut kinds: Vec<(Kind, Color)> = small_colors
        .iter()
        .map(|&c| (Kind::SmallBlock, c))
        .chain(small_colors[..n_big].iter().map(|&c| (Kind::BigBlock, c)))
        .collect();
    kinds.shuffle(b.rng);
    let blocks: Vec<usize> = kinds
        .iter()
        .map(|&(k, c)| b.block(k, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let pi = b.range(0, blocks.len() - 1);
    let mut qi = b.range(0, blocks.len() - 2);
    if qi >= pi {
        qi += 1;
    }
    let (pk, pc) = kinds[pi];
    let (qk, qc) = kinds[qi];
    let pick = sized_name(pk, pc);
    let place = sized_name(qk, qc);
    let target = target_on(&b.pose(blocks[qi]), qk.size() + pk.size() / 2.0);
    Some((
        (pick.clone(), place.clone()),
        identity_step(
            vec![blocks[pi]],
            vec![target],
            vec![pick],
            vec![PlaceName::Text(place)],
            FRAC_PI_2,
            pose_metric(0.05, true),
        ),
    ))
}

/// "pick up the red block on the top left area and place it on the center."
fn with_position(b: &mut Builder) -> Option<(PickPlace, GoalStep)> {
    // Keep the five area centres clear, so the place is never on top of something.
    for a in QUADRANTS {
        let (x, y) = a.center();
        b.layout.reserve(x, y, 0.03);
    }
    b.layout.reserve(0.5, 0.0, 0.05);
    let n_bowls = b.range(2, 3);
    for c in b.colors(&b.all.clone(), n_bowls) {
        b.bowl(c, true)?;
    }
    let (block_colors, blocks) = small_blocks(b)?;
    let p0 = b.pose(blocks[0]);
    let pick_area = QUADRANTS
        .iter()
        .find(|a| a.contains(p0.pos[0], p0.pos[1]))?;
    let mut places: Vec<Option<Area>> = QUADRANTS
        .iter()
        .filter(|a| a.name != pick_area.name)
        .map(|a| Some(*a))
        .collect();
    places.push(None); // the centre
    let place_area = places[b.range(0, places.len() - 1)];
    let (place, rect) = match place_area {
        Some(a) => {
            let (x, y) = a.center();
            (
                a.name.to_string(),
                ZoneRect {
                    x,
                    y,
                    yaw: 0.0,
                    sx: 0.25,
                    sy: 0.5,
                },
            )
        }
        None => (
            "center".to_string(),
            ZoneRect {
                x: 0.5,
                y: 0.0,
                yaw: 0.0,
                sx: 0.08,
                sy: 0.08,
            },
        ),
    };
    let pick = format!("{} on the {}", block_name(block_colors[0]), pick_area.name);
    let mut step = identity_step(
        vec![blocks[0]],
        vec![Target {
            pos: [rect.x, rect.y, SMALL / 2.0],
            yaw: 0.0,
        }],
        vec![pick.clone()],
        vec![PlaceName::Text(place.clone())],
        0.0,
        Metric::Zone { zones: vec![rect] },
    );
    step.rotations = false;
    step.replace = true;
    Some(((pick, place), step))
}

/// Two or three small blocks in colours drawn from all 11, anywhere: their colours and
/// their objects.
fn small_blocks(b: &mut Builder) -> Option<(Vec<Color>, Vec<usize>)> {
    let n = b.range(2, 3);
    let colors = b.colors(&b.all.clone(), n);
    let blocks = colors
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    Some((colors, blocks))
}
