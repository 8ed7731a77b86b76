//! Task B and F: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// B (matching bowls) and F (mismatching bowls): the same scene, opposite goals.
pub(super) fn build(b: &mut Builder, mismatch: bool) -> Option<Spec> {
    let n_bowls = b.range(5, 7);
    let n_blocks = b.range(5, n_bowls);
    let cols = b.colors(&b.palette.clone(), n_bowls);
    let bowls: Vec<usize> = cols
        .iter()
        .map(|&c| b.bowl(c, true))
        .collect::<Option<_>>()?;
    let blocks: Vec<usize> = cols[..n_blocks]
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    // Distractors: small blocks (B) or free bowls, colours walked in palette order.
    let mut left = b.other_colors(&cols);
    for k in 0..6 {
        if left.is_empty() {
            break;
        }
        let c = left.remove(k % left.len());
        let placed = if !mismatch && b.rng.gen_bool(0.5) {
            b.block(Kind::SmallBlock, c, Region::Anywhere)
        } else {
            b.bowl(c, false)
        };
        if placed.is_none() {
            break;
        }
    }
    let mut step = bowls_step(b, blocks, &cols[..n_blocks], &bowls[..n_blocks]);
    let instruction = if mismatch {
        step.matches = (0..n_blocks)
            .map(|i| (0..n_blocks).map(|j| i != j).collect())
            .collect();
        step.assign = Assign::Matching;
        "put the blocks in the bowls with mismatched colors."
    } else {
        "put the blocks in the bowls with matching colors."
    };
    Some(Spec {
        slots: vec![],
        instruction: instruction.into(),
        completed: subtask::done("placing blocks in bowls"),
        max_steps: n_blocks + 2,
        steps: vec![step],
    })
}

/// Block `blocks[i]` (of colour `cols[i]`) into bowl `bowls[i]`: B's goal, checked within
/// 5 cm.
pub(super) fn bowls_step(
    b: &Builder,
    blocks: Vec<usize>,
    cols: &[Color],
    bowls: &[usize],
) -> GoalStep {
    let targets = bowls
        .iter()
        .map(|&i| target_on(&b.pose(i), BOWL_FLOOR + SMALL / 2.0))
        .collect();
    identity_step(
        blocks,
        targets,
        cols.iter().map(|&c| block_name(c)).collect(),
        cols.iter()
            .map(|c| PlaceName::Text(format!("{} bowl", c.name)))
            .collect(),
        0.0,
        pose_metric(0.05, false),
    )
}
