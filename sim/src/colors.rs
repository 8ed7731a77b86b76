//! The 11 Tableau colours of Ravens and the train / eval colour splits.

use serde::{Deserialize, Serialize};

/// A named palette colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Color {
    pub name: &'static str,
    pub rgb: [u8; 3],
}

const fn c(name: &'static str, r: u8, g: u8, b: u8) -> Color {
    Color {
        name,
        rgb: [r, g, b],
    }
}

/// All 11 colours, in the palette's dictionary order (distractor walks depend on it).
pub const ALL: [Color; 11] = [
    c("blue", 78, 121, 167),
    c("red", 255, 87, 89),
    c("green", 89, 169, 78),
    c("orange", 242, 142, 43),
    c("yellow", 237, 201, 72),
    c("purple", 176, 122, 161),
    c("pink", 255, 157, 167),
    c("cyan", 118, 183, 178),
    c("brown", 156, 117, 95),
    c("white", 255, 255, 255),
    c("gray", 186, 176, 172),
];

const TRAIN: [&str; 7] = ["blue", "red", "green", "yellow", "brown", "gray", "cyan"];
const EVAL: [&str; 7] = ["blue", "red", "green", "orange", "purple", "pink", "white"];

/// The colour of the table (Ravens' workspace plane, RGBA 0.2, 0.2, 0.2).
pub const TABLE: [u8; 3] = [51, 51, 51];

pub fn by_name(name: &str) -> Option<Color> {
    ALL.iter().copied().find(|c| c.name == name)
}

/// Which seeds and colours an episode draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "train" => Some(Self::Train),
            "val" => Some(Self::Val),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
    /// The colours tasks B–K draw from: TRAIN for train, EVAL for val and test.
    pub fn colors(self) -> Vec<Color> {
        let names: &[&str] = match self {
            Self::Train => &TRAIN,
            Self::Val | Self::Test => &EVAL,
        };
        names.iter().map(|n| by_name(n).expect("palette")).collect()
    }
    /// The benchmark seed of the `i`-th episode: train 0, 2, 4, …; val 1, 3, 5, …;
    /// test 10001, 10003, … (disjoint by construction).
    pub fn seed(self, i: u64) -> u64 {
        match self {
            Self::Train => 2 * i,
            Self::Val => 2 * i + 1,
            Self::Test => 10_001 + 2 * i,
        }
    }
}
