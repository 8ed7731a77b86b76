//! A policy that meets colour names its model never trained on by saying them in names it
//! did: [`Renamed`] swaps each deployment name for its stand-in in the instruction (and a
//! sub-task it is told to keep), and back in the sub-task it writes. Which name stands in
//! for which is decided by the colours they name (`loho_sim::colors::Palette::stand_ins`):
//! the model sees the object's real colour and reads and writes the trained name nearest
//! to it, so "the teal block" is the block its training called "dark cyan".

use super::{Decision, Observation, Plan, Policy, PolicyError};

pub struct Renamed {
    inner: Box<dyn Policy>,
    /// (the deployment's name, the model's name that stands in for it).
    pairs: Vec<(String, String)>,
}

impl Renamed {
    pub fn new(inner: Box<dyn Policy>, pairs: Vec<(String, String)>) -> Self {
        Self { inner, pairs }
    }

    fn to_model(&self, text: &str) -> String {
        swap_names(
            text,
            self.pairs.iter().map(|(d, m)| (d.as_str(), m.as_str())),
        )
    }

    fn to_deployment(&self, decision: Decision) -> Decision {
        let back =
            |t: &str| swap_names(t, self.pairs.iter().map(|(d, m)| (m.as_str(), d.as_str())));
        match decision {
            Decision::Act(mut a) => {
                a.subtask = back(&a.subtask);
                Decision::Act(a)
            }
            Decision::Done(s) => Decision::Done(back(&s)),
        }
    }
}

impl Policy for Renamed {
    fn reset(&mut self) {
        self.inner.reset();
    }

    fn reads_scene(&self) -> bool {
        self.inner.reads_scene()
    }

    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let instruction = self.to_model(obs.instruction);
        let d = self.inner.decide(&Observation {
            instruction: &instruction,
            ..*obs
        })?;
        Ok(self.to_deployment(d))
    }

    fn infer(
        &mut self,
        obs: &Observation,
        plan: &Plan,
        seed: u64,
    ) -> Result<Decision, PolicyError> {
        let instruction = self.to_model(obs.instruction);
        let plan = match plan {
            Plan::Keep(s) => Plan::Keep(self.to_model(s)),
            other => other.clone(),
        };
        let obs = Observation {
            instruction: &instruction,
            ..*obs
        };
        let d = self.inner.infer(&obs, &plan, seed)?;
        Ok(self.to_deployment(d))
    }
}

/// `text` with every whole-word occurrence of a pair's first name replaced by its second,
/// in one pass (a replacement is never replaced again), the longest name first where two
/// start at one place ("light blue" before "light").
fn swap_names<'a>(text: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.filter(|(from, _)| !from.is_empty()).collect();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let word_char = |c: char| c.is_alphanumeric();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_start = !text[..i].chars().next_back().is_some_and(word_char);
        let hit = at_start
            .then(|| {
                pairs.iter().find(|(from, _)| {
                    rest.starts_with(from) && !rest[from.len()..].starts_with(word_char)
                })
            })
            .flatten();
        match hit {
            Some((from, to)) => {
                out.push_str(to);
                i += from.len();
            }
            None => {
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_names_swap_once_longest_first() {
        let pairs = [
            ("teal", "dark cyan"),
            ("dark cyan", "teal"),
            ("light salmon", "coral"),
            ("salmon", "tomato"),
        ];
        let s = |t: &str| swap_names(t, pairs.iter().copied());
        assert_eq!(
            s("put the teal block on the dark cyan zone."),
            "put the dark cyan block on the teal zone."
        );
        assert_eq!(
            s("the light salmon and salmon blocks"),
            "the coral and tomato blocks"
        );
        // Part of a word is not a name.
        assert_eq!(s("tealish steal salmons"), "tealish steal salmons");
        assert_eq!(s("teal."), "dark cyan.");
    }

    use std::sync::{Arc, Mutex};

    /// Writes back what it read (the instruction, or the sub-task it is told to keep),
    /// and keeps a copy.
    struct Echo(Arc<Mutex<Vec<String>>>);
    impl Policy for Echo {
        fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
            self.0.lock().unwrap().push(obs.instruction.into());
            Ok(Decision::Done(obs.instruction.into()))
        }
        fn infer(
            &mut self,
            obs: &Observation,
            plan: &Plan,
            _: u64,
        ) -> Result<Decision, PolicyError> {
            let read = match plan {
                Plan::Keep(s) => format!("{s} | {}", obs.instruction),
                _ => obs.instruction.into(),
            };
            self.0.lock().unwrap().push(read.clone());
            Ok(Decision::Done(read))
        }
    }

    #[test]
    fn the_model_reads_and_writes_its_names_the_caller_sees_its_own() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pairs = vec![("teal".to_string(), "dark cyan".to_string())];
        let mut p = Renamed::new(Box::new(Echo(seen.clone())), pairs);
        let obs = |instruction| Observation {
            instruction,
            rgb: &[],
            height: &[],
            rows: 0,
            cols: 0,
            total_reward: None,
            step: 0,
            scene: None,
        };
        let d = p
            .decide(&obs("put the teal blocks in the red zone."))
            .unwrap();
        assert_eq!(d.subtask(), "put the teal blocks in the red zone.");
        let kept = Plan::Keep("pick up the teal block.".into());
        let d = p.infer(&obs("stack the teal blocks."), &kept, 0).unwrap();
        assert_eq!(
            d.subtask(),
            "pick up the teal block. | stack the teal blocks."
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "put the dark cyan blocks in the red zone.",
                "pick up the dark cyan block. | stack the dark cyan blocks."
            ]
        );
    }
}
