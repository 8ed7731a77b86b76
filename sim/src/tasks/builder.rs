//! What every task generator builds with: the [`Builder`] (a world being laid out, its
//! random stream and palette), the [`Spec`] it returns, and the naming and goal helpers
//! the generators share. Generators `use super::builder::*`, as a prelude.

pub(super) use std::f64::consts::{FRAC_PI_2, SQRT_2};

pub(super) use rand::seq::SliceRandom;
pub(super) use rand::Rng;
pub(super) use rand_chacha::ChaCha8Rng;

pub(super) use crate::colors::Color;
pub(super) use crate::goal::{
    Assign, GoalStep, Metric, Order, PlaceName, Target, ZoneRect, HEIGHT_EPS,
};
pub(super) use crate::scene::{Area, Layout, Region, QUADRANTS};
pub(super) use crate::world::{Kind, ObjPose, World, BIG, BOWL_FLOOR, SMALL};

pub(super) struct Spec {
    pub(super) instruction: String,
    /// What varies in the instruction, by the slot names of [`super::TaskId::template`].
    pub(super) slots: Vec<(&'static str, String)>,
    pub(super) completed: String,
    pub(super) max_steps: usize,
    pub(super) steps: Vec<GoalStep>,
}

pub(super) struct Builder<'a> {
    pub(super) world: World,
    pub(super) layout: Layout,
    pub(super) rng: &'a mut ChaCha8Rng,
    /// The colours tasks B–K draw from.
    pub(super) palette: Vec<Color>,
    /// The whole palette: what A draws from, and distractors.
    pub(super) all: Vec<Color>,
}

impl Builder<'_> {
    pub(super) fn block(&mut self, kind: Kind, color: Color, region: Region) -> Option<usize> {
        let (x, y, yaw) = self.layout.sample(self.rng, kind.radius(), region)?;
        let pose = ObjPose::from_xyz_yaw(x, y, kind.size() / 2.0, yaw);
        Some(self.world.add_block(kind, color, pose))
    }
    pub(super) fn bowl(&mut self, color: Color, fixed: bool) -> Option<usize> {
        let (x, y, yaw) = self
            .layout
            .sample(self.rng, Kind::Bowl.radius(), Region::Anywhere)?;
        Some(self.world.add_bowl(color, x, y, yaw, fixed))
    }
    /// A zone that keeps a square of side `size` clear (the metric's size in E and I).
    pub(super) fn zone(&mut self, color: Color, size: f64) -> Option<usize> {
        let r = size.max(Kind::Zone.size()) * SQRT_2 / 2.0;
        let (x, y, yaw) = self.layout.sample(self.rng, r, Region::Anywhere)?;
        Some(self.world.add_zone(color, x, y, yaw))
    }
    /// A zone of each colour, in order, as [`Builder::zone`].
    pub(super) fn zones(&mut self, cols: &[Color], size: f64) -> Option<Vec<usize>> {
        cols.iter().map(|&c| self.zone(c, size)).collect()
    }
    /// Bigger or smaller, even odds: (the size asked for, the other).
    pub(super) fn either_size(&mut self) -> (Kind, Kind) {
        match self.rng.gen_bool(0.5) {
            true => (Kind::BigBlock, Kind::SmallBlock),
            false => (Kind::SmallBlock, Kind::BigBlock),
        }
    }
    pub(super) fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.gen_range(lo..=hi)
    }
    /// `n` distinct colours, in random order.
    pub(super) fn colors(&mut self, from: &[Color], n: usize) -> Vec<Color> {
        let mut c = from.to_vec();
        c.shuffle(self.rng);
        c.truncate(n);
        c
    }
    /// Colours of the whole palette that the task does not use, in palette order.
    pub(super) fn other_colors(&self, used: &[Color]) -> Vec<Color> {
        self.all
            .iter()
            .copied()
            .filter(|c| !used.contains(c))
            .collect()
    }
    pub(super) fn pose(&self, i: usize) -> ObjPose {
        self.world.pose(i)
    }
}

pub(super) fn size_word(kind: Kind) -> &'static str {
    if kind == Kind::BigBlock {
        "bigger"
    } else {
        "smaller"
    }
}

pub(super) fn sized_name(kind: Kind, c: Color) -> String {
    format!("{} {} block", size_word(kind), c.name)
}

pub(super) fn block_name(c: Color) -> String {
    format!("{} block", c.name)
}

pub(super) fn pose_metric(pos_eps: f64, height: bool) -> Metric {
    Metric::Pose {
        pos_eps,
        height_eps: height.then_some(HEIGHT_EPS),
    }
}

/// A one-to-one goal: object `objects[i]` to `targets[i]`.
pub(super) fn identity_step(
    objects: Vec<usize>,
    targets: Vec<Target>,
    pick_names: Vec<String>,
    place_names: Vec<PlaceName>,
    symmetry: f64,
    metric: Metric,
) -> GoalStep {
    let n = objects.len();
    GoalStep {
        symmetry: vec![symmetry; n],
        matches: (0..n).map(|i| (0..n).map(|j| i == j).collect()).collect(),
        objects,
        targets,
        pick_names,
        place_names,
        replace: false,
        rotations: true,
        assign: Assign::Nearest,
        order: Order::FarthestFirst,
        metric,
        max_reward: 1.0,
    }
}

pub(super) fn target_on(p: &ObjPose, z: f64) -> Target {
    Target {
        pos: [p.pos[0], p.pos[1], z],
        yaw: p.yaw(),
    }
}

/// Levels of a stack on a zone: centre heights for blocks of `edge`, starting on the table.
pub(super) fn stack_levels(zone: &ObjPose, edge: f64, n: usize) -> Vec<Target> {
    (0..n)
        .map(|l| target_on(zone, edge / 2.0 + edge * l as f64))
        .collect()
}

/// Alternating big/small block pairs of `cols`, then whatever `after_pairs` adds (I's
/// zones), then 0–2 distractors of the first unused palette colours. Returns the (big,
/// small) block indices per colour.
pub(super) fn pairs_and_distractors(
    b: &mut Builder,
    cols: &[Color],
    after_pairs: &mut dyn FnMut(&mut Builder) -> Option<()>,
) -> Option<(Vec<usize>, Vec<usize>)> {
    let mut big = Vec::new();
    let mut small = Vec::new();
    for &c in cols {
        big.push(b.block(Kind::BigBlock, c, Region::Anywhere)?);
        small.push(b.block(Kind::SmallBlock, c, Region::Anywhere)?);
    }
    after_pairs(b)?;
    let n_distract = b.range(0, 2);
    for &c in b.other_colors(cols).iter().take(n_distract) {
        let kind = if b.rng.gen_bool(0.5) {
            Kind::BigBlock
        } else {
            Kind::SmallBlock
        };
        b.block(kind, c, Region::Anywhere)?;
    }
    Some((big, small))
}

/// `objects` (named `names`) to distinct spots in the square zone at `z` of side `side`,
/// scored by how much of them lies inside it.
pub(super) fn zone_step(
    objects: Vec<usize>,
    names: Vec<String>,
    z: &ObjPose,
    side: f64,
    zone_name: String,
) -> GoalStep {
    let m = objects.len();
    let slots = zone_slots(z, m);
    GoalStep {
        symmetry: vec![0.0; m],
        matches: vec![vec![true; m]; m],
        objects,
        targets: slots,
        pick_names: names,
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
                sx: side,
                sy: side,
            }],
        },
        max_reward: 1.0,
    }
}

/// Up to four spots for small blocks in the zone at `z`, clear of each other.
pub(super) fn zone_slots(z: &ObjPose, m: usize) -> Vec<Target> {
    [(-0.03, -0.03), (0.03, 0.03), (0.03, -0.03), (-0.03, 0.03)]
        .iter()
        .take(m)
        .map(|&(dx, dy)| {
            let p = z.transform([dx, dy, 0.0]);
            Target {
                pos: [p[0], p[1], SMALL / 2.0],
                yaw: z.yaw(),
            }
        })
        .collect()
}

/// A goal of towers built in input order: each object to a target `matches` allows,
/// checked in position (1 cm) and height, yaw modulo `symmetry`.
pub(super) fn towers_step(
    objects: Vec<usize>,
    targets: Vec<Target>,
    pick_names: Vec<String>,
    place_names: Vec<PlaceName>,
    matches: Vec<Vec<bool>>,
    symmetry: f64,
) -> GoalStep {
    let metric = pose_metric(0.01, true);
    let mut step = identity_step(objects, targets, pick_names, place_names, symmetry, metric);
    step.matches = matches;
    step.order = Order::Input;
    step
}

/// How the `count` levels of a tower on `zone` are named, its first level being target
/// `first`: the zone, then the block below.
pub(super) fn tower_names(zone: String, count: usize, first: usize) -> Vec<PlaceName> {
    let mut names = vec![PlaceName::Text(zone)];
    names.extend((1..count).map(|l| PlaceName::OnTopOf(first + l - 1)));
    names
}

impl Builder<'_> {
    /// `n` free spots for blocks of `kind` inside `area`, clear of each other and of what
    /// is there.
    pub(super) fn spots(&mut self, area: Area, n: usize, kind: Kind) -> Option<Vec<Target>> {
        (0..n)
            .map(|_| {
                let (x, y, yaw) =
                    self.layout
                        .sample(self.rng, kind.radius(), Region::Inside(area))?;
                Some(Target {
                    pos: [x, y, kind.size() / 2.0],
                    yaw,
                })
            })
            .collect()
    }
}
