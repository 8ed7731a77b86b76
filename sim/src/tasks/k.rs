//! Task K: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// K: blocks of each colour stacked on the zone of that colour.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let k = b.range(1, 3);
    let n = match k {
        1 => b.range(2, 3),
        2 => b.range(4, 6),
        _ => b.range(6, 9),
    };
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let cols = pal[..k].to_vec();
    let zones = b.zones(&cols, 0.1)?;
    let mut spare = pal[k..].to_vec();
    if b.rng.gen_bool(0.5) {
        let c = spare.remove(0);
        b.zone(c, 0.1)?;
    }
    let blocks: Vec<usize> = (0..n)
        .map(|i| b.block(Kind::SmallBlock, cols[i % k], Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in spare.iter().take(b.range(0, 2)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    // Level l of colour c is target index offset[c] + l.
    let counts: Vec<usize> = (0..k)
        .map(|c| (0..n).filter(|i| i % k == c).count())
        .collect();
    let mut targets = Vec::new();
    let mut place_names = Vec::new();
    let mut color_of_target = Vec::new();
    for c in 0..k {
        let first = targets.len();
        targets.extend(stack_levels(&b.pose(zones[c]), SMALL, counts[c]));
        place_names.extend(tower_names(
            format!("{} zone", cols[c].name),
            counts[c],
            first,
        ));
        color_of_target.extend(std::iter::repeat_n(c, counts[c]));
    }
    let step = towers_step(
        blocks,
        targets,
        (0..n).map(|i| block_name(cols[i % k])).collect(),
        place_names,
        (0..n)
            .map(|i| color_of_target.iter().map(|&c| c == i % k).collect())
            .collect(),
        FRAC_PI_2,
    );
    Some(Spec {
        slots: vec![],
        instruction: "stack all the blocks of the same color together on the same colored zone."
            .into(),
        completed: subtask::done("stacking block"),
        max_steps: n + 2,
        steps: vec![step],
    })
}
