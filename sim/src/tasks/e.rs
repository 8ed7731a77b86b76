//! Task E: its scene, goal and texts.

use super::builder::*;
use loho_core::subtask;

/// E: colours with an even number of blocks go to their zone.
pub(super) fn build(b: &mut Builder) -> Option<Spec> {
    let k = b.range(2, 3);
    let n = loop {
        let n = b.range(k + 1, (4 * k).min(10) - 1);
        if !(n.is_multiple_of(k) && (n / k) % 2 == 1) {
            break n;
        }
    };
    let cols = b.colors(&b.palette.clone(), k);
    let blocks: Vec<usize> = (0..n)
        .map(|i| b.block(Kind::SmallBlock, cols[i % k], Region::Anywhere))
        .collect::<Option<_>>()?;
    let zones: Vec<usize> = cols
        .iter()
        .map(|&c| b.zone(c, 0.15))
        .collect::<Option<_>>()?;
    let even: Vec<usize> = (0..k)
        .filter(|&c| {
            let count = (0..n).filter(|i| i % k == c).count();
            count % 2 == 0
        })
        .collect();
    let mut steps = Vec::new();
    for &c in &even {
        let group: Vec<usize> = (0..n).filter(|i| i % k == c).map(|i| blocks[i]).collect();
        let z = b.pose(zones[c]);
        // Distinct slots in the zone, so blocks sit side by side instead of piling up.
        let slots: Vec<Target> = [(-0.03, -0.03), (0.03, 0.03), (0.03, -0.03), (-0.03, 0.03)]
            .iter()
            .take(group.len())
            .map(|&(dx, dy)| {
                let p = z.transform([dx, dy, 0.0]);
                Target {
                    pos: [p[0], p[1], SMALL / 2.0],
                    yaw: z.yaw(),
                }
            })
            .collect();
        let m = group.len();
        let zone_name = format!("{} zone", cols[c].name);
        steps.push(GoalStep {
            symmetry: vec![0.0; m],
            matches: vec![vec![true; m]; m],
            objects: group,
            targets: slots,
            pick_names: vec![block_name(cols[c]); m],
            place_names: vec![PlaceName::Text(zone_name); m],
            replace: false,
            rotations: false,
            assign: Assign::Nearest,
            order: Order::FarthestFirst,
            metric: Metric::Zone {
                zones: vec![ZoneRect {
                    x: z.pos[0],
                    y: z.pos[1],
                    yaw: z.yaw(),
                    sx: 0.15,
                    sy: 0.15,
                }],
            },
            max_reward: 1.0 / even.len() as f64,
        });
    }
    Some(Spec {
        slots: vec![],
        instruction: "put the blocks of an even number in the zone with the matching color.".into(),
        completed: subtask::done("placing blocks in the zone"),
        max_steps: n + 2,
        steps,
    })
}
