//! The eleven LoHoRavens tasks A–K: scene generators, goals, texts and step limits.
//!
//! Each follows the benchmark's code (facts §9) with loho's decisions applied: target
//! heights are geometric, D, E, J and K do what their instructions say, and every step has
//! sub-task text. A scene is a pure function of (task, split, seed).

use std::f64::consts::{FRAC_PI_2, SQRT_2};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::colors::{self, Color, Split};
use crate::goal::{Assign, GoalStep, Metric, Order, PlaceName, Target, ZoneRect, HEIGHT_EPS};
use crate::scene::{Area, Layout, Region, QUADRANTS};
use crate::world::{Kind, ObjPose, World, BIG, BOWL_FLOOR, SMALL};

/// One of the eleven tasks, by its letter in the LoHoVLA tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskId {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
}

pub const ALL_TASKS: [TaskId; 11] = [
    TaskId::A,
    TaskId::B,
    TaskId::C,
    TaskId::D,
    TaskId::E,
    TaskId::F,
    TaskId::G,
    TaskId::H,
    TaskId::I,
    TaskId::J,
    TaskId::K,
];

#[derive(Debug, Error, PartialEq)]
pub enum TaskError {
    #[error("unknown task {0:?}: use a letter A-K or a registered name (see `loho tasks`)")]
    Unknown(String),
    #[error("task {0:?} seed {1}: could not lay out a scene")]
    NoLayout(TaskId, u64),
}

impl TaskId {
    pub fn letter(self) -> char {
        (b'A' + self as u8) as char
    }

    /// The LoHoRavens registered name.
    pub fn name(self) -> &'static str {
        match self {
            TaskId::A => "pick-and-place-primitive",
            TaskId::B => "put-block-into-matching-bowl",
            TaskId::C => "stack-smaller-over-bigger-with-same-color",
            TaskId::D => "stack-block-in-absolute-area",
            TaskId::E => "put-even-blocks-in-same-color-zone",
            TaskId::F => "put-block-into-mismatching-bowl",
            TaskId::G => "stack-blocks-of-same-size",
            TaskId::H => "stack-blocks-with-alternate-color",
            TaskId::I => "stack-smaller-over-bigger-with-same-color-in-same-color-zone",
            TaskId::J => "move-blocks-between-absolute-positions",
            TaskId::K => "stack-blocks-of-same-color",
        }
    }

    /// By letter (either case) or registered name.
    pub fn parse(s: &str) -> Result<Self, TaskError> {
        let t = s.trim();
        ALL_TASKS
            .iter()
            .copied()
            .find(|id| t.eq_ignore_ascii_case(&id.letter().to_string()) || t == id.name())
            .ok_or_else(|| TaskError::Unknown(s.to_string()))
    }

    /// A comma-separated list of tasks, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, TaskError> {
        if s.trim() == "all" {
            return Ok(ALL_TASKS.to_vec());
        }
        s.split(',').map(Self::parse).collect()
    }
}

/// A generated episode: the world, what to say and how it is scored.
pub struct Episode {
    pub task: TaskId,
    pub split: Split,
    pub seed: u64,
    pub world: World,
    pub instruction: String,
    /// The sub-task text that says the task is complete.
    pub completed: String,
    pub max_steps: usize,
    pub steps: Vec<GoalStep>,
}

/// Builds one episode with the split's colours. Scenes that cannot be laid out are drawn
/// again from the same random stream, so the result still depends only on (task, split, seed).
pub fn generate(task: TaskId, split: Split, seed: u64) -> Result<Episode, TaskError> {
    generate_with_colors(task, split, seed, &split.colors())
}

/// Builds one episode whose tasks B–K draw colours from `palette` instead of the split's:
/// training data uses all 11 colours (facts §7) with the train seeds.
pub fn generate_with_colors(
    task: TaskId,
    split: Split,
    seed: u64,
    palette: &[Color],
) -> Result<Episode, TaskError> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, task as u64));
    for _ in 0..50 {
        let mut b = Builder {
            world: World::new(),
            layout: Layout::default(),
            rng: &mut rng,
            palette: palette.to_vec(),
        };
        if let Some(spec) = build(task, &mut b) {
            let world = b.world;
            return Ok(Episode {
                task,
                split,
                seed,
                world,
                instruction: spec.instruction,
                completed: spec.completed,
                max_steps: spec.max_steps,
                steps: spec.steps,
            });
        }
    }
    Err(TaskError::NoLayout(task, seed))
}

/// splitmix64 of the seed and task, so neighbouring seeds give unrelated streams.
fn mix(seed: u64, task: u64) -> u64 {
    let mut z = seed
        .wrapping_add(task.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Spec {
    instruction: String,
    completed: String,
    max_steps: usize,
    steps: Vec<GoalStep>,
}

struct Builder<'a> {
    world: World,
    layout: Layout,
    rng: &'a mut ChaCha8Rng,
    /// The colours tasks B–K draw from.
    palette: Vec<Color>,
}

impl Builder<'_> {
    fn block(&mut self, kind: Kind, color: Color, region: Region) -> Option<usize> {
        let (x, y, yaw) = self.layout.sample(self.rng, kind.radius(), region)?;
        let pose = ObjPose::from_xyz_yaw(x, y, kind.size() / 2.0, yaw);
        Some(self.world.add_block(kind, color, pose))
    }
    fn bowl(&mut self, color: Color, fixed: bool) -> Option<usize> {
        let (x, y, yaw) = self
            .layout
            .sample(self.rng, Kind::Bowl.radius(), Region::Anywhere)?;
        Some(self.world.add_bowl(color, x, y, yaw, fixed))
    }
    /// A zone that keeps a square of side `size` clear (the metric's size in E and I).
    fn zone(&mut self, color: Color, size: f64) -> Option<usize> {
        let r = size.max(Kind::Zone.size()) * SQRT_2 / 2.0;
        let (x, y, yaw) = self.layout.sample(self.rng, r, Region::Anywhere)?;
        Some(self.world.add_zone(color, x, y, yaw))
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.gen_range(lo..=hi)
    }
    /// `n` distinct colours, in random order.
    fn colors(&mut self, from: &[Color], n: usize) -> Vec<Color> {
        let mut c = from.to_vec();
        c.shuffle(self.rng);
        c.truncate(n);
        c
    }
    fn pose(&self, i: usize) -> ObjPose {
        self.world.pose(i)
    }
}

fn size_word(kind: Kind) -> &'static str {
    if kind == Kind::BigBlock {
        "bigger"
    } else {
        "smaller"
    }
}

fn sized_name(kind: Kind, c: Color) -> String {
    format!("{} {} block", size_word(kind), c.name)
}

fn block_name(c: Color) -> String {
    format!("{} block", c.name)
}

fn pose_metric(pos_eps: f64, height: bool) -> Metric {
    Metric::Pose {
        pos_eps,
        height_eps: height.then_some(HEIGHT_EPS),
    }
}

/// A one-to-one goal: object `objects[i]` to `targets[i]`.
fn identity_step(
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

fn target_on(p: &ObjPose, z: f64) -> Target {
    Target {
        pos: [p.pos[0], p.pos[1], z],
        yaw: p.yaw(),
    }
}

/// Levels of a stack on a zone: centre heights for blocks of `edge`, starting on the table.
fn stack_levels(zone: &ObjPose, edge: f64, n: usize) -> Vec<Target> {
    (0..n)
        .map(|l| target_on(zone, edge / 2.0 + edge * l as f64))
        .collect()
}

fn build(task: TaskId, b: &mut Builder) -> Option<Spec> {
    match task {
        TaskId::A => task_a(b),
        TaskId::B => task_bf(b, false),
        TaskId::C => task_c(b),
        TaskId::D => task_d(b),
        TaskId::E => task_e(b),
        TaskId::F => task_bf(b, true),
        TaskId::G => task_g(b),
        TaskId::H => task_h(b),
        TaskId::I => task_i(b),
        TaskId::J => task_j(b),
        TaskId::K => task_k(b),
    }
}

/// A: one pick-and-place, in one of three forms (base, with size, with absolute position),
/// colours from all 11.
fn task_a(b: &mut Builder) -> Option<Spec> {
    let variant = b.range(0, 2);
    let completed = "done placing blocks.".to_string();
    let (instruction, step) = match variant {
        0 => {
            let n_bowls = b.range(2, 3);
            let bowl_colors = b.colors(&colors::ALL, n_bowls);
            let bowls: Vec<usize> = bowl_colors
                .iter()
                .map(|&c| b.bowl(c, true))
                .collect::<Option<_>>()?;
            let n_blocks = b.range(2, 3);
            let block_colors = b.colors(&colors::ALL, n_blocks);
            let blocks: Vec<usize> = block_colors
                .iter()
                .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
                .collect::<Option<_>>()?;
            let n_zones = b.range(1, 2);
            let zone_colors = b.colors(&colors::ALL, n_zones);
            let zones: Vec<usize> = zone_colors
                .iter()
                .map(|&c| b.zone(c, 0.1))
                .collect::<Option<_>>()?;
            let pick = block_name(block_colors[0]);
            let (place, target, metric, sym, rotations, replace) = match b.range(0, 2) {
                0 => (
                    block_name(block_colors[1]),
                    target_on(&b.pose(blocks[1]), SMALL * 1.5),
                    pose_metric(0.05, true),
                    FRAC_PI_2,
                    true,
                    false,
                ),
                1 => (
                    format!("{} bowl", bowl_colors[0].name),
                    target_on(&b.pose(bowls[0]), BOWL_FLOOR + SMALL / 2.0),
                    pose_metric(0.05, false),
                    0.0,
                    true,
                    false,
                ),
                _ => {
                    let z = b.pose(zones[0]);
                    (
                        format!("{} zone", zone_colors[0].name),
                        target_on(&z, SMALL / 2.0),
                        Metric::Zone {
                            zones: vec![ZoneRect {
                                x: z.pos[0],
                                y: z.pos[1],
                                yaw: z.yaw(),
                                sx: 0.1,
                                sy: 0.1,
                            }],
                        },
                        0.0,
                        false,
                        true,
                    )
                }
            };
            let instruction = format!("pick up the {pick} and place it on the {place}.");
            let mut step = identity_step(
                vec![blocks[0]],
                vec![target],
                vec![pick],
                vec![PlaceName::Text(place)],
                sym,
                metric,
            );
            step.rotations = rotations;
            step.replace = replace;
            (instruction, step)
        }
        1 => {
            let n_bowls = b.range(2, 3);
            for c in b.colors(&colors::ALL, n_bowls) {
                b.bowl(c, true)?;
            }
            let n_small = b.range(2, 3);
            let n_big = b.range(2, n_small);
            let small_colors = b.colors(&colors::ALL, n_small);
            // Big blocks reuse the first small colours; (size, colour) stays unique.
            let mut kinds: Vec<(Kind, Color)> = small_colors
                .iter()
                .map(|&c| (Kind::SmallBlock, c))
                .chain(small_colors[..n_big].iter().map(|&c| (Kind::BigBlock, c)))
                .collect();
            kinds.shuffle(b.rng);
            let blocks: Vec<usize> = kinds
                .iter()
                .map(|&(k, c)| b.block(k, c, Region::Anywhere))
                .collect::<Option<_>>()?;
            let pi = b.range(0, blocks.len() - 1);
            let mut qi = b.range(0, blocks.len() - 2);
            if qi >= pi {
                qi += 1;
            }
            let (pk, pc) = kinds[pi];
            let (qk, qc) = kinds[qi];
            let pick = sized_name(pk, pc);
            let place = sized_name(qk, qc);
            let target = target_on(&b.pose(blocks[qi]), qk.size() + pk.size() / 2.0);
            (
                format!("pick up the {pick} and place it on the {place}."),
                identity_step(
                    vec![blocks[pi]],
                    vec![target],
                    vec![pick],
                    vec![PlaceName::Text(place)],
                    FRAC_PI_2,
                    pose_metric(0.05, true),
                ),
            )
        }
        _ => {
            // Keep the five area centres clear, so the place is never on top of something.
            for a in QUADRANTS {
                let (x, y) = a.center();
                b.layout.reserve(x, y, 0.03);
            }
            b.layout.reserve(0.5, 0.0, 0.05);
            let n_bowls = b.range(2, 3);
            for c in b.colors(&colors::ALL, n_bowls) {
                b.bowl(c, true)?;
            }
            let n_blocks = b.range(2, 3);
            let block_colors = b.colors(&colors::ALL, n_blocks);
            let blocks: Vec<usize> = block_colors
                .iter()
                .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
                .collect::<Option<_>>()?;
            let p0 = b.pose(blocks[0]);
            let pick_area = QUADRANTS
                .iter()
                .find(|a| a.contains(p0.pos[0], p0.pos[1]))?;
            let mut places: Vec<Option<Area>> = QUADRANTS
                .iter()
                .filter(|a| a.name != pick_area.name)
                .map(|a| Some(*a))
                .collect();
            places.push(None); // the centre
            let place_area = places[b.range(0, places.len() - 1)];
            let (place, rect) = match place_area {
                Some(a) => {
                    let (x, y) = a.center();
                    (
                        a.name.to_string(),
                        ZoneRect {
                            x,
                            y,
                            yaw: 0.0,
                            sx: 0.25,
                            sy: 0.5,
                        },
                    )
                }
                None => (
                    "center".to_string(),
                    ZoneRect {
                        x: 0.5,
                        y: 0.0,
                        yaw: 0.0,
                        sx: 0.08,
                        sy: 0.08,
                    },
                ),
            };
            let pick = format!("{} on the {}", block_name(block_colors[0]), pick_area.name);
            let mut step = identity_step(
                vec![blocks[0]],
                vec![Target {
                    pos: [rect.x, rect.y, SMALL / 2.0],
                    yaw: 0.0,
                }],
                vec![pick.clone()],
                vec![PlaceName::Text(place.clone())],
                0.0,
                Metric::Zone { zones: vec![rect] },
            );
            step.rotations = false;
            step.replace = true;
            (
                format!("pick up the {pick} and place it on the {place}."),
                step,
            )
        }
    };
    Some(Spec {
        instruction,
        completed,
        max_steps: 3,
        steps: vec![step],
    })
}

/// Colours from the full palette that the task does not use, in palette order.
fn other_colors(used: &[Color]) -> Vec<Color> {
    colors::ALL
        .iter()
        .copied()
        .filter(|c| !used.contains(c))
        .collect()
}

/// B (matching bowls) and F (mismatching bowls): the same scene, opposite goals.
fn task_bf(b: &mut Builder, mismatch: bool) -> Option<Spec> {
    let n_bowls = b.range(5, 7);
    let n_blocks = b.range(5, n_bowls);
    let cols = b.colors(&b.palette.clone(), n_bowls);
    let bowls: Vec<usize> = cols
        .iter()
        .map(|&c| b.bowl(c, true))
        .collect::<Option<_>>()?;
    let blocks: Vec<usize> = cols[..n_blocks]
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    // Distractors: small blocks (B) or free bowls, colours walked in palette order.
    let mut left = other_colors(&cols);
    for k in 0..6 {
        if left.is_empty() {
            break;
        }
        let c = left.remove(k % left.len());
        let placed = if !mismatch && b.rng.gen_bool(0.5) {
            b.block(Kind::SmallBlock, c, Region::Anywhere)
        } else {
            b.bowl(c, false)
        };
        if placed.is_none() {
            break;
        }
    }
    let targets: Vec<Target> = bowls[..n_blocks]
        .iter()
        .map(|&i| target_on(&b.pose(i), BOWL_FLOOR + SMALL / 2.0))
        .collect();
    let pick_names = cols[..n_blocks].iter().map(|&c| block_name(c)).collect();
    let place_names = cols[..n_blocks]
        .iter()
        .map(|c| PlaceName::Text(format!("{} bowl", c.name)))
        .collect();
    let mut step = identity_step(
        blocks,
        targets,
        pick_names,
        place_names,
        0.0,
        pose_metric(0.05, false),
    );
    let instruction = if mismatch {
        step.matches = (0..n_blocks)
            .map(|i| (0..n_blocks).map(|j| i != j).collect())
            .collect();
        step.assign = Assign::Matching;
        "put the blocks in the bowls with mismatched colors."
    } else {
        "put the blocks in the bowls with matching colors."
    };
    Some(Spec {
        instruction: instruction.into(),
        completed: "done placing blocks in bowls.".into(),
        max_steps: n_blocks + 2,
        steps: vec![step],
    })
}

/// Alternating big/small block pairs of `cols`, then whatever `after_pairs` adds (I's
/// zones), then 0–2 distractors of the first unused palette colours. Returns the (big,
/// small) block indices per colour.
fn pairs_and_distractors(
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
    for &c in other_colors(cols).iter().take(n_distract) {
        let kind = if b.rng.gen_bool(0.5) {
            Kind::BigBlock
        } else {
            Kind::SmallBlock
        };
        b.block(kind, c, Region::Anywhere)?;
    }
    Some((big, small))
}

/// C: every smaller block on the bigger block of its colour.
fn task_c(b: &mut Builder) -> Option<Spec> {
    let n = b.range(5, 7);
    let cols = b.colors(&b.palette.clone(), n);
    let (big, small) = pairs_and_distractors(b, &cols, &mut |_| Some(()))?;
    let targets = big
        .iter()
        .map(|&i| target_on(&b.pose(i), BIG + SMALL / 2.0))
        .collect();
    let step = identity_step(
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
    Some(Spec {
        instruction: "stack all the smaller blocks over the bigger blocks of the same color."
            .into(),
        completed: "done stacking all the blocks.".into(),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// D: one tower, on the first block in the named area, of every block that starts there;
/// bigger blocks below smaller ones, at most 0.26 m tall (the camera sees up to 0.28 m).
fn task_d(b: &mut Builder) -> Option<Spec> {
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
        instruction: format!("stack all the blocks in the {}.", area.name),
        completed: "done stacking all the blocks.".into(),
        max_steps: k + 2,
        steps: vec![step],
    })
}

/// E: colours with an even number of blocks go to their zone.
fn task_e(b: &mut Builder) -> Option<Spec> {
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
        instruction: "put the blocks of an even number in the zone with the matching color.".into(),
        completed: "done placing blocks in the zone.".into(),
        max_steps: n + 2,
        steps,
    })
}

/// G: big blocks stacked on the first zone, small blocks on the second.
fn task_g(b: &mut Builder) -> Option<Spec> {
    let n_big = b.range(1, 4);
    let n_small = b.range(1, 4);
    let big_cols = b.colors(&b.palette.clone(), n_big);
    let small_cols = b.colors(&b.palette.clone(), n_small);
    let z0 = b.zone(big_cols[0], 0.1)?;
    let z1 = b.zone(small_cols[0], 0.1)?;
    let big: Vec<usize> = big_cols
        .iter()
        .map(|&c| b.block(Kind::BigBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let small: Vec<usize> = small_cols
        .iter()
        .map(|&c| b.block(Kind::SmallBlock, c, Region::Anywhere))
        .collect::<Option<_>>()?;
    let mut targets = stack_levels(&b.pose(z0), BIG, n_big);
    targets.extend(stack_levels(&b.pose(z1), SMALL, n_small));
    let n = n_big + n_small;
    let matches = (0..n)
        .map(|i| (0..n).map(|j| (i < n_big) == (j < n_big)).collect())
        .collect();
    let mut place_names = Vec::new();
    for (count, zc) in [(n_big, big_cols[0]), (n_small, small_cols[0])] {
        let first = place_names.len();
        place_names.push(PlaceName::Text(format!("{} zone", zc.name)));
        place_names.extend((1..count).map(|l| PlaceName::OnTopOf(first + l - 1)));
    }
    let step = GoalStep {
        objects: big.iter().chain(&small).copied().collect(),
        symmetry: vec![0.0; n],
        matches,
        targets,
        pick_names: big_cols
            .iter()
            .map(|&c| sized_name(Kind::BigBlock, c))
            .chain(small_cols.iter().map(|&c| sized_name(Kind::SmallBlock, c)))
            .collect(),
        place_names,
        replace: false,
        rotations: true,
        assign: Assign::Nearest,
        order: Order::Input,
        metric: pose_metric(0.01, true),
        max_reward: 1.0,
    };
    Some(Spec {
        instruction: format!(
            "stack blocks of the same size on the {} zone and {} zone respectively.",
            big_cols[0].name, small_cols[0].name
        ),
        completed: "done stacking blocks.".into(),
        max_steps: n + 2,
        steps: vec![step],
    })
}

/// H: five blocks of two colours, alternating, on a zone.
fn task_h(b: &mut Builder) -> Option<Spec> {
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
        instruction: format!(
            "stack blocks with alternate colors on the {} zone, starting with the {} color.",
            zc.name, ab[0].name
        ),
        completed: "done stacking block.".into(),
        max_steps: 7,
        steps: vec![step],
    })
}

/// I: each big block into its zone, then each small block onto its big block.
fn task_i(b: &mut Builder) -> Option<Spec> {
    let n = b.range(3, 5);
    let cols = b.colors(&b.palette.clone(), n);
    let mut zones = Vec::new();
    let (big, small) = pairs_and_distractors(b, &cols, &mut |b| {
        for &c in &cols {
            zones.push(b.zone(c, 0.15)?);
        }
        Some(())
    })?;
    let zone_poses: Vec<ObjPose> = zones.iter().map(|&z| b.pose(z)).collect();
    let mut first = identity_step(
        big,
        zone_poses.iter().map(|z| target_on(z, BIG / 2.0)).collect(),
        cols.iter()
            .map(|&c| sized_name(Kind::BigBlock, c))
            .collect(),
        cols.iter()
            .map(|c| PlaceName::Text(format!("{} zone", c.name)))
            .collect(),
        0.0,
        pose_metric(0.01, true),
    );
    first.max_reward = 0.5;
    let mut second = identity_step(
        small,
        zone_poses
            .iter()
            .map(|z| target_on(z, BIG + SMALL / 2.0))
            .collect(),
        cols.iter()
            .map(|&c| sized_name(Kind::SmallBlock, c))
            .collect(),
        cols.iter()
            .map(|&c| PlaceName::Text(sized_name(Kind::BigBlock, c)))
            .collect(),
        0.0,
        pose_metric(0.01, true),
    );
    second.max_reward = 0.5;
    Some(Spec {
        instruction: "stack all the smaller blocks over the bigger blocks of the same color in the zone with the same color.".into(),
        completed: "done stacking all the blocks.".into(),
        max_steps: 2 * n + 3,
        steps: vec![first, second],
    })
}

/// J: every block in one quadrant moves to another.
fn task_j(b: &mut Builder) -> Option<Spec> {
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
    let mut targets = Vec::new();
    for _ in 0..n_move {
        let (x, y, yaw) = b
            .layout
            .sample(b.rng, Kind::SmallBlock.radius(), Region::Inside(tgt))?;
        targets.push(Target {
            pos: [x, y, SMALL / 2.0],
            yaw,
        });
    }
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
        instruction: format!(
            "move all the blocks on the {} to the {}.",
            src.name, tgt.name
        ),
        completed: "done moving all the blocks.".into(),
        max_steps: n_move + 7,
        steps: vec![step],
    })
}

/// K: blocks of each colour stacked on the zone of that colour.
fn task_k(b: &mut Builder) -> Option<Spec> {
    let k = b.range(1, 3);
    let n = match k {
        1 => b.range(2, 3),
        2 => b.range(4, 6),
        _ => b.range(6, 9),
    };
    let mut pal = b.palette.clone();
    pal.shuffle(b.rng);
    let cols = pal[..k].to_vec();
    let zones: Vec<usize> = cols
        .iter()
        .map(|&c| b.zone(c, 0.1))
        .collect::<Option<_>>()?;
    let mut spare = pal[k..].to_vec();
    if b.rng.gen_bool(0.5) {
        let c = spare.remove(0);
        b.zone(c, 0.1)?;
    }
    let blocks: Vec<usize> = (0..n)
        .map(|i| b.block(Kind::SmallBlock, cols[i % k], Region::Anywhere))
        .collect::<Option<_>>()?;
    for &c in spare.iter().take(b.range(0, 2)) {
        b.block(Kind::SmallBlock, c, Region::Anywhere)?;
    }
    // Level l of colour c is target index offset[c] + l.
    let counts: Vec<usize> = (0..k)
        .map(|c| (0..n).filter(|i| i % k == c).count())
        .collect();
    let mut targets = Vec::new();
    let mut place_names = Vec::new();
    let mut color_of_target = Vec::new();
    for c in 0..k {
        let first = targets.len();
        targets.extend(stack_levels(&b.pose(zones[c]), SMALL, counts[c]));
        place_names.push(PlaceName::Text(format!("{} zone", cols[c].name)));
        place_names.extend((1..counts[c]).map(|l| PlaceName::OnTopOf(first + l - 1)));
        color_of_target.extend(std::iter::repeat_n(c, counts[c]));
    }
    let step = GoalStep {
        symmetry: vec![FRAC_PI_2; n],
        matches: (0..n)
            .map(|i| color_of_target.iter().map(|&c| c == i % k).collect())
            .collect(),
        objects: blocks,
        targets,
        pick_names: (0..n).map(|i| block_name(cols[i % k])).collect(),
        place_names,
        replace: false,
        rotations: true,
        assign: Assign::Nearest,
        order: Order::Input,
        metric: pose_metric(0.01, true),
        max_reward: 1.0,
    };
    Some(Spec {
        instruction: "stack all the blocks of the same color together on the same colored zone."
            .into(),
        completed: "done stacking block.".into(),
        max_steps: n + 2,
        steps: vec![step],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_letters_parse() {
        assert_eq!(TaskId::parse("b").unwrap(), TaskId::B);
        assert_eq!(
            TaskId::parse("put-block-into-matching-bowl").unwrap(),
            TaskId::B
        );
        assert!(TaskId::parse("Z").is_err());
        assert_eq!(TaskId::parse_list("all").unwrap().len(), 11);
        assert_eq!(
            TaskId::parse_list("A,C").unwrap(),
            vec![TaskId::A, TaskId::C]
        );
    }
}
