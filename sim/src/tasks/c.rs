//! Task C: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// C: every smaller block on the bigger block of its colour.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let n = b.range(5, 7);
    let cols = b.colors(&b.palette.clone(), n);
    let (big, small) = pairs_and_distractors(b, &cols, &mut |_| Some(()))?;
    let targets = big
        .iter()
        .map(|&i| target_on(&b.pose(i), BIG + SMALL / 2.0))
        .collect();
    let step = identity_step(
        small,
        targets,
        cols.iter()
            .map(|&c| sized_name(Kind::SmallBlock, c))
            .collect(),
        cols.iter()
            .map(|&c| PlaceName::Text(sized_name(Kind::BigBlock, c)))
            .collect(),
        0.0,
        pose_metric(0.01, true),
    );
    Some(Spec {
        slots: vec![],
        instruction: "stack all the smaller blocks over the bigger blocks of the same color."
            .into(),
        completed: subtask::done("stacking all the blocks"),
        max_steps: n + 2,
        steps: vec![step],
    })
}
