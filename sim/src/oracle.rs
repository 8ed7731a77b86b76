//! The scripted expert (facts §8) and a random baseline.
//!
//! The oracle reads the true scene instead of reconstructing it from the oracle camera:
//! same decisions, without the camera's pixel snapping. It picks at the centre of an
//! object's top face rather than at a random visible cell, so a demonstration's pick
//! point is the one a learner can best infer.

use loho_core::subtask;
use std::f64::consts::FRAC_PI_4;

use loho_core::pose::{wrap_angle, EePose};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::camera;
use crate::env::{Action, Decision, Env, Observation, Policy, PolicyError};
use crate::goal::{Assign, GoalStep, Order, PlaceName};
use crate::world::World;

/// The scripted expert.
#[derive(Debug, Default, Clone, Copy)]
pub struct Oracle;

impl Policy for Oracle {
    fn reads_scene(&self) -> bool {
        true
    }

    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let env = obs
            .scene
            .and_then(|s| s.downcast_ref::<Env>())
            .ok_or_else(|| {
                PolicyError(
                    "the oracle reads the simulator's scene, which does not cross the bus: \
                 run it in process (`loho eval --transport local`)"
                        .into(),
                )
            })?;
        Ok(
            match env.current_goal().and_then(|g| plan(env.world(), g)) {
                Some(a) => Decision::Act(a),
                None => Decision::Done(env.episode.completed.clone()),
            },
        )
    }
}

/// An angle folded into (−π/4, π/4]: the same orientation of a cube.
fn fold_quarter(a: f64) -> f64 {
    let q = std::f64::consts::FRAC_PI_2;
    let mut x = (a + FRAC_PI_4).rem_euclid(q) - FRAC_PI_4;
    if x <= -FRAC_PI_4 {
        x += q;
    }
    x
}

fn dist3(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The next pick-and-place for the current goal step, or `None` when nothing is left
/// to move (or nothing that needs moving can be seen).
pub fn plan(world: &World, step: &GoalStep) -> Option<Action> {
    plans(world, step).into_iter().next()
}

/// Every pick-and-place that makes progress now, the oracle's choice first. Farthest-first
/// is only the oracle's habit: any uncovered object with a target may go next, and a
/// learner is taught that set ([`Action::subtask`]s of all of them) rather than a
/// distance ranking it cannot see. With the input order only the first is offered.
pub fn plans(world: &World, step: &GoalStep) -> Vec<Action> {
    let n = step.objects.len();
    let mut allowed = step.matches.clone();
    if !step.replace {
        // Objects already on a target keep it; nobody else may take it.
        for i in 0..n {
            if let Some(j) =
                (0..step.targets.len()).find(|&j| allowed[i][j] && step.matches_target(world, i, j))
            {
                allowed[i].iter_mut().for_each(|a| *a = false);
                allowed.iter_mut().for_each(|row| row[j] = false);
            }
        }
    }
    // A level of a tower is free to take only once the level it stands on is filled: with
    // a policy acting (DAgger labels) another block than the oracle's may have taken the
    // base, and H's colour-bound levels then offered the one above the gap.
    let filled = |k: usize| (0..n).any(|i| step.matches[i][k] && step.matches_target(world, i, k));
    for (j, name) in step.place_names.iter().enumerate() {
        if let PlaceName::OnTopOf(k) = name {
            if !filled(*k) {
                allowed.iter_mut().for_each(|row| row[j] = false);
            }
        }
    }
    let pos = |i: usize| world.pose(step.objects[i]).pos;
    let mut chosen: Vec<Option<(usize, f64)>> = match step.assign {
        Assign::Nearest => (0..n)
            .map(|i| {
                (0..step.targets.len())
                    .filter(|&j| allowed[i][j])
                    .map(|j| (j, dist3(pos(i), step.targets[j].pos)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
            })
            .collect(),
        Assign::Matching => matching(&allowed, |i, j| dist3(pos(i), step.targets[j].pos)),
    };
    // With replace, an object already inside its target region needs no move.
    if step.replace {
        for (i, c) in chosen.iter_mut().enumerate() {
            if let Some((j, _)) = c {
                if step.matches_target(world, i, *j) {
                    *c = None;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| chosen[i].is_some()).collect();
    if step.order == Order::FarthestFirst {
        order.sort_by(|&a, &b| chosen[b].unwrap().1.total_cmp(&chosen[a].unwrap().1));
    }
    let mut out = Vec::new();
    for i in order {
        if step.order == Order::Input && !out.is_empty() {
            break;
        }
        let obj = step.objects[i];
        let o = world.pose(obj);
        let (top, z_top) = world.top_at(o.pos[0], o.pos[1]);
        if top != Some(obj) {
            continue; // covered by something else
        }
        let (j, _) = chosen[i].unwrap();
        let t = step.targets[j];
        let pick_yaw = fold_quarter(o.yaw());
        let turn = if step.rotations {
            fold_quarter(wrap_angle(t.yaw - o.yaw()))
        } else {
            0.0
        };
        // The pick point relative to the object's centre, carried to the target.
        let rel = [0.0, 0.0, z_top - o.pos[2]];
        let place = EePose::new(t.pos[0], t.pos[1], t.pos[2] + rel[2], pick_yaw + turn);
        let pick = EePose::new(o.pos[0], o.pos[1], z_top, pick_yaw);
        let subtask = subtask::pick_place(&step.pick_names[i], &place_name(world, step, j));
        out.push(Action::pick_place(subtask, pick, place));
    }
    out
}

/// The name of target `j` in sub-task text; for stack levels, the block now below it.
fn place_name(world: &World, step: &GoalStep, j: usize) -> String {
    match &step.place_names[j] {
        PlaceName::Text(t) => t.clone(),
        PlaceName::OnTopOf(k) => (0..step.objects.len())
            .find(|&i| step.matches_target(world, i, *k))
            .map(|i| step.pick_names[i].clone())
            .unwrap_or_else(|| place_name(world, step, *k)),
    }
}

/// A one-to-one assignment of objects to allowed targets covering as many objects as
/// possible, cheapest first; exhaustive, which is fine for the ≤ 7 objects of a step.
fn matching(
    allowed: &[Vec<bool>],
    cost: impl Fn(usize, usize) -> f64,
) -> Vec<Option<(usize, f64)>> {
    let n = allowed.len();
    let m = allowed.first().map_or(0, |r| r.len());
    let mut best: (usize, f64, Vec<Option<usize>>) = (0, f64::INFINITY, vec![None; n]);
    let mut cur = vec![None; n];
    let mut used = vec![false; m];
    #[allow(clippy::too_many_arguments)]
    fn go(
        i: usize,
        count: usize,
        c: f64,
        allowed: &[Vec<bool>],
        cost: &dyn Fn(usize, usize) -> f64,
        cur: &mut Vec<Option<usize>>,
        used: &mut Vec<bool>,
        best: &mut (usize, f64, Vec<Option<usize>>),
    ) {
        if i == allowed.len() {
            if count > best.0 || (count == best.0 && c < best.1) {
                *best = (count, c, cur.clone());
            }
            return;
        }
        for j in 0..used.len() {
            if allowed[i][j] && !used[j] {
                used[j] = true;
                cur[i] = Some(j);
                go(
                    i + 1,
                    count + 1,
                    c + cost(i, j),
                    allowed,
                    cost,
                    cur,
                    used,
                    best,
                );
                cur[i] = None;
                used[j] = false;
            }
        }
        go(i + 1, count, c, allowed, cost, cur, used, best);
    }
    go(0, 0, 0.0, allowed, &cost, &mut cur, &mut used, &mut best);
    best.2
        .iter()
        .enumerate()
        .map(|(i, j)| j.map(|j| (j, cost(i, j))))
        .collect()
}

/// Picks a random spot of the heightmap and places at another: the floor any learned
/// policy must beat.
pub struct RandomPolicy {
    rng: ChaCha8Rng,
}

impl RandomPolicy {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
    /// A pixel of the frame drawn at random, at the height the frame shows there.
    fn spot(&mut self, obs: &Observation) -> EePose {
        let u = self.rng.gen_range(0..obs.rows);
        let v = self.rng.gen_range(0..obs.cols);
        let (x, y) = camera::grid().pixel_to_world(u, v);
        let h = obs.height[u * obs.cols + v];
        EePose::new(x, y, h as f64, self.rng.gen_range(-FRAC_PI_4..FRAC_PI_4))
    }
}

impl Policy for RandomPolicy {
    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        if obs.rows != camera::HEIGHT
            || obs.cols != camera::WIDTH
            || obs.height.len() != obs.rows * obs.cols
        {
            return Err(PolicyError(format!(
                "the random policy draws on the simulator's {}×{} heightmap, not {}×{}",
                camera::HEIGHT,
                camera::WIDTH,
                obs.rows,
                obs.cols
            )));
        }
        Ok(Decision::Act(Action::pick_place(
            subtask::pick_place("block", "zone"),
            self.spot(obs),
            self.spot(obs),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keeps_cube_orientation() {
        for a in [-3.0, -0.8, 0.0, 0.7, 1.6, 3.1] {
            let f = fold_quarter(a);
            assert!(
                f > -FRAC_PI_4 - 1e-12 && f <= FRAC_PI_4 + 1e-12,
                "{a} → {f}"
            );
            let k = (a - f) / std::f64::consts::FRAC_PI_2;
            assert!((k - k.round()).abs() < 1e-9);
        }
    }

    #[test]
    fn matching_avoids_the_dead_end() {
        // Greedy would give object 0 target 1 (cheap) and leave object 1 nothing.
        let allowed = vec![vec![true, true], vec![false, true]];
        let m = matching(&allowed, |i, j| if (i, j) == (0, 1) { 0.0 } else { 1.0 });
        assert_eq!(m[0].map(|x| x.0), Some(0));
        assert_eq!(m[1].map(|x| x.0), Some(1));
    }
}
