//! A policy that meets colour names its model never trained on by saying them in names it
//! did: [`Renamed`] swaps each deployment name for its stand-in in the instruction (and a
//! sub-task it is told to keep), and back in the sub-task it writes. Which name stands in
//! for which is decided by the colours they name (`loho_sim::colors::Palette::stand_ins`:
//! a trained colour, the benchmark's eleven first), so "the teal block" is the block the
//! model reads as "blue". With [`Renamed::recolouring`] the frame says it too: a pixel of
//! a deployment colour (or a shade of it) is shown in the stand-in's trained colour, so the
//! model meets the words and the colours its training tied together, not a colour near
//! them.

use super::{Decision, Observation, Plan, Policy, PolicyError};

pub struct Renamed {
    inner: Box<dyn Policy>,
    /// (the deployment's name, the model's name that stands in for it).
    pairs: Vec<(String, String)>,
    /// (a colour the frame may show, the colour the model sees in its place).
    colours: Vec<([u8; 3], [u8; 3])>,
}

/// A pixel is a shade `s·c` of a colour `c` for `s` in this range (the simulator shades a
/// bowl's floor 0.8 and a tilted block's top down to 0.55; a camera's light more)…
const SHADES: (f32, f32) = (0.3, 1.1);
/// … when no channel is further than this from it: the sensor's noise is σ = 3, but the
/// cameras' fused colours stray further (through them, val × 20 in
/// `configs/palettes/unseen.toml`: 60.0 % with 24, 65.0 with 48 or 72; the ideal
/// heightmap 80.0 with 24 and 48).
const SHADE_REACH: f32 = 48.0;

impl Renamed {
    pub fn new(inner: Box<dyn Policy>, pairs: Vec<(String, String)>) -> Self {
        Self {
            inner,
            pairs,
            colours: Vec::new(),
        }
    }

    /// Also recolours the frame: a pixel nearest to a shade of one of `colours`' first
    /// colours, within reach, is shown as the same shade of its second (the rest of its
    /// difference kept). List every colour the frame shows, those that stay (the table) as
    /// themselves, so that a pixel of one is never taken for another.
    pub fn recolouring(mut self, colours: Vec<([u8; 3], [u8; 3])>) -> Self {
        self.colours = colours;
        self
    }

    /// `rgb` as the model should see it, or `None` when nothing changes.
    fn recolour(&self, rgb: &[u8]) -> Option<Vec<u8>> {
        if self.colours.iter().all(|(from, to)| from == to) {
            return None;
        }
        let mut out = rgb.to_vec();
        for px in out.chunks_exact_mut(3) {
            let p = [px[0], px[1], px[2]].map(f32::from);
            let shade_of = |c: &[u8; 3]| {
                let c = c.map(f32::from);
                let cc: f32 = c.iter().map(|v| v * v).sum();
                let s = match cc > 0.0 {
                    true => {
                        ((0..3).map(|k| p[k] * c[k]).sum::<f32>() / cc).clamp(SHADES.0, SHADES.1)
                    }
                    false => 1.0,
                };
                let off = (0..3).map(|k| (p[k] - s * c[k]).abs()).fold(0.0, f32::max);
                (off, s)
            };
            let nearest = self
                .colours
                .iter()
                .map(|pair| (shade_of(&pair.0), pair))
                .min_by(|a, b| a.0 .0.total_cmp(&b.0 .0));
            if let Some(((off, s), (from, to))) = nearest {
                if off <= SHADE_REACH && from != to {
                    for k in 0..3 {
                        let v = p[k] + s * (f32::from(to[k]) - f32::from(from[k]));
                        px[k] = v.round().clamp(0.0, 255.0) as u8;
                    }
                }
            }
        }
        Some(out)
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
        let rgb = self.recolour(obs.rgb);
        let d = self.inner.decide(&Observation {
            instruction: &instruction,
            rgb: rgb.as_deref().unwrap_or(obs.rgb),
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
        let rgb = self.recolour(obs.rgb);
        let obs = Observation {
            instruction: &instruction,
            rgb: rgb.as_deref().unwrap_or(obs.rgb),
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

    #[test]
    fn a_deployment_colour_and_its_shades_are_shown_in_the_stand_in_s_colour() {
        let p = Renamed::new(Box::new(Echo(Default::default())), Vec::new()).recolouring(vec![
            ([51, 51, 51], [51, 51, 51]),
            ([0, 128, 128], [0, 139, 139]),
            ([255, 0, 0], [255, 87, 89]),
            ([78, 121, 167], [78, 121, 167]),
        ]);
        let frame = [
            [0, 128, 128],  // teal
            [1, 102, 104],  // teal's bowl floor (× 0.8), with noise
            [51, 52, 50],   // the table
            [78, 120, 168], // a colour that stays
            [204, 0, 0],    // red × 0.8
            [200, 200, 0],  // nothing listed is near: left alone
        ];
        let rgb: Vec<u8> = frame.concat();
        let out = p.recolour(&rgb).unwrap();
        let px: Vec<[u8; 3]> = out.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        assert_eq!(px[0], [0, 139, 139]);
        // The same shade of the stand-in, the rest of the difference kept.
        assert!(
            px[1][1].abs_diff(111) <= 1 && px[1][2].abs_diff(113) <= 1,
            "{:?}",
            px[1]
        );
        assert_eq!(px[2], [51, 52, 50]);
        assert_eq!(px[3], [78, 120, 168]);
        assert_eq!(px[4], [204, 70, 71]);
        assert_eq!(px[5], [200, 200, 0]);
        // Nothing to change: the frame is passed as it is.
        let same = Renamed::new(Box::new(Echo(Default::default())), Vec::new())
            .recolouring(vec![([51, 51, 51], [51, 51, 51])]);
        assert!(same.recolour(&rgb).is_none());
    }

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
