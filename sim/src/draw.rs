//! How an episode is drawn besides its task, split and seed: the palette, the words of
//! its instruction, and paraphrases of them (the default is the benchmark's).

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::colors::{Color, Palette};
use crate::instructions::Instructions;
use crate::split::Split;
use crate::tasks::{generate_from, generate_with_colors, mix, Episode, TaskError, TaskId};

/// What an episode is drawn with besides its task, split and seed; the default is the
/// benchmark's.
#[derive(Debug, Clone, Default)]
pub struct Draw {
    /// Every colour comes from this palette, in every split ([`crate::colors::Palette`]);
    /// `None`: the benchmark's eleven, tasks B–K drawing from the split's.
    pub palette: Option<Arc<Palette>>,
    /// The instruction in other words ([`crate::instructions`]).
    pub instructions: Option<Arc<Instructions>>,
    /// The share of episodes whose instruction (after `instructions`) the paraphrase
    /// generator rewords ([`crate::paraphrase`]), drawn by the seed; 0 by default.
    pub paraphrase: f64,
    /// Each episode draws this many of `palette`'s colours, by its seed
    /// ([`Palette::pick`]): training on many colours, a few at a time.
    pub pick: Option<usize>,
}

impl Draw {
    /// The episode (task, split, seed) drawn this way, with the split's colours.
    pub fn episode(&self, task: TaskId, split: Split, seed: u64) -> Result<Episode, TaskError> {
        self.with_colors(task, split, seed, &split.colors())
    }

    /// The same with tasks B–K drawing from `colors` ([`generate_with_colors`]), unless
    /// this draw has a palette of its own.
    pub fn with_colors(
        &self,
        task: TaskId,
        split: Split,
        seed: u64,
        colors: &[Color],
    ) -> Result<Episode, TaskError> {
        let mut episode = match (&self.palette, self.pick) {
            (Some(p), Some(n)) => {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x0070_6963 + task as u64));
                let p = p
                    .pick(n, &mut rng)
                    .map_err(|e| TaskError::Palette(e.to_string()))?;
                generate_from(task, split, seed, p.colors(), p.colors())?
            }
            (Some(p), None) => generate_from(task, split, seed, p.colors(), p.colors())?,
            (None, _) => generate_with_colors(task, split, seed, colors)?,
        };
        if let Some(i) = &self.instructions {
            i.reword(&mut episode);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x0070_6172 + task as u64));
        if self.paraphrase > 0.0 && rng.gen_bool(self.paraphrase.min(1.0)) {
            let rates = crate::paraphrase::Rates::default();
            episode.instruction =
                crate::paraphrase::paraphrase(&episode.instruction, rates, &mut rng);
        }
        Ok(episode)
    }
}
