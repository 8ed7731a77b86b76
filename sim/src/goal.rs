//! Goals and rewards, as Ravens scores them (facts §7), with loho's intended semantics.
//!
//! A task is an ordered list of goal steps. Only the first unfinished step is scored; it
//! completes when its reward reaches its `max_reward`, and the total reward is the sum of
//! the completed steps plus the current step's partial reward.

use crate::world::{Kind, ObjPose, World};

/// Yaw tolerance for symmetric objects (15°).
pub const ROT_EPS: f64 = 0.2618;
/// Height tolerance when heights are checked (m).
pub const HEIGHT_EPS: f64 = 0.015;
/// A step is complete when its reward is this close to its maximum.
const COMPLETE_EPS: f64 = 0.001;
/// An episode succeeds when its total reward reaches this.
pub const SUCCESS: f64 = 0.98;

/// Where an object should end up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub pos: [f64; 3],
    pub yaw: f64,
}

/// A rectangle on the table that counts what lies inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneRect {
    pub x: f64,
    pub y: f64,
    pub yaw: f64,
    /// Full side lengths (m).
    pub sx: f64,
    pub sy: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// An object counts when it is within `pos_eps` (x-y) of a target its row allows,
    /// within `height_eps` in z when given, and within [`ROT_EPS`] in yaw modulo its
    /// symmetry when that is not 0.
    Pose {
        pos_eps: f64,
        height_eps: Option<f64>,
    },
    /// The fraction of the objects' sample points inside any of the rectangles.
    Zone { zones: Vec<ZoneRect> },
}

/// How the place target of a sub-task is named in its text.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceName {
    Text(String),
    /// "the {name of whatever object now sits at target k}": stacking on the level below.
    OnTopOf(usize),
}

/// How the oracle chooses a target for each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    /// Each object's nearest allowed target in 3-D (Ravens: stacks build bottom-up).
    Nearest,
    /// A complete one-to-one assignment when one exists (F: no block left with only its
    /// own bowl).
    Matching,
}

/// The order in which the oracle moves objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    FarthestFirst,
    Input,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GoalStep {
    /// World indices of the objects this step moves.
    pub objects: Vec<usize>,
    /// Yaw period per object (0 = yaw does not matter).
    pub symmetry: Vec<f64>,
    /// `matches[i][j]`: object i may go to target j.
    pub matches: Vec<Vec<bool>>,
    pub targets: Vec<Target>,
    /// How each object is named in sub-task text.
    pub pick_names: Vec<String>,
    pub place_names: Vec<PlaceName>,
    /// Several objects may share a target (zones).
    pub replace: bool,
    /// The oracle turns objects to the target's yaw.
    pub rotations: bool,
    pub assign: Assign,
    pub order: Order,
    pub metric: Metric,
    pub max_reward: f64,
}

impl GoalStep {
    /// Any of `objects` on any of `targets`, one each, built in input order: a tower
    /// when the targets are levels. Used by tests and benches to script a stack.
    pub fn stack(objects: Vec<usize>, targets: Vec<Target>) -> Self {
        let n = objects.len();
        let m = targets.len();
        Self {
            symmetry: vec![0.0; n],
            matches: vec![vec![true; m]; n],
            pick_names: vec!["block".into(); n],
            place_names: vec![PlaceName::Text("block".into()); m],
            objects,
            targets,
            replace: false,
            rotations: true,
            assign: Assign::Nearest,
            order: Order::Input,
            metric: Metric::Pose {
                pos_eps: 0.01,
                height_eps: Some(HEIGHT_EPS),
            },
            max_reward: 1.0,
        }
    }

    /// Whether object `i` (index into `objects`) sits on target `j`.
    pub fn matches_target(&self, world: &World, i: usize, j: usize) -> bool {
        let p = world.pose(self.objects[i]);
        let t = &self.targets[j];
        let (pos_eps, height_eps) = match self.metric {
            Metric::Pose {
                pos_eps,
                height_eps,
            } => (pos_eps, height_eps),
            // Zone tasks still have targets for the oracle; it matches them tightly.
            Metric::Zone { .. } => (0.01, None),
        };
        let dxy = ((p.pos[0] - t.pos[0]).powi(2) + (p.pos[1] - t.pos[1]).powi(2)).sqrt();
        if dxy >= pos_eps {
            return false;
        }
        if let Some(h) = height_eps {
            if (p.pos[2] - t.pos[2]).abs() >= h {
                return false;
            }
        }
        let sym = self.symmetry[i];
        if sym > 0.0 {
            let d = (p.yaw() - t.yaw).rem_euclid(sym);
            if d.min(sym - d) >= ROT_EPS {
                return false;
            }
        }
        true
    }

    /// This step's reward in the current world, in [0, max_reward].
    pub fn reward(&self, world: &World) -> f64 {
        let n = self.objects.len().max(1) as f64;
        match &self.metric {
            Metric::Pose { .. } => {
                let hits = (0..self.objects.len())
                    .filter(|&i| {
                        (0..self.targets.len())
                            .any(|j| self.matches[i][j] && self.matches_target(world, i, j))
                    })
                    .count();
                self.max_reward * hits as f64 / n
            }
            Metric::Zone { zones } => {
                let (mut inside, mut total) = (0usize, 0usize);
                for &o in &self.objects {
                    let pose = world.pose(o);
                    for p in sample_points(world.objects[o].kind) {
                        let w = pose.transform(p);
                        total += 1;
                        inside += zones.iter().filter(|z| in_zone(z, w)).count();
                    }
                }
                self.max_reward * inside as f64 / total.max(1) as f64
            }
        }
    }
}

fn in_zone(z: &ZoneRect, p: [f64; 3]) -> bool {
    let frame = ObjPose::from_xyz_yaw(z.x, z.y, 0.0, z.yaw);
    let l = frame.inverse_transform(p);
    l[0].abs() <= z.sx / 2.0 && l[1].abs() <= z.sy / 2.0 && p[2] <= 0.3
}

/// Ravens' point sets for the zone metric: a 0.02 m grid from −d/2 up to (not including)
/// d/2 on each axis; deliberately asymmetric about the centre, as in the benchmark.
pub fn sample_points(kind: Kind) -> Vec<[f64; 3]> {
    let d = kind.size();
    let mut axis = Vec::new();
    let mut v = -d / 2.0;
    while v < d / 2.0 - 1e-9 {
        axis.push(v);
        v += 0.02;
    }
    let mut pts = Vec::new();
    for &x in &axis {
        for &y in &axis {
            for &z in &axis {
                pts.push([x, y, z]);
            }
        }
    }
    pts
}

/// The goal steps of an episode and how far along they are.
#[derive(Debug, Clone)]
pub struct Goals {
    pub steps: Vec<GoalStep>,
    /// Index of the first unfinished step.
    pub current: usize,
    /// Sum of the max rewards of completed steps.
    pub progress: f64,
}

impl Goals {
    pub fn new(steps: Vec<GoalStep>) -> Self {
        Self {
            steps,
            current: 0,
            progress: 0.0,
        }
    }

    /// Scores the world: completes every step that is now complete, in order, and returns
    /// the total reward.
    pub fn update(&mut self, world: &World) -> f64 {
        while let Some(step) = self.steps.get(self.current) {
            let r = step.reward(world);
            if (step.max_reward - r).abs() < COMPLETE_EPS {
                self.progress += step.max_reward;
                self.current += 1;
            } else {
                return self.progress + r;
            }
        }
        self.progress
    }

    pub fn current_step(&self) -> Option<&GoalStep> {
        self.steps.get(self.current)
    }

    pub fn is_done(&self, total: f64) -> bool {
        self.current >= self.steps.len() || total >= SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_sets_are_ravens() {
        assert_eq!(sample_points(Kind::SmallBlock).len(), 8);
        assert_eq!(sample_points(Kind::BigBlock).len(), 27);
        assert!(sample_points(Kind::SmallBlock).contains(&[-0.02, 0.0, -0.02]));
    }
}
