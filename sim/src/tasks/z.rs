//! Family Z: a selection of blocks put into a destination, in combinations no other task
//! trains — a size or "not a colour" into an area, a colour into the zone of its colour,
//! the blocks on an area each into the zone of its colour. Each atom is trained elsewhere
//! (L, M, P, Q, S); the combinations measure whether a model reads them apart.

use super::builder::*;
use super::families::{area_step, own_zone_steps};
use loho_core::subtask;

pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let (blocks, destination, steps) = match b.range(0, 3) {
        0 => size_in_area(b)?,
        1 => not_color_in_area(b)?,
        2 => color_in_matching_zone(b)?,
        _ => area_in_matching_zones(b)?,
    };
    let n: usize = steps.iter().map(|s| s.objects.len()).sum();
    let place = if destination.contains("area") {
        "area"
    } else {
        "zones"
    };
    Some(Spec {
        instruction: format!("put the {blocks} in the {destination}."),
        slots: vec![("blocks", blocks), ("destination", destination)],
        completed: subtask::done(&format!("putting the blocks in the {place}")),
        max_steps: n + 2,
        steps,
    })
}

type Parts = (String, String, Vec<GoalStep>);

/// The bigger (or smaller) blocks into an area; the other size, in the same colours,
/// stays.
fn size_in_area(b: &mut Builder) -> Option<Parts> {
    let area = QUADRANTS[b.range(0, 3)];
    let (kind, other) = b.either_size();
    let n = b.range(2, 3);
    let cols = b.colors(&b.palette.clone(), n);
    let moved: Vec<usize> = cols
        .iter()
        .map(|&c| b.block(kind, c, Region::Outside(area)))
        .collect::<Option<_>>()?;
    for &c in cols.iter().take(b.range(1, n)) {
        b.block(other, c, Region::Outside(area))?;
    }
    let names = cols.iter().map(|&c| sized_name(kind, c)).collect();
    let step = area_step(b, moved, names, area)?;
    let blocks = format!("{} blocks", size_word(kind));
    Some((blocks, area.name.into(), vec![step]))
}

/// Every block not of one colour into an area; that colour's blocks stay.
fn not_color_in_area(b: &mut Builder) -> Option<Parts> {
    let area = QUADRANTS[b.range(0, 3)];
    let n = b.range(2, 3);
    let cols = b.colors(&b.palette.clone(), n + 1);
    let kept = cols[n];
    for _ in 0..b.range(1, 2) {
        b.block(Kind::SmallBlock, kept, Region::Outside(area))?;
    }
    let moved: Vec<usize> = cols[..n]
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Outside(area)))
        .collect::<Option<_>>()?;
    let names = cols[..n].iter().map(|&c| block_name(c)).collect();
    let step = area_step(b, moved, names, area)?;
    let blocks = format!("blocks that are not {}", kept.name);
    Some((blocks, area.name.into(), vec![step]))
}

/// The blocks of one colour into the zone of that colour; a zone of another colour and
/// its blocks are in view.
fn color_in_matching_zone(b: &mut Builder) -> Option<Parts> {
    let cols = b.colors(&b.palette.clone(), 3);
    let (color, other) = (cols[0], cols[1]);
    let zone = b.zone(color, 0.15)?;
    b.zone(other, 0.15)?;
    let n = b.range(2, 3);
    let moved: Vec<usize> = (0..n)
        .map(|_| b.block(Kind::SmallBlock, color, Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in [other, cols[2]].iter().take(b.range(1, 2)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    let name = format!("{} zone", color.name);
    let step = zone_step(moved, vec![block_name(color); n], &b.pose(zone), 0.15, name);
    let blocks = format!("{} blocks", color.name);
    Some((blocks, "zone with the matching color".into(), vec![step]))
}

/// The blocks on an area, each into the zone of its colour; blocks of those colours
/// elsewhere stay.
fn area_in_matching_zones(b: &mut Builder) -> Option<Parts> {
    let area = QUADRANTS[b.range(0, 3)];
    let n = b.range(2, 3);
    let cols = b.colors(&b.palette.clone(), n);
    let zones = b.zones(&cols, 0.15)?;
    let moved: Vec<usize> = cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Inside(area)))
        .collect::<Option<_>>()?;
    for &c in cols.iter().take(b.range(1, n)) {
        b.block(Kind::SmallBlock, c, Region::Outside(area))?;
    }
    let names = cols
        .iter()
        .map(|&c| format!("{} on the {}", block_name(c), area.name))
        .collect();
    let steps = own_zone_steps(b, moved, names, &cols, &zones);
    let blocks = format!("blocks on the {}", area.name);
    Some((blocks, "zones with the matching colors".into(), steps))
}
