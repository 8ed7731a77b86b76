//! The benchmark's splits: which seeds (train, val and test are disjoint) and which
//! colours an episode draws from.

use serde::{Deserialize, Serialize};

use crate::colors::{by_name, Color};

const TRAIN: [&str; 7] = ["blue", "red", "green", "yellow", "brown", "gray", "cyan"];
const EVAL: [&str; 7] = ["blue", "red", "green", "orange", "purple", "pink", "white"];

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
