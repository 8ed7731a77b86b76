//! Task G: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// G: big blocks stacked on the first zone, small blocks on the second.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let n_big = b.range(1, 4);
    let n_small = b.range(1, 4);
    let big_cols = b.colors(&b.palette.clone(), n_big);
    let small_cols = b.colors(&b.palette.clone(), n_small);
    let z0 = b.zone(big_cols[0], 0.1)?;
    let z1 = b.zone(small_cols[0], 0.1)?;
    let big: Vec<usize> = big_cols
        .iter()
        .map(|&c| b.block(Kind::BigBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let small: Vec<usize> = small_cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let mut targets = stack_levels(&b.pose(z0), BIG, n_big);
    targets.extend(stack_levels(&b.pose(z1), SMALL, n_small));
    let n = n_big + n_small;
    let matches = (0..n)
        .map(|i| (0..n).map(|j| (i < n_big) == (j < n_big)).collect())
        .collect();
    let mut place_names = Vec::new();
    for (count, zc) in [(n_big, big_cols[0]), (n_small, small_cols[0])] {
        let first = place_names.len();
        place_names.extend(tower_names(format!("{} zone", zc.name), count, first));
    }
    let step = towers_step(
        big.iter().chain(&small).copied().collect(),
        targets,
        big_cols
            .iter()
            .map(|&c| sized_name(Kind::BigBlock, c))
            .chain(small_cols.iter().map(|&c| sized_name(Kind::SmallBlock, c)))
            .collect(),
        place_names,
        matches,
        0.0,
    );
    Some(Spec {
        slots: vec![
            ("big_zone_color", big_cols[0].name.to_string()),
            ("small_zone_color", small_cols[0].name.to_string()),
        ],
        instruction: format!(
            "stack blocks of the same size on the {} zone and {} zone respectively.",
            big_cols[0].name, small_cols[0].name
        ),
        completed: subtask::done("stacking blocks"),
        max_steps: n + 2,
        steps: vec![step],
    })
}
