//! Task E, and the family O that asks for the odd groups instead: scene, goal, texts.

use super::builder::*;
use loho_core::subtask;

/// E (`odd` false): colours with an even number of blocks go to their zone; family O
/// (`odd`): those with an odd number.
pub(super) fn build(b: &mut Builder, odd: bool) -> Option<Spec> {
    let k = b.range(2, 3);
    let n = loop {
        let n = b.range(k + 1, (4 * k).min(10) - 1);
        // At least one group of the asked parity (all groups are the same size only
        // when k divides n).
        let uniform = n.is_multiple_of(k);
        if !(uniform && (n / k) % 2 == usize::from(!odd)) {
            break n;
        }
    };
    let cols = b.colors(&b.palette.clone(), k);
    let blocks: Vec<usize> = (0..n)
        .map(|i| b.block(Kind::SmallBlock, cols[i % k], Region::Anywhere))
        .collect::<Option<_>>()?;
    let zones = b.zones(&cols, 0.15)?;
    let chosen: Vec<usize> = (0..k)
        .filter(|&c| {
            let count = (0..n).filter(|i| i % k == c).count();
            count % 2 == usize::from(odd)
        })
        .collect();
    let mut steps = Vec::new();
    for &c in &chosen {
        let group: Vec<usize> = (0..n).filter(|i| i % k == c).map(|i| blocks[i]).collect();
        let z = b.pose(zones[c]);
        let m = group.len();
        let zone_name = format!("{} zone", cols[c].name);
        let mut step = zone_step(group, vec![block_name(cols[c]); m], &z, 0.15, zone_name);
        step.max_reward = 1.0 / chosen.len() as f64;
        steps.push(step);
    }
    Some(Spec {
        slots: vec![],
        instruction: format!(
            "put the blocks of an {} number in the zone with the matching color.",
            if odd { "odd" } else { "even" }
        ),
        completed: match odd {
            false => subtask::done("placing blocks in the zone"),
            true => subtask::done("putting the odd groups in their zones"),
        },
        max_steps: n + 2,
        steps,
    })
}
