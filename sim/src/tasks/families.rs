//! Task families L–N, P–U, W, Y and AE: loho's own tasks, built from the atoms A–E use (a
//! colour or a size as a filter, its negation, a named zone or bowl, an area as source
//! or destination, a tower, two clauses joined by "and", a relation turned round), so a
//! model trained on A–E and these has seen the atoms of F–K in other combinations
//! without any of F–K's rules (docs/simulator.md, "Task families"). Family O (odd groups)
//! is E's scene with the other parity ([`super::e`]), family V C's pairs with another
//! colour ([`super::c`]), family X one of I's pairs in a zone of another colour
//! ([`super::i`]), family Z new combinations of these atoms ([`super::z`]).

use super::builder::*;
use loho_core::subtask;

/// The blocks of one colour (or, one time in three, every block not of that colour) go
/// to a zone named by its colour, which need not be theirs.
pub(super) fn put_color_in_zone(b: &mut Builder) -> Option<Spec> {
    let k = b.range(2, 3);
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let cols = pal[..k].to_vec();
    let not = b.rng.gen_bool(1.0 / 3.0);
    let counts: Vec<usize> = (0..k).map(|_| b.range(1, 2)).collect();
    let chosen = |c: usize| (c == 0) != not;
    let moved_n: usize = (0..k).filter(|&c| chosen(c)).map(|c| counts[c]).sum();
    if moved_n > 4 {
        return None;
    }
    let zone_cols = b.colors(&pal, 2);
    let zones = b.zones(&zone_cols, 0.15)?;
    let mut moved = Vec::new();
    let mut names = Vec::new();
    for (c, &color) in cols.iter().enumerate() {
        for _ in 0..counts[c] {
            let i = b.block(Kind::SmallBlock, color, Region::Anywhere)?;
            if chosen(c) {
                moved.push(i);
                names.push(block_name(color));
            }
        }
    }
    let z = b.pose(zones[0]);
    let zone_name = format!("{} zone", zone_cols[0].name);
    let step = zone_step(moved, names, &z, 0.15, zone_name);
    let blocks = match not {
        false => format!("{} blocks", cols[0].name),
        true => format!("blocks that are not {}", cols[0].name),
    };
    let n = step.objects.len();
    Some(Spec {
        instruction: format!("put the {blocks} in the {} zone.", zone_cols[0].name),
        slots: vec![
            ("blocks", blocks),
            ("zone_color", zone_cols[0].name.to_string()),
        ],
        completed: subtask::done("putting the blocks in the zone"),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// The blocks of one colour, wherever they are, go into one of the four areas.
pub(super) fn put_color_in_area(b: &mut Builder) -> Option<Spec> {
    let area = QUADRANTS[b.range(0, 3)];
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let n = b.range(2, 3);
    let color = pal[0];
    let moved: Vec<usize> = (0..n)
        .map(|_| b.block(Kind::SmallBlock, color, Region::Outside(area)))
        .collect::<Option<_>>()?;
    for &c in pal[1..].iter().take(b.range(1, 3)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    let step = area_step(b, moved, vec![block_name(color); n], area)?;
    Some(Spec {
        instruction: format!("put the {} blocks in the {}.", color.name, area.name),
        slots: vec![("color", color.name.into()), ("area", area.name.into())],
        completed: subtask::done("putting the blocks in the area"),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// `moved` (named `names`) to free spots of `area`, any block to any spot, scored by how
/// much of them lies inside it.
pub(super) fn area_step(
    b: &mut Builder,
    moved: Vec<usize>,
    names: Vec<String>,
    area: Area,
) -> Option<GoalStep> {
    let n = moved.len();
    let kind = b.world.objects[moved[0]].kind;
    let targets = b.spots(area, n, kind)?;
    let (cx, cy) = area.center();
    let mut step = identity_step(
        moved,
        targets,
        names,
        vec![PlaceName::Text(area.name.into()); n],
        FRAC_PI_2,
        Metric::Zone {
            zones: vec![ZoneRect {
                x: cx,
                y: cy,
                yaw: 0.0,
                sx: area.x.1 - area.x.0,
                sy: area.y.1 - area.y.0,
            }],
        },
    );
    step.matches = vec![vec![true; n]; n];
    step.rotations = false;
    Some(step)
}

/// The blocks of one colour stacked into one tower on a zone of another colour.
pub(super) fn stack_color_on_zone(b: &mut Builder) -> Option<Spec> {
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let color = pal[0];
    let n = b.range(2, 3);
    // Never the blocks' own colour: that tower is K's rule for one colour.
    let zone_color = pal[b.range(1, 3)];
    let zone = b.zone(zone_color, 0.1)?;
    if b.rng.gen_bool(0.5) {
        b.zone(pal[4], 0.1)?;
    }
    let blocks: Vec<usize> = (0..n)
        .map(|_| b.block(Kind::SmallBlock, color, Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in pal[1..4].iter().take(b.range(1, 3)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    let step = towers_step(
        blocks,
        stack_levels(&b.pose(zone), SMALL, n),
        vec![block_name(color); n],
        tower_names(format!("{} zone", zone_color.name), n, 0),
        vec![vec![true; n]; n],
        FRAC_PI_2,
    );
    Some(Spec {
        instruction: format!(
            "stack the {} blocks on the {} zone.",
            color.name, zone_color.name
        ),
        slots: vec![
            ("color", color.name.into()),
            ("zone_color", zone_color.name.into()),
        ],
        completed: subtask::done("stacking the blocks on the zone"),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// The blocks of one size (bigger or smaller), whatever their colour, go to a zone named
/// by a colour none of them has (P), or are stacked into one tower on it (T).
pub(super) fn size_on_zone(b: &mut Builder, stack: bool) -> Option<Spec> {
    let (kind, other) = b.either_size();
    let (n, n_other) = (
        b.range(1 + usize::from(stack), 2 + usize::from(stack)),
        b.range(1, 2),
    );
    let cols = b.colors(&b.palette.clone(), n + n_other + 1);
    let zone_color = cols[n + n_other];
    let zone = b.zone(zone_color, if stack { 0.1 } else { 0.15 })?;
    let moved: Vec<usize> = cols[..n]
        .iter()
        .map(|&c| b.block(kind, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in &cols[n..n + n_other] {
        b.block(other, c, Region::Anywhere)?;
    }
    let names = cols[..n].iter().map(|&c| sized_name(kind, c)).collect();
    let zone_name = format!("{} zone", zone_color.name);
    let z = b.pose(zone);
    let (step, instruction, done) = match stack {
        false => (
            zone_step(moved, names, &z, 0.15, zone_name),
            "put the {} blocks in the {} zone.",
            "putting the blocks in the zone",
        ),
        true => {
            let edge = if kind == Kind::BigBlock { BIG } else { SMALL };
            let levels = stack_levels(&z, edge, n);
            let places = tower_names(zone_name, n, 0);
            let step = towers_step(
                moved,
                levels,
                names,
                places,
                vec![vec![true; n]; n],
                FRAC_PI_2,
            );
            (
                step,
                "stack the {} blocks on the {} zone.",
                "stacking the blocks on the zone",
            )
        }
    };
    Some(Spec {
        instruction: instruction.replacen("{}", size_word(kind), 1).replacen(
            "{}",
            zone_color.name,
            1,
        ),
        slots: vec![
            ("size", size_word(kind).into()),
            ("zone_color", zone_color.name.into()),
        ],
        completed: subtask::done(done),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// The blocks on one area go to a zone named by its colour.
pub(super) fn put_area_in_zone(b: &mut Builder) -> Option<Spec> {
    let area = QUADRANTS[b.range(0, 3)];
    let n = b.range(2, 3);
    let cols = b.colors(&b.palette.clone(), n + 3);
    let zone_color = cols[n + 2];
    let zone = b.zone(zone_color, 0.15)?;
    let moved: Vec<usize> = cols[..n]
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Inside(area)))
        .collect::<Option<_>>()?;
    for &c in cols[n..n + 2].iter().take(b.range(1, 2)) {
        b.block(Kind::SmallBlock, c, Region::Outside(area))?;
    }
    let names = cols[..n]
        .iter()
        .map(|&c| format!("{} on the {}", block_name(c), area.name))
        .collect();
    let zone_name = format!("{} zone", zone_color.name);
    let step = zone_step(moved, names, &b.pose(zone), 0.15, zone_name);
    Some(Spec {
        instruction: format!(
            "put the blocks on the {} in the {} zone.",
            area.name, zone_color.name
        ),
        slots: vec![
            ("area", area.name.into()),
            ("zone_color", zone_color.name.into()),
        ],
        completed: subtask::done("putting the blocks in the zone"),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// A block into a container that is not of its colour: one block into the bowl named by
/// its colour or as "the bowl that is not" the block's (two bowls, one of them the
/// block's own), or the blocks of a colour into the zone that is not theirs (two zones).
pub(super) fn put_color_in_other(b: &mut Builder) -> Option<Spec> {
    let cols = b.colors(&b.palette.clone(), 4);
    let (color, other) = (cols[0], cols[1]);
    let bowls = b.rng.gen_bool(0.5);
    let n = if bowls { 1 } else { b.range(2, 3) };
    let containers: Vec<usize> = [other, color]
        .iter()
        .map(|&c| match bowls {
            true => b.bowl(c, true),
            false => b.zone(c, 0.15),
        })
        .collect::<Option<_>>()?;
    let moved: Vec<usize> = (0..n)
        .map(|_| b.block(Kind::SmallBlock, color, Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in cols[2..].iter().take(b.range(1, 2)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    let kind = if bowls { "bowl" } else { "zone" };
    let target = b.pose(containers[0]);
    let step = match bowls {
        true => identity_step(
            moved,
            vec![target_on(&target, BOWL_FLOOR + SMALL / 2.0)],
            vec![block_name(color)],
            vec![PlaceName::Text(format!("{} bowl", other.name))],
            0.0,
            pose_metric(0.05, false),
        ),
        false => zone_step(
            moved,
            vec![block_name(color); n],
            &target,
            0.15,
            format!("{} zone", other.name),
        ),
    };
    let container = match b.rng.gen_bool(2.0 / 3.0) {
        true => format!("{kind} that is not {}", color.name),
        false => format!("{} {kind}", other.name),
    };
    let blocks = match bowls {
        true => format!("{} block", color.name),
        false => format!("{} blocks", color.name),
    };
    Some(Spec {
        instruction: format!("put the {blocks} in the {container}."),
        slots: vec![("blocks", blocks), ("container", container)],
        completed: subtask::done(&format!("putting the blocks in the {kind}")),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// Family AE: the blocks of one colour (2–5, towards B's counts) into the bowls of a
/// named colour, as many of them as blocks, beside a bowl of the blocks' own colour (one
/// time in three the named colour is theirs): "bowls" in the plural whose colour the words
/// choose, where B, AA and F only ever say "bowls with … colors", so the noun alone does
/// not mean "matching".
pub(super) fn put_color_in_named_bowls(b: &mut Builder) -> Option<Spec> {
    let n = b.range(2, 5);
    let cols = b.colors(&b.palette.clone(), 4);
    let color = cols[0];
    let bowl_color = match b.rng.gen_bool(1.0 / 3.0) {
        true => color,
        false => cols[1],
    };
    let named: Vec<usize> = (0..n)
        .map(|_| b.bowl(bowl_color, true))
        .collect::<Option<_>>()?;
    for &c in cols[..3].iter().filter(|&&c| c != bowl_color).take(2) {
        b.bowl(c, true)?;
    }
    let moved: Vec<usize> = (0..n)
        .map(|_| b.block(Kind::SmallBlock, color, Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in cols[1..].iter().take(b.range(1, 2)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    let targets = named
        .iter()
        .map(|&i| target_on(&b.pose(i), BOWL_FLOOR + SMALL / 2.0))
        .collect();
    let mut step = identity_step(
        moved,
        targets,
        vec![block_name(color); n],
        vec![PlaceName::Text(format!("{} bowl", bowl_color.name)); n],
        0.0,
        pose_metric(0.05, false),
    );
    step.matches = vec![vec![true; n]; n];
    step.assign = Assign::Matching;
    Some(Spec {
        instruction: format!(
            "put the {} blocks in the {} bowls.",
            color.name, bowl_color.name
        ),
        slots: vec![
            ("color", color.name.into()),
            ("bowl_color", bowl_color.name.into()),
        ],
        completed: subtask::done("putting the blocks in the bowls"),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// The blocks of one size, each into the zone of its own colour; blocks of the other
/// size in the same colours stay where they are.
pub(super) fn put_size_in_matching_zone(b: &mut Builder) -> Option<Spec> {
    let (kind, other) = b.either_size();
    let n = b.range(2, 3);
    let cols = b.colors(&b.palette.clone(), n);
    let zones = b.zones(&cols, 0.15)?;
    let moved: Vec<usize> = cols
        .iter()
        .map(|&c| b.block(kind, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in cols.iter().take(b.range(1, n)) {
        b.block(other, c, Region::Anywhere)?;
    }
    let names = cols.iter().map(|&c| sized_name(kind, c)).collect();
    let steps = own_zone_steps(b, moved, names, &cols, &zones);
    Some(Spec {
        instruction: format!(
            "put the {} blocks in the zones with the matching colors.",
            size_word(kind)
        ),
        slots: vec![("size", size_word(kind).into())],
        completed: subtask::done("putting the blocks in their zones"),
        max_steps: n + 2,
        steps,
    })
}

/// Block `moved[i]` (named `names[i]`) into zone `zones[i]` of colour `cols[i]`: one
/// step each, sharing the reward.
pub(super) fn own_zone_steps(
    b: &Builder,
    moved: Vec<usize>,
    names: Vec<String>,
    cols: &[Color],
    zones: &[usize],
) -> Vec<GoalStep> {
    let n = moved.len();
    moved
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (block, name))| {
            let zone = format!("{} zone", cols[i].name);
            let mut step = zone_step(vec![block], vec![name], &b.pose(zones[i]), 0.15, zone);
            step.max_reward = 1.0 / n as f64;
            step
        })
        .collect()
}

/// Two clauses: the blocks of one colour to one zone, and those of another colour to
/// another, both zones named by their colours (U); or the same said once with
/// "respectively", the blocks put or stacked into one tower on each zone (Y).
pub(super) fn two_colors_in_zones(b: &mut Builder, respectively: bool) -> Option<Spec> {
    let stack = respectively && b.rng.gen_bool(0.5);
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let side = if stack { 0.1 } else { 0.15 };
    let zone_cols = &pal[2..4];
    let zones = b.zones(zone_cols, side)?;
    let mut steps = Vec::new();
    let mut clauses = Vec::new();
    for ((&color, &zone_color), &zone) in pal[..2].iter().zip(zone_cols).zip(&zones) {
        let n = b.range(1 + usize::from(stack), 2 + usize::from(stack));
        let moved: Vec<usize> = (0..n)
            .map(|_| b.block(Kind::SmallBlock, color, Region::Anywhere))
            .collect::<Option<_>>()?;
        let name = format!("{} zone", zone_color.name);
        let names = vec![block_name(color); n];
        let mut step = match stack {
            false => zone_step(moved, names, &b.pose(zone), 0.15, name),
            true => towers_step(
                moved,
                stack_levels(&b.pose(zone), SMALL, n),
                names,
                tower_names(name, n, 0),
                vec![vec![true; n]; n],
                FRAC_PI_2,
            ),
        };
        step.max_reward = 0.5;
        steps.push(step);
        clauses.push((color.name, zone_color.name));
    }
    if b.rng.gen_bool(0.5) {
        b.block(Kind::SmallBlock, pal[4], Region::Anywhere)?;
    }
    let n: usize = steps.iter().map(|s| s.objects.len()).sum();
    let [(c1, z1), (c2, z2)] = [clauses[0], clauses[1]];
    let (verb, prep, done) = match stack {
        false => ("put", "in", "putting the blocks in the zones"),
        true => ("stack", "on", "stacking the blocks on the zones"),
    };
    let instruction = match respectively {
        false => {
            format!("put the {c1} blocks in the {z1} zone and the {c2} blocks in the {z2} zone.")
        }
        true => format!(
            "{verb} the {c1} blocks and the {c2} blocks {prep} the {z1} zone and the {z2} zone \
             respectively."
        ),
    };
    let slots = match respectively {
        false => vec![
            ("color", c1.into()),
            ("zone_color", z1.into()),
            ("second_color", c2.into()),
            ("second_zone_color", z2.into()),
        ],
        true => vec![
            ("verb", verb.into()),
            ("color", c1.into()),
            ("second_color", c2.into()),
            ("prep", prep.into()),
            ("zone_color", z1.into()),
            ("second_zone_color", z2.into()),
        ],
    };
    Some(Spec {
        instruction,
        slots,
        completed: subtask::done(done),
        max_steps: n + 2,
        steps,
    })
}

/// Each block into one of two zones whose colour is not its own ("mismatched"); both
/// zones' colours are among the blocks', so each of those blocks has one zone to go to.
pub(super) fn put_blocks_in_mismatching_zones(b: &mut Builder) -> Option<Spec> {
    let n = b.range(3, 4);
    let cols = b.colors(&b.palette.clone(), n);
    let zones = b.zones(&cols[..2], 0.15)?;
    let blocks: Vec<usize> = cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let step = mismatching_zones_step(b, blocks, &cols, &cols[..2], &zones);
    let relation = ["mismatched colors", "different colors"][b.range(0, 1)];
    Some(Spec {
        instruction: format!("put the blocks in the zones with {relation}."),
        slots: vec![("relation", relation.into())],
        completed: subtask::done("putting the blocks in the zones"),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// Block `blocks[i]` (of colour `cols[i]`) into any of four spots of a zone (`zones[j]`,
/// of colour `zone_cols[j]`) whose colour is not its own, one block per spot (W's goal).
pub(super) fn mismatching_zones_step(
    b: &Builder,
    blocks: Vec<usize>,
    cols: &[Color],
    zone_cols: &[Color],
    zones: &[usize],
) -> GoalStep {
    let targets = zones
        .iter()
        .flat_map(|&z| zone_slots(&b.pose(z), 4))
        .collect();
    let target_color: Vec<Color> = zone_cols.iter().flat_map(|&c| [c; 4]).collect();
    let mut step = identity_step(
        blocks,
        targets,
        cols.iter().map(|&c| block_name(c)).collect(),
        target_color
            .iter()
            .map(|c| PlaceName::Text(format!("{} zone", c.name)))
            .collect(),
        0.0,
        pose_metric(0.055, false),
    );
    step.matches = cols
        .iter()
        .map(|&c| target_color.iter().map(|&t| t != c).collect())
        .collect();
    step.assign = Assign::Matching;
    step.rotations = false;
    step
}
