//! Task J: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// J: every block in one quadrant moves to another.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let mut areas = QUADRANTS.to_vec();
    areas.shuffle(b.rng);
    let (src, tgt) = (areas[0], areas[1]);
    let n_move = b.range(3, 5);
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let (moved_cols, rest) = pal.split_at(n_move);
    let moved: Vec<usize> = moved_cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Inside(src)))
        .collect::<Option<_>>()?;
    let n_distract = b.range(0, 4);
    for i in 0..n_distract {
        let c = if i < rest.len() {
            rest[i]
        } else {
            rest[b.range(0, rest.len() - 1)]
        };
        b.block(Kind::SmallBlock, c, Region::Outside(src))?;
    }
    // Targets: free spots inside the target quadrant, clear of each other.
    let targets = b.spots(tgt, n_move, Kind::SmallBlock)?;
    let (cx, cy) = tgt.center();
    let mut step = identity_step(
        moved,
        targets,
        moved_cols
            .iter()
            .map(|&c| format!("{} on the {}", block_name(c), src.name))
            .collect(),
        vec![PlaceName::Text(tgt.name.into()); n_move],
        FRAC_PI_2,
        Metric::Zone {
            zones: vec![ZoneRect {
                x: cx,
                y: cy,
                yaw: 0.0,
                sx: 0.3,
                sy: 0.6,
            }],
        },
    );
    step.replace = false;
    Some(Spec {
        slots: vec![
            ("from_area", src.name.to_string()),
            ("to_area", tgt.name.to_string()),
        ],
        instruction: format!(
            "move all the blocks on the {} to the {}.",
            src.name, tgt.name
        ),
        completed: subtask::done("moving all the blocks"),
        max_steps: n_move + 7,
        steps: vec![step],
    })
}
