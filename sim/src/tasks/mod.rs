//! The eleven LoHoRavens tasks A–K: scene generators, goals, texts and step limits.
//!
//! Each follows the benchmark's code (facts §9) with loho's decisions applied: target
//! heights are geometric, D, E, J and K do what their instructions say, and every step has
//! sub-task text. A scene is a pure function of (task, split, seed).
//!
//! One file per task generator (B and F share one scene), on the `builder`'s
//! helpers. Tasks L–Z and AA–AE are loho's own **families** (`families`, and E's scene for O),
//! for training a model that must meet F–K unseen (docs/simulator.md, "Task families");
//! `all` in a task list means the benchmark's eleven, `families` loho's L–AE.

mod a;
mod b_f;
mod builder;
mod c;
mod d;
mod e;
mod families;
mod g;
mod h;
mod i;
mod j;
mod k;
mod mixed;
mod z;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::colors::Color;
use crate::goal::GoalStep;
use crate::scene::Layout;
use crate::split::Split;
use crate::world::World;

use builder::{Builder, Spec};

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
    /// Family: the blocks of a colour (or not of it) into a named zone.
    L,
    /// Family: the blocks of a colour into a named area.
    M,
    /// Family: the blocks of a colour stacked on a named zone.
    N,
    /// Family: E's scene, the odd groups into their zones.
    O,
    /// Family: the blocks of a size into a named zone.
    P,
    /// Family: the blocks on an area into a named zone.
    Q,
    /// Family: a colour's blocks into the bowl or zone named as not of their colour.
    R,
    /// Family: the blocks of a size, each into the zone of its colour.
    S,
    /// Family: the blocks of a size stacked on a named zone.
    T,
    /// Family: two colours' blocks into two named zones.
    U,
    /// Family: every smaller block onto a bigger block of another colour.
    V,
    /// Family: every block into one of two zones not of its colour.
    W,
    /// Family: one colour's pair stacked, smaller over bigger, in a named zone.
    X,
    /// Family: two colours' blocks put or stacked on two named zones, "respectively".
    Y,
    /// Family: a size, "not a colour" or an area's blocks into an area or matching zones.
    Z,
    /// Family: blocks, bowls and zones of the same colours; matching bowls, matching
    /// zones or mismatched zones.
    AA,
    /// Family: I's scene (pairs, a zone per pair's colour) under C's, V's or S's rule.
    AB,
    /// Family: K's scene (colour groups, their zones) with the blocks put in their zones,
    /// or one colour stacked on another's zone.
    AC,
    /// Family: I's scene, two pairs, each stacked in the other pair's zone.
    AD,
    /// Family: a colour's blocks into the bowls of a named colour.
    AE,
}

/// The task families, loho's own (not LoHoRavens').
pub const FAMILIES: [TaskId; 20] = [
    TaskId::L,
    TaskId::M,
    TaskId::N,
    TaskId::O,
    TaskId::P,
    TaskId::Q,
    TaskId::R,
    TaskId::S,
    TaskId::T,
    TaskId::U,
    TaskId::V,
    TaskId::W,
    TaskId::X,
    TaskId::Y,
    TaskId::Z,
    TaskId::AA,
    TaskId::AB,
    TaskId::AC,
    TaskId::AD,
    TaskId::AE,
];

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
    #[error(
        "unknown task {0:?}: use a code A-Z or AA-AE, a registered name, `all` or `families` \
         (see `loho tasks`)"
    )]
    Unknown(String),
    #[error("task {0:?} seed {1}: could not lay out a scene")]
    NoLayout(TaskId, u64),
    #[error("{0}")]
    Palette(String),
}

impl TaskId {
    /// Its code in tables and lists: the benchmark's letter (A–K), then the families'
    /// (L–Z, then AA, AB, … as spreadsheet columns go on).
    pub fn code(self) -> &'static str {
        const CODES: [&str; 31] = [
            "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q",
            "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "AA", "AB", "AC", "AD", "AE",
        ];
        CODES[self as usize]
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
            TaskId::L => "family:put-color-in-zone",
            TaskId::M => "family:put-color-in-area",
            TaskId::N => "family:stack-color-on-zone",
            TaskId::O => "family:put-odd-blocks-in-same-color-zone",
            TaskId::P => "family:put-size-in-zone",
            TaskId::Q => "family:put-area-in-zone",
            TaskId::R => "family:put-color-in-other",
            TaskId::S => "family:put-size-in-matching-zone",
            TaskId::T => "family:stack-size-on-zone",
            TaskId::U => "family:put-two-colors-in-zones",
            TaskId::V => "family:stack-smaller-over-bigger-with-other-color",
            TaskId::W => "family:put-blocks-in-mismatching-zones",
            TaskId::X => "family:stack-pair-in-zone",
            TaskId::Y => "family:two-colors-in-zones-respectively",
            TaskId::Z => "family:put-filter-in-destination",
            TaskId::AA => "family:put-blocks-in-bowls-or-zones",
            TaskId::AB => "family:pairs-beside-their-zones",
            TaskId::AC => "family:groups-beside-their-zones",
            TaskId::AD => "family:stack-pairs-in-other-zones",
            TaskId::AE => "family:put-color-in-named-bowls",
        }
    }

    /// The benchmark's instruction with what varies per episode as `{slot}`s: an
    /// instruction file's texts use the same slots ([`crate::instructions`]).
    pub fn template(self) -> &'static str {
        match self {
            TaskId::A => "pick up the {pick} and place it on the {place}.",
            TaskId::B => "put the blocks in the bowls with matching colors.",
            TaskId::C => "stack all the smaller blocks over the bigger blocks of the same color.",
            TaskId::D => "stack all the blocks in the {area}.",
            TaskId::E => "put the blocks of an even number in the zone with the matching color.",
            TaskId::F => "put the blocks in the bowls with mismatched colors.",
            TaskId::G => {
                "stack blocks of the same size on the {big_zone_color} zone and \
                 {small_zone_color} zone respectively."
            }
            TaskId::H => {
                "stack blocks with alternate colors on the {zone_color} zone, starting with \
                 the {start_color} color."
            }
            TaskId::I => {
                "stack all the smaller blocks over the bigger blocks of the same color in the \
                 zone with the same color."
            }
            TaskId::J => "move all the blocks on the {from_area} to the {to_area}.",
            TaskId::K => {
                "stack all the blocks of the same color together on the same colored zone."
            }
            TaskId::L => "put the {blocks} in the {zone_color} zone.",
            TaskId::M => "put the {color} blocks in the {area}.",
            TaskId::N => "stack the {color} blocks on the {zone_color} zone.",
            TaskId::O => "put the blocks of an odd number in the zone with the matching color.",
            TaskId::P => "put the {size} blocks in the {zone_color} zone.",
            TaskId::Q => "put the blocks on the {area} in the {zone_color} zone.",
            TaskId::R => "put the {blocks} in the {container}.",
            TaskId::S => "put the {size} blocks in the zones with the matching colors.",
            TaskId::T => "stack the {size} blocks on the {zone_color} zone.",
            TaskId::U => {
                "put the {color} blocks in the {zone_color} zone and the {second_color} \
                 blocks in the {second_zone_color} zone."
            }
            TaskId::V => "stack all the smaller blocks over the bigger blocks {relation}.",
            TaskId::W => "put the blocks in the zones with {relation}.",
            TaskId::X => {
                "stack the smaller {color} block over the bigger {color} block in the \
                 {zone_color} zone."
            }
            TaskId::Y => {
                "{verb} the {color} blocks and the {second_color} blocks {prep} the \
                 {zone_color} zone and the {second_zone_color} zone respectively."
            }
            TaskId::Z => "put the {blocks} in the {destination}.",
            TaskId::AA => "put the blocks in the {destination} with {relation}.",
            TaskId::AB | TaskId::AC => "{verb} {blocks} {destination}.",
            TaskId::AD => {
                "stack all the smaller blocks over the bigger blocks of the same color in the \
                 {destination}."
            }
            TaskId::AE => "put the {color} blocks in the {bowl_color} bowls.",
        }
    }

    /// The slots of [`TaskId::template`], in order, each once (X names its colour twice).
    pub fn slots(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for name in slots_of(self.template()).unwrap_or_default() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// By letter (either case) or registered name (`family:…` for the families).
    pub fn parse(s: &str) -> Result<Self, TaskError> {
        let t = s.trim();
        ALL_TASKS
            .iter()
            .chain(&FAMILIES)
            .copied()
            .find(|id| t.eq_ignore_ascii_case(id.code()) || t == id.name())
            .ok_or_else(|| TaskError::Unknown(s.to_string()))
    }

    /// A comma-separated list of tasks; `all` stands for the eleven, `families` for
    /// the families.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, TaskError> {
        let mut out = Vec::new();
        for t in s.split(',') {
            match t.trim() {
                "all" => out.extend(ALL_TASKS),
                "families" => out.extend(FAMILIES),
                t => out.push(Self::parse(t)?),
            }
        }
        Ok(out)
    }
}

/// The slot names `text` uses, or `None` if a brace is unmatched.
pub fn slots_of(text: &str) -> Option<Vec<&str>> {
    let mut names = Vec::new();
    let mut rest = text;
    loop {
        match (rest.find('{'), rest.find('}')) {
            (None, None) => return Some(names),
            (Some(open), Some(close)) if open < close => {
                let name = &rest[open + 1..close];
                if name.contains('{') {
                    return None;
                }
                names.push(name);
                rest = &rest[close + 1..];
            }
            _ => return None,
        }
    }
}

/// A generated episode: the world, what to say and how it is scored.
pub struct Episode {
    pub task: TaskId,
    pub split: Split,
    pub seed: u64,
    pub world: World,
    pub instruction: String,
    /// The values of the instruction's slots ([`TaskId::template`]).
    pub slots: Vec<(&'static str, String)>,
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
    generate_from(task, split, seed, palette, &crate::colors::ALL)
}

/// One episode with tasks B–K drawing from `palette` and task A and distractors from
/// `all`.
pub(crate) fn generate_from(
    task: TaskId,
    split: Split,
    seed: u64,
    palette: &[Color],
    all: &[Color],
) -> Result<Episode, TaskError> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, task as u64));
    for _ in 0..50 {
        let mut b = Builder {
            world: World::new(),
            layout: Layout::default(),
            rng: &mut rng,
            palette: palette.to_vec(),
            all: all.to_vec(),
        };
        if let Some(spec) = build(task, &mut b) {
            let world = b.world;
            return Ok(Episode {
                task,
                split,
                seed,
                world,
                instruction: spec.instruction,
                slots: spec.slots,
                completed: spec.completed,
                max_steps: spec.max_steps,
                steps: spec.steps,
            });
        }
    }
    Err(TaskError::NoLayout(task, seed))
}

/// splitmix64 of the seed and task, so neighbouring seeds give unrelated streams.
pub(crate) fn mix(seed: u64, task: u64) -> u64 {
    let mut z = seed
        .wrapping_add(task.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn build(task: TaskId, b: &mut Builder) -> Option<Spec> {
    match task {
        TaskId::A => a::build(b),
        TaskId::B => b_f::build(b, false),
        TaskId::C => c::build(b, false),
        TaskId::D => d::build(b),
        TaskId::E => e::build(b, false),
        TaskId::F => b_f::build(b, true),
        TaskId::G => g::build(b),
        TaskId::H => h::build(b),
        TaskId::I => i::build(b),
        TaskId::J => j::build(b),
        TaskId::K => k::build(b),
        TaskId::L => families::put_color_in_zone(b),
        TaskId::M => families::put_color_in_area(b),
        TaskId::N => families::stack_color_on_zone(b),
        TaskId::O => e::build(b, true),
        TaskId::P => families::size_on_zone(b, false),
        TaskId::Q => families::put_area_in_zone(b),
        TaskId::R => families::put_color_in_other(b),
        TaskId::S => families::put_size_in_matching_zone(b),
        TaskId::T => families::size_on_zone(b, true),
        TaskId::U => families::two_colors_in_zones(b, false),
        TaskId::V => c::build(b, true),
        TaskId::W => families::put_blocks_in_mismatching_zones(b),
        TaskId::X => i::pair_in_zone(b),
        TaskId::Y => families::two_colors_in_zones(b, true),
        TaskId::Z => z::build(b),
        TaskId::AA => mixed::bowls_or_zones(b),
        TaskId::AB => mixed::pairs_beside_zones(b),
        TaskId::AC => mixed::groups_beside_zones(b),
        TaskId::AD => i::pairs_in_other_zones(b),
        TaskId::AE => families::put_color_in_named_bowls(b),
    }
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
        assert!(TaskId::parse("ZZ").is_err());
        assert_eq!(TaskId::parse("ab").unwrap(), TaskId::AB);
        assert_eq!(TaskId::parse_list("all").unwrap().len(), 11);
        assert_eq!(
            TaskId::parse_list("A,C").unwrap(),
            vec![TaskId::A, TaskId::C]
        );
    }
}
