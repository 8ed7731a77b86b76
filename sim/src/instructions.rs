//! Instruction files: the tasks' instructions in other words (`loho eval --instructions
//! FILE`, `loho gen-data --instructions FILE`; docs/simulator.md, "Instructions in
//! other words").
//!
//! A TOML file with, per task code, a list of texts that mean the same as the task's
//! instruction; what varies per episode (a colour, an area) is a `{slot}` named as in
//! [`TaskId::template`] (`loho tasks --slots`). A text may hold groups of alternatives,
//! `[a|b|c]` (not nested; an alternative may be empty or hold slots), each of which an
//! episode draws one of: a few lines written by hand then say many sentences. An episode
//! draws one text, then each group's alternative, by its seed, so a run is reproducible;
//! a task the file does not name keeps the benchmark's wording.
//!
//! ```toml
//! A = ["move the {pick} onto the {place}.", "[put|set] the {pick} on the {place}[|, please]."]
//! D = ["build one tower of every block in the {area}."]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;

use crate::tasks::{slots_of, Episode, TaskId};

#[derive(Debug, Error)]
pub enum InstructionsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{origin}: {reason} (expected per task code a list of texts, e.g. \
         A = [\"move the {{pick}} onto the {{place}}.\"])"
    )]
    Format { origin: String, reason: String },
    #[error(
        "{origin}: unknown task {key:?}: use a code A-Z or AA-AE (`loho tasks`, `loho tasks --families`)"
    )]
    UnknownTask { origin: String, key: String },
    #[error("{origin}: task {task} has an empty list: give at least one text or leave it out")]
    Empty { origin: String, task: &'static str },
    #[error(
        "{origin}: task {task}: {text:?} names slot {{{slot}}}, which task {task} does not \
         have (its slots: {known}; `loho tasks --slots`)"
    )]
    UnknownSlot {
        origin: String,
        task: &'static str,
        text: String,
        slot: String,
        known: String,
    },
    #[error(
        "{origin}: task {task}: {text:?} has an unmatched [ or ], or a group inside a \
         group (write alternatives as [a|b|c])"
    )]
    Alternatives {
        origin: String,
        task: &'static str,
        text: String,
    },
    #[error("{origin}: task {task}: {text:?} has an unmatched brace")]
    Brace {
        origin: String,
        task: &'static str,
        text: String,
    },
}

/// Per task, the texts an episode draws its instruction from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instructions {
    by_task: BTreeMap<TaskId, Vec<String>>,
}

impl Instructions {
    pub fn read(path: &Path) -> Result<Self, InstructionsError> {
        let text = std::fs::read_to_string(path).map_err(|source| InstructionsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, InstructionsError> {
        let format = |reason: String| InstructionsError::Format {
            origin: origin.into(),
            reason,
        };
        let table: BTreeMap<String, Vec<String>> =
            toml::from_str(text).map_err(|e| format(e.message().to_string()))?;
        let mut by_task = BTreeMap::new();
        for (key, texts) in table {
            let task = TaskId::parse(&key)
                .ok()
                .filter(|t| key.trim().eq_ignore_ascii_case(t.code()))
                .ok_or_else(|| InstructionsError::UnknownTask {
                    origin: origin.into(),
                    key: key.clone(),
                })?;
            if texts.is_empty() {
                return Err(InstructionsError::Empty {
                    origin: origin.into(),
                    task: task.code(),
                });
            }
            for text in &texts {
                check(task, text, origin)?;
            }
            by_task.insert(task, texts);
        }
        Ok(Self { by_task })
    }

    /// The episode's instruction in one of the file's texts for its task (drawn by its
    /// seed), its slots filled in; unchanged if the file has none for the task.
    pub fn reword(&self, episode: &mut Episode) {
        let Some(texts) = self.by_task.get(&episode.task) else {
            return;
        };
        let draw = splitmix(episode.seed ^ (episode.task as u64) << 56);
        let text = &texts[(draw % texts.len() as u64) as usize];
        episode.instruction = fill(&choose(text, draw), &episode.slots);
    }
}

/// A text cut into what it always says and its groups of alternatives; `None` when a
/// bracket is unmatched or groups nest.
fn parts(text: &str) -> Option<Vec<Vec<&str>>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['[', ']']) {
        let close = rest[open..].find(']')? + open;
        if rest.as_bytes()[open] == b']' || rest[open + 1..close].contains('[') {
            return None;
        }
        out.push(vec![&rest[..open]]);
        out.push(rest[open + 1..close].split('|').collect());
        rest = &rest[close + 1..];
    }
    out.push(vec![rest]);
    Some(out)
}

/// `text` with each `[a|b|…]` group replaced by one of its alternatives, each group drawn
/// from its own stream of `seed`.
pub fn choose(text: &str, seed: u64) -> String {
    let Some(parts) = parts(text) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len());
    for (i, alts) in parts.iter().enumerate() {
        let pick = splitmix(seed.wrapping_add(1 + i as u64)) % alts.len() as u64;
        out.push_str(alts[pick as usize]);
    }
    out
}

/// `text` with every `{slot}` replaced by its value in `slots` (a name without a value
/// is left as written).
pub fn fill(text: &str, slots: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        match slots.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn check(task: TaskId, text: &str, origin: &str) -> Result<(), InstructionsError> {
    if parts(text).is_none() {
        return Err(InstructionsError::Alternatives {
            origin: origin.into(),
            task: task.code(),
            text: text.into(),
        });
    }
    let names = slots_of(text).ok_or_else(|| InstructionsError::Brace {
        origin: origin.into(),
        task: task.code(),
        text: text.into(),
    })?;
    let known = task.slots();
    match names.into_iter().find(|n| !known.contains(n)) {
        None => Ok(()),
        Some(slot) => Err(InstructionsError::UnknownSlot {
            origin: origin.into(),
            task: task.code(),
            text: text.into(),
            slot: slot.into(),
            known: match known.is_empty() {
                true => "none".into(),
                false => known.join(", "),
            },
        }),
    }
}

/// splitmix64's finaliser: neighbouring seeds draw unrelated texts.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{generate, ALL_TASKS, FAMILIES};
    use crate::Split;

    /// Every text `text` says, one per choice of alternatives (`text` itself if it has a
    /// malformed group).
    fn expansions(text: &str) -> Vec<String> {
        let Some(parts) = parts(text) else {
            return vec![text.to_string()];
        };
        parts.iter().fold(vec![String::new()], |said, alts| {
            said.iter()
                .flat_map(|s| alts.iter().map(move |a| format!("{s}{a}")))
                .collect()
        })
    }

    #[test]
    fn every_tasks_template_filled_with_its_slots_is_its_instruction() {
        for task in ALL_TASKS.into_iter().chain(FAMILIES) {
            let mut names: Vec<&str> = slots_of(task.template()).unwrap();
            names.dedup();
            assert_eq!(names, task.slots(), "{task:?}");
            for split in [Split::Train, Split::Test] {
                for seed in 0..30 {
                    let e = generate(task, split, seed).unwrap();
                    let have: Vec<&str> = e.slots.iter().map(|s| s.0).collect();
                    assert_eq!(have, task.slots(), "{task:?}");
                    assert_eq!(fill(task.template(), &e.slots), e.instruction, "{task:?}");
                }
            }
        }
    }

    #[test]
    fn a_file_rewords_by_seed_and_leaves_other_tasks_alone() {
        let file = Instructions::parse(
            "A = [\"move the {pick} onto the {place}.\", \"{place} gets the {pick}!\"]\n\
             d = [\"build one tower in the {area}.\"]\n",
            "test",
        )
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let mut e = generate(TaskId::A, Split::Test, seed).unwrap();
            let before = e.instruction.clone();
            file.reword(&mut e);
            assert_ne!(e.instruction, before);
            assert!(!e.instruction.contains('{'));
            seen.insert(e.instruction.starts_with("move the "));
            let mut again = generate(TaskId::A, Split::Test, seed).unwrap();
            file.reword(&mut again);
            assert_eq!(again.instruction, e.instruction, "drawn by the seed");
        }
        assert_eq!(seen.len(), 2, "both texts are drawn");
        let mut d = generate(TaskId::D, Split::Test, 3).unwrap();
        let area = d.slots[0].1.clone();
        file.reword(&mut d);
        assert_eq!(d.instruction, format!("build one tower in the {area}."));
        let mut b = generate(TaskId::B, Split::Test, 3).unwrap();
        let before = b.instruction.clone();
        file.reword(&mut b);
        assert_eq!(b.instruction, before);
    }

    #[test]
    fn groups_of_alternatives_are_drawn_by_seed_each_on_its_own() {
        let text = "[put|place|] the {pick}[| gently] on the {place}.";
        assert_eq!(
            expansions(text),
            [
                "put the {pick} on the {place}.",
                "put the {pick} gently on the {place}.",
                "place the {pick} on the {place}.",
                "place the {pick} gently on the {place}.",
                " the {pick} on the {place}.",
                " the {pick} gently on the {place}.",
            ]
        );
        let drawn: std::collections::BTreeSet<String> =
            (0..200).map(|seed| choose(text, seed)).collect();
        assert_eq!(drawn.len(), 6, "every combination comes up: {drawn:?}");
        assert_eq!(choose(text, 7), choose(text, 7));
        assert_eq!(choose("no groups.", 3), "no groups.");

        let file = Instructions::parse("D = [\"[stack|pile] them in the {area}.\"]", "t").unwrap();
        let mut said = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let mut e = generate(TaskId::D, Split::Val, seed).unwrap();
            let area = e.slots[0].1.clone();
            file.reword(&mut e);
            assert!(
                [
                    format!("stack them in the {area}."),
                    format!("pile them in the {area}.")
                ]
                .contains(&e.instruction),
                "{}",
                e.instruction
            );
            said.insert(e.instruction.split(' ').next().unwrap().to_string());
        }
        assert_eq!(said.len(), 2);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let err = |text: &str| Instructions::parse(text, "f.toml").unwrap_err().to_string();
        assert!(err("A = [\"x\"").contains("f.toml"));
        assert!(err("A = \"one text\"").contains("list of texts"));
        assert!(err("ZZ = [\"x\"]").contains("unknown task \"ZZ\""));
        assert!(err("pick-and-place-primitive = [\"x\"]").contains("unknown task"));
        assert!(err("A = []").contains("empty list"));
        let e = err("B = [\"put the {color} blocks in bowls.\"]");
        assert!(
            e.contains("slot {color}") && e.contains("its slots: none"),
            "{e}"
        );
        let e = err("D = [\"stack them in the {are}.\"]");
        assert!(e.contains("{are}") && e.contains("its slots: area"), "{e}");
        assert!(err("D = [\"stack them in the {area.\"]").contains("unmatched brace"));
        assert!(err("D = [\"stack them in the area}.\"]").contains("unmatched brace"));
        for bad in [
            "[stack|pile them.",
            "stack] them.",
            "[stack|[pile|heap]] them.",
        ] {
            let e = err(&format!("D = [\"{bad}\"]"));
            assert!(e.contains("unmatched [ or ]") && e.contains(bad), "{e}");
        }
        let e = Instructions::read(Path::new("/no/such/file.toml")).unwrap_err();
        assert!(e.to_string().contains("/no/such/file.toml"));
    }

    /// The shipped files: the test split's (by-hand.toml), the val split's
    /// (by-hand-val.toml) and training's (train.toml, train-grammar.toml, every sentence
    /// the grammar says) load, cover A–K, and share no text, so neither training nor
    /// choosing on val sees the sentences the test row reads, and training never sees the
    /// val file's.
    #[test]
    fn the_hand_written_files_cover_a_to_k_apart() {
        let files = [
            (
                "by-hand.toml",
                include_str!("../../configs/instructions/by-hand.toml"),
            ),
            (
                "by-hand-val.toml",
                include_str!("../../configs/instructions/by-hand-val.toml"),
            ),
            (
                "train.toml",
                include_str!("../../configs/instructions/train.toml"),
            ),
            (
                "train-grammar.toml",
                include_str!("../../configs/instructions/train-grammar.toml"),
            ),
        ]
        .map(|(name, text)| Instructions::parse(text, name).unwrap());
        for task in ALL_TASKS {
            let texts = files.each_ref().map(|f| {
                let said: Vec<String> = f.by_task[&task]
                    .iter()
                    .flat_map(|t| expansions(t))
                    .collect();
                said
            });
            assert!(texts.iter().all(|t| t.len() >= 3), "{task:?}");
            // The two training files (2, 3) may share a sentence; no other two may.
            for (i, j) in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)] {
                let (a, b) = (&texts[i], &texts[j]);
                assert!(a.iter().all(|x| !b.contains(x)), "{task:?}");
            }
        }
    }
}
