//! Task C, and the family V that asks for another colour: scene, goal, texts.

use super::builder::*;
use loho_core::subtask;

/// C (`other` false): every smaller block on the bigger block of its colour; family V
/// (`other`): on a bigger block of another colour, one on each.
pub(super) fn build(b: &mut Builder, other: bool) -> Option<Spec> {
    let n = if other { b.range(3, 5) } else { b.range(5, 7) };
    let cols = b.colors(&b.palette.clone(), n);
    let (big, small) = pairs_and_distractors(b, &cols, &mut |_| Some(()))?;
    let bases: Vec<ObjPose> = big.iter().map(|&i| b.pose(i)).collect();
    let step = onto_bigger_step(small, &bases, &cols, other);
    let spec = |instruction: String, slots, completed: &str, step| Spec {
        instruction,
        slots,
        completed: subtask::done(completed),
        max_steps: n + 2,
        steps: vec![step],
    };
    if !other {
        let instruction = "stack all the smaller blocks over the bigger blocks of the same color.";
        return Some(spec(
            instruction.into(),
            vec![],
            "stacking all the blocks",
            step,
        ));
    }
    let relation = [
        "of a different color",
        "of another color",
        "with mismatched colors",
    ][b.range(0, 2)];
    Some(spec(
        format!("stack all the smaller blocks over the bigger blocks {relation}."),
        vec![("relation", relation.into())],
        "stacking the blocks on other colors",
        step,
    ))
}

/// Small block `small[i]` onto the big block of colour `cols[i]` standing where `bases[i]`
/// is (where it lies now, C's goal; or the zone it goes to first, I's); with `other`,
/// onto a big block of another colour, one on each (V's).
pub(super) fn onto_bigger_step(
    small: Vec<usize>,
    bases: &[ObjPose],
    cols: &[Color],
    other: bool,
) -> GoalStep {
    let n = cols.len();
    let targets = bases
        .iter()
        .map(|p| target_on(p, BIG + SMALL / 2.0))
        .collect();
    let mut step = identity_step(
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
    if other {
        step.matches = (0..n).map(|i| (0..n).map(|j| i != j).collect()).collect();
        step.assign = Assign::Matching;
    }
    step
}
