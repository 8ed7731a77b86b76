//! Task D: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// D: one tower, on the first block in the named area, of every block that starts there;
/// bigger blocks below smaller ones, at most 0.26 m tall (the camera sees up to 0.28 m).
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let n = b.range(5, 7);
    let cols = b.colors(&b.palette.clone(), n);
    let area = QUADRANTS[b.range(0, 3)];
    let k = b.range(3, 6);
    let mut all: Vec<(Kind, Color)> = cols
        .iter()
        .flat_map(|&c| [(Kind::SmallBlock, c), (Kind::BigBlock, c)])
        .collect();
    // The tower must stay within the camera's height range: at most 0.26 m tall.
    loop {
        all.shuffle(b.rng);
        if all[..k].iter().map(|(kind, _)| kind.size()).sum::<f64>() <= 0.26 + 1e-9 {
            break;
        }
    }
    let (inside, outside) = all.split_at(k);
    // Bigger blocks first: the tower's order is its spawn order.
    let mut inside = inside.to_vec();
    inside.sort_by_key(|&(kind, _)| kind != Kind::BigBlock);
    let tower: Vec<usize> = inside
        .iter()
        .map(|&(kind, c)| b.block(kind, c, Region::Inside(area)))
        .collect::<Option<_>>()?;
    for &(kind, c) in outside {
        b.block(kind, c, Region::Outside(area))?;
    }
    let base = b.pose(tower[0]);
    let mut z = 0.0;
    let mut targets = Vec::new();
    let mut place_names = Vec::new();
    for (l, &(kind, _)) in inside.iter().enumerate() {
        targets.push(target_on(&base, z + kind.size() / 2.0));
        z += kind.size();
        place_names.push(if l == 0 {
            PlaceName::Text(area.name.into())
        } else {
            PlaceName::OnTopOf(l - 1)
        });
    }
    let mut step = identity_step(
        tower,
        targets,
        inside.iter().map(|&(k, c)| sized_name(k, c)).collect(),
        place_names,
        0.0,
        pose_metric(0.01, true),
    );
    step.order = Order::Input;
    Some(Spec {
        slots: vec![("area", area.name.to_string())],
        instruction: format!("stack all the blocks in the {}.", area.name),
        completed: subtask::done("stacking all the blocks"),
        max_steps: k + 2,
        steps: vec![step],
    })
}
