//! Families AA–AC: one scene, several rules. Each lays out a scene where more than one
//! goal makes sense (bowls and zones of the blocks' colours; I's pairs beside their zones;
//! K's colour groups beside theirs) and draws which rule the instruction asks for, so only
//! its words tell them apart: the noun of the destination, the relation, the verb. A
//! model that learns a scene's usual rule instead of reading reads F's "bowls with
//! mismatched colors" as B's matching bowls; these teach each word apart from the others.
//! The combinations that are F, I or K (mismatched bowls; stacked pairs in their zones;
//! groups stacked on their zones) are never drawn.

use super::b_f::bowls_step;
use super::builder::*;
use super::c::onto_bigger_step;
use super::families::{mismatching_zones_step, own_zone_steps};
use super::i::pairs_and_zones;
use loho_core::subtask;

/// The zone of each block's own colour, in E's words or I's.
const SAME_ZONES: [&str; 2] = [
    "in the zones with the matching colors",
    "in the zone with the same color",
];

/// AA: blocks with a bowl and a zone of each of their colours; into the bowls with
/// matching colours, the zones with matching colours, or the zones with mismatched ones.
pub(super) fn bowls_or_zones(b: &mut Builder) -> Option<Spec> {
    let n = b.range(2, 3);
    let cols = b.colors(&b.palette.clone(), n);
    let bowls: Vec<usize> = cols
        .iter()
        .map(|&c| b.bowl(c, true))
        .collect::<Option<_>>()?;
    let zones = b.zones(&cols, 0.15)?;
    let blocks: Vec<usize> = cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let (destination, relation, steps) = match b.range(0, 2) {
        0 => {
            let step = bowls_step(b, blocks, &cols, &bowls);
            ("bowls", "matching colors", vec![step])
        }
        1 => {
            let names = cols.iter().map(|&c| block_name(c)).collect();
            let steps = own_zone_steps(b, blocks, names, &cols, &zones);
            ("zones", "matching colors", steps)
        }
        _ => {
            let relation = ["mismatched colors", "different colors"][b.range(0, 1)];
            let step = mismatching_zones_step(b, blocks, &cols, &cols, &zones);
            ("zones", relation, vec![step])
        }
    };
    Some(Spec {
        instruction: format!("put the blocks in the {destination} with {relation}."),
        slots: vec![
            ("destination", destination.into()),
            ("relation", relation.into()),
        ],
        completed: subtask::done(&format!("putting the blocks in the {destination}")),
        max_steps: n + 2,
        steps,
    })
}

/// AB: I's scene (pairs of a bigger and a smaller block, a zone of each pair's colour);
/// the smaller blocks stacked on the bigger ones of the same colour (C) or of another
/// (V), or the blocks of one size put in the zones of their colours (S).
pub(super) fn pairs_beside_zones(b: &mut Builder) -> Option<Spec> {
    let n = b.range(2, 4);
    let (cols, big, small, zones) = pairs_and_zones(b, n)?;
    let (verb, blocks, destination, done, steps) = match b.range(0, 2) {
        0 | 1 => {
            let other = b.rng.gen_bool(0.5);
            let relation = match other {
                false => ["of the same color", "with matching colors"][b.range(0, 1)],
                true => [
                    "of a different color",
                    "of another color",
                    "with mismatched colors",
                ][b.range(0, 2)],
            };
            let bases: Vec<ObjPose> = big.iter().map(|&i| b.pose(i)).collect();
            let step = onto_bigger_step(small, &bases, &cols, other);
            let destination = format!("over the bigger blocks {relation}");
            let blocks = "all the smaller blocks".to_string();
            (
                "stack",
                blocks,
                destination,
                "stacking the blocks on the bigger blocks",
                vec![step],
            )
        }
        _ => {
            let (kind, moved) = match b.rng.gen_bool(0.5) {
                true => (Kind::BigBlock, big),
                false => (Kind::SmallBlock, small),
            };
            let names = cols.iter().map(|&c| sized_name(kind, c)).collect();
            let steps = own_zone_steps(b, moved, names, &cols, &zones);
            let blocks = format!("the {} blocks", size_word(kind));
            let destination = SAME_ZONES[b.range(0, 1)].to_string();
            (
                "put",
                blocks,
                destination,
                "putting the blocks in their zones",
                steps,
            )
        }
    };
    verb_blocks_destination(verb, blocks, destination, done, steps)
}

/// AC: K's scene (two or three colour groups of two or three blocks, a zone of each
/// group's colour, maybe one more zone); every block put in the zone of its colour, or one
/// group stacked on the zone of another colour (N's rule).
pub(super) fn groups_beside_zones(b: &mut Builder) -> Option<Spec> {
    let k = b.range(2, 3);
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let cols = pal[..k].to_vec();
    let mut zones = b.zones(&cols, 0.12)?;
    let mut zone_cols = cols.clone();
    if b.rng.gen_bool(0.5) {
        zones.push(b.zone(pal[k], 0.12)?);
        zone_cols.push(pal[k]);
    }
    let groups: Vec<Vec<usize>> = cols
        .iter()
        .map(|&c| {
            (0..b.range(2, 3))
                .map(|_| b.block(Kind::SmallBlock, c, Region::Anywhere))
                .collect::<Option<_>>()
        })
        .collect::<Option<_>>()?;
    if b.rng.gen_bool(0.5) {
        b.block(Kind::SmallBlock, pal[k + 1], Region::Anywhere)?;
    }
    let total: usize = groups.iter().map(Vec::len).sum();
    if b.rng.gen_bool(0.5) {
        let steps = groups
            .into_iter()
            .zip(&cols)
            .zip(&zones)
            .map(|((group, c), &z)| {
                let m = group.len();
                let mut step = zone_step(
                    group,
                    vec![block_name(*c); m],
                    &b.pose(z),
                    0.12,
                    format!("{} zone", c.name),
                );
                step.max_reward = m as f64 / total as f64;
                step
            })
            .collect();
        let (blocks, destination) = ("all the blocks", SAME_ZONES[b.range(0, 1)]);
        let done = "putting the blocks in their zones";
        return verb_blocks_destination("put", blocks.into(), destination.into(), done, steps);
    }
    // One group on a zone of another colour: never its own (that tower is K's rule).
    let g = b.range(0, k - 1);
    let z = (g + b.range(1, zones.len() - 1)) % zones.len();
    let group = groups[g].clone();
    let m = group.len();
    let zone_name = format!("{} zone", zone_cols[z].name);
    let step = towers_step(
        group,
        stack_levels(&b.pose(zones[z]), SMALL, m),
        vec![block_name(cols[g]); m],
        tower_names(zone_name.clone(), m, 0),
        vec![vec![true; m]; m],
        FRAC_PI_2,
    );
    let blocks = format!("the {} blocks", cols[g].name);
    let done = "stacking the blocks on the zone";
    verb_blocks_destination(
        "stack",
        blocks,
        format!("on the {zone_name}"),
        done,
        vec![step],
    )
}

/// The spec of AB's and AC's one template, "{verb} {blocks} {destination}.".
fn verb_blocks_destination(
    verb: &'static str,
    blocks: String,
    destination: String,
    done: &str,
    steps: Vec<GoalStep>,
) -> Option<Spec> {
    let n: usize = steps.iter().map(|s| s.objects.len()).sum();
    Some(Spec {
        instruction: format!("{verb} {blocks} {destination}."),
        slots: vec![
            ("verb", verb.into()),
            ("blocks", blocks),
            ("destination", destination),
        ],
        completed: subtask::done(done),
        max_steps: n + 2,
        steps,
    })
}
