//! The paraphrase generator for training data (`loho gen-data --paraphrase P`;
//! docs/simulator.md, "Instructions in other words"): an instruction in other words with
//! the same meaning, drawn from a seeded stream — verbs and nouns swapped for synonyms,
//! the order of a pick-and-place turned round, a put-in said as a move-to, a polite frame,
//! and now and then a typo.
//!
//! Swaps are whole phrases at word boundaries and keep every colour, size, area and
//! count as written, so the sub-tasks the oracle writes still name what the instruction
//! named. Nothing here negates or adds a relation: "matching" is never "not matching".

use rand::seq::SliceRandom;
use rand::Rng;

/// Phrases and what may stand for each (the phrase itself stays among the choices).
const SYNONYMS: &[(&str, &[&str])] = &[
    ("pick up", &["take", "grab", "lift", "get"]),
    (
        "place it on",
        &[
            "put it on",
            "set it on",
            "put it onto",
            "set it down on",
            "drop it on",
            "put it down on",
        ],
    ),
    ("put", &["place", "move", "set", "drop"]),
    (
        "stack",
        &["pile", "build a stack of", "stack up", "pile up"],
    ),
    ("move", &["bring", "carry", "transfer"]),
    ("over", &["on top of", "onto"]),
    ("in the", &["into the", "inside the"]),
    ("blocks", &["cubes", "bricks"]),
    ("block", &["cube", "brick"]),
    ("bowls", &["containers", "dishes"]),
    ("bowl", &["container", "dish"]),
    ("zones", &["squares"]),
    ("zone", &["square"]),
    ("area", &["region", "quarter", "part"]),
    ("bigger", &["larger", "big", "large"]),
    ("smaller", &["small", "little", "tiny"]),
    ("colors", &["colours"]),
    ("color", &["colour"]),
    (
        "all the",
        &["every one of the", "each of the", "all of the"],
    ),
    ("matching", &["same", "corresponding"]),
    (
        "of an even number",
        &["whose count is even", "that come in an even number"],
    ),
    (
        "of an odd number",
        &["whose count is odd", "that come in an odd number"],
    ),
    (
        "that are not",
        &[
            "that aren't",
            "of a color other than",
            "of a different color than",
        ],
    ),
    (
        "that is not",
        &[
            "that isn't",
            "of a color other than",
            "of a different color than",
        ],
    ),
];

/// Polite frames: `{}` is the instruction without its full stop.
const FRAMES: &[&str] = &[
    "please {}.",
    "{}, please.",
    "could you {}?",
    "can you {}?",
    "i need you to {}.",
    "{} now.",
    "your task: {}.",
    "i'd like you to {}.",
    "go ahead and {}.",
    "{} for me.",
    "next, {}.",
    "{}, thanks.",
];

/// How often each kind of change is made.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Each phrase with synonyms is swapped with this probability.
    pub synonym: f64,
    /// A pick-and-place is said place-first ("onto the X, put the Y"), and, apart, a
    /// put-in as a move-to ("move the blocks to the red zone").
    pub reorder: f64,
    /// The instruction is wrapped in a polite frame.
    pub frame: f64,
    /// One word gets a typo (a letter dropped, doubled or swapped with the next).
    pub typo: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            synonym: 0.5,
            reorder: 0.3,
            frame: 0.4,
            typo: 0.15,
        }
    }
}

/// `text` (lowercase, as the tasks write it) in other words.
pub fn paraphrase(text: &str, rates: Rates, rng: &mut impl Rng) -> String {
    let mut body = text.trim().trim_end_matches('.').to_string();
    if rng.gen_bool(rates.reorder) {
        if let Some(moved) = move_to(&body) {
            body = moved;
        }
    }
    let mut out = swap_synonyms(&body, rates.synonym, rng);
    if rng.gen_bool(rates.reorder) {
        if let Some(turned) = place_first(&out) {
            out = turned;
        }
    }
    if rng.gen_bool(rates.typo) {
        out = typo(&out, rng);
    }
    match rng.gen_bool(rates.frame) {
        true => FRAMES.choose(rng).expect("frames").replace("{}", &out),
        false => format!("{out}."),
    }
}

/// Left to right, each phrase of [`SYNONYMS`] at word boundaries (the longest first)
/// swapped with probability `p`.
fn swap_synonyms(text: &str, p: f64, rng: &mut impl Rng) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    'words: while i < words.len() {
        let mut best: Option<(usize, &[&str])> = None;
        for (phrase, alts) in SYNONYMS {
            let n = phrase.split(' ').count();
            let here = words.get(i..i + n).map(|w| w.join(" "));
            // A phrase may end at a comma: "bowl," keeps its comma.
            let bare = here.as_deref().map(|h| h.trim_end_matches(','));
            if bare == Some(phrase) && best.is_none_or(|(m, _)| n > m) {
                best = Some((n, alts));
            }
        }
        if let Some((n, alts)) = best {
            let here = words[i..i + n].join(" ");
            let comma = if here.ends_with(',') { "," } else { "" };
            if rng.gen_bool(p) {
                out.push(format!(
                    "{}{comma}",
                    alts.choose(rng).expect("alternatives")
                ));
            } else {
                out.push(here);
            }
            i += n;
            continue 'words;
        }
        out.push(words[i].to_string());
        i += 1;
    }
    out.join(" ")
}

/// "<verb> the X and <place verb> it on the Y" as "onto the Y, <verb> the X".
fn place_first(text: &str) -> Option<String> {
    let (pick, place) = text.split_once(" and ")?;
    let target = ["it on ", "it onto ", "it down on "]
        .iter()
        .find_map(|k| place.split_once(k).map(|(_, t)| t))?;
    Some(format!("onto {target}, {pick}"))
}

/// "put X in the Y" as "move X to the Y" (every "in the" of it: "put the red blocks in
/// the pink zone and the blue blocks in the orange zone").
fn move_to(text: &str) -> Option<String> {
    let rest = text.strip_prefix("put ")?;
    rest.contains(" in the ")
        .then(|| format!("move {}", rest.replace(" in the ", " to the ")))
}

/// One word of four letters or more with a letter dropped, doubled or swapped.
fn typo(text: &str, rng: &mut impl Rng) -> String {
    let mut words: Vec<String> = text.split(' ').map(String::from).collect();
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].chars().filter(|c| c.is_ascii_alphabetic()).count() >= 4)
        .collect();
    let Some(&w) = long.choose(rng) else {
        return text.to_string();
    };
    let mut chars: Vec<char> = words[w].chars().collect();
    let letters: Vec<usize> = (0..chars.len() - 1)
        .filter(|&i| chars[i].is_ascii_alphabetic() && chars[i + 1].is_ascii_alphabetic())
        .collect();
    if let Some(&k) = letters.choose(rng) {
        match rng.gen_range(0..3) {
            0 => {
                chars.remove(k);
            }
            1 => chars.insert(k, chars[k]),
            _ => chars.swap(k, k + 1),
        }
    }
    words[w] = chars.into_iter().collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::tasks::{generate, ALL_TASKS, FAMILIES};
    use crate::Split;

    #[test]
    fn paraphrases_vary_and_keep_what_the_instruction_names() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let no_typo = Rates {
            typo: 0.0,
            ..Rates::default()
        };
        for &task in ALL_TASKS.iter().chain(&FAMILIES) {
            for seed in 0..10 {
                let e = generate(task, Split::Train, seed).unwrap();
                // Colours and area words are never swapped.
                let kept: Vec<&str> = e
                    .instruction
                    .split(|c: char| !c.is_alphabetic())
                    .filter(|w| {
                        crate::colors::by_name(w).is_some()
                            || ["top", "bottom", "left", "right", "center"].contains(w)
                    })
                    .collect();
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..20 {
                    let p = paraphrase(&e.instruction, no_typo, &mut rng);
                    assert!(p.ends_with('.') || p.ends_with('?'), "{p}");
                    for w in &kept {
                        assert!(
                            p.split(|c: char| !c.is_alphabetic()).any(|x| x == *w),
                            "{w} lost in {p:?}"
                        );
                    }
                    seen.insert(p);
                }
                assert!(seen.len() >= 5, "{task:?}: {seen:?}");
            }
        }
    }

    #[test]
    fn each_change_alone() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let text = "pick up the red block and place it on the blue bowl.";
        let none = Rates {
            synonym: 0.0,
            reorder: 0.0,
            frame: 0.0,
            typo: 0.0,
        };
        assert_eq!(paraphrase(text, none, &mut rng), text);
        let turned = paraphrase(
            text,
            Rates {
                reorder: 1.0,
                ..none
            },
            &mut rng,
        );
        assert_eq!(turned, "onto the blue bowl, pick up the red block.");
        let put = "put the red blocks in the pink zone and the blue blocks in the orange zone.";
        assert_eq!(
            paraphrase(
                put,
                Rates {
                    reorder: 1.0,
                    ..none
                },
                &mut rng
            ),
            "move the red blocks to the pink zone and the blue blocks to the orange zone."
        );
        let framed = paraphrase(text, Rates { frame: 1.0, ..none }, &mut rng);
        assert!(framed.contains("pick up the red block and place it on the blue bowl"));
        assert_ne!(framed, text);
        let swapped = paraphrase(
            text,
            Rates {
                synonym: 1.0,
                ..none
            },
            &mut rng,
        );
        assert!(
            !swapped.contains("pick up") && swapped.contains("red") && swapped.contains("blue")
        );
        let typo = paraphrase(text, Rates { typo: 1.0, ..none }, &mut rng);
        assert_ne!(typo, text);
        assert!(typo.len().abs_diff(text.len()) <= 1);
    }

    /// A negation is said in other words, never dropped: "not red" stays "not red".
    #[test]
    fn negations_stay_negations() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let swap_all = Rates {
            synonym: 1.0,
            reorder: 0.0,
            frame: 0.0,
            typo: 0.0,
        };
        let mut seen = std::collections::BTreeSet::new();
        for text in [
            "put the blocks that are not red in the blue zone.",
            "put the red block in the bowl that is not red.",
        ] {
            for _ in 0..40 {
                let p = paraphrase(text, swap_all, &mut rng);
                let negated = [
                    "not red",
                    "n't red",
                    "other than red",
                    "different color than red",
                ];
                assert!(negated.iter().any(|n| p.contains(n)), "{p}");
                seen.insert(p);
            }
        }
        for n in ["aren't", "isn't", "other than", "different"] {
            assert!(
                seen.iter().any(|p| p.contains(n)),
                "{n} never drawn: {seen:?}"
            );
        }
    }
}
