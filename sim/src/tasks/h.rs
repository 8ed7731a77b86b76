//! Task H: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// H: five blocks of two colours, alternating, on a zone.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let ab = b.colors(&b.palette.clone(), 2);
    let pal = b.palette.clone();
    let zc = pal[b.range(0, pal.len() - 1)];
    let zone = b.zone(zc, 0.1)?;
    let cols: Vec<Color> = (0..5).map(|i| ab[i % 2]).collect();
    let blocks: Vec<usize> = cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let mut step = identity_step(
        blocks,
        stack_levels(&b.pose(zone), SMALL, 5),
        cols.iter().map(|&c| block_name(c)).collect(),
        std::iter::once(PlaceName::Text(format!("{} zone", zc.name)))
            .chain((0..4).map(PlaceName::OnTopOf))
            .collect(),
        FRAC_PI_2,
        pose_metric(0.01, true),
    );
    step.matches = (0..5)
        .map(|i| (0..5).map(|j| i % 2 == j % 2).collect())
        .collect();
    step.order = Order::Input;
    Some(Spec {
        slots: vec![
            ("zone_color", zc.name.to_string()),
            ("start_color", ab[0].name.to_string()),
        ],
        instruction: format!(
            "stack blocks with alternate colors on the {} zone, starting with the {} color.",
            zc.name, ab[0].name
        ),
        completed: subtask::done("stacking block"),
        max_steps: 7,
        steps: vec![step],
    })
}
