//! One decision of the model, as a policy asks for it: a frame in, the sub-task text and the
//! keyposes out, with the time each stage took.

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use loho_core::policy::Plan;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::decode::{self, Mode};
use crate::head::Decoding;
use loho_core::subtask::{self, PlaceKind};

use crate::keypose::{ActionScale, Keypose};
use crate::model::{ids, Loho};
use crate::vocab::Vocab;
use crate::{checkpoint, normal, ModelError};

/// Where a decision's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Stem and prefill of the image tokens (the instruction is cached per episode).
    pub prefill: Duration,
    /// Writing (or re-reading) the sub-task, one token at a time.
    pub decode: Duration,
    /// Sub-task tokens written (or re-read), with `</sub>` and `<act>`.
    pub tokens: usize,
    /// Forward passes that took: autoregressively one per written word, the first's
    /// aside, and one for the last word with `</sub> <act>` (none after "done"; re-read
    /// words go in with them).
    pub passes: usize,
    /// The action head's Euler steps.
    pub head: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub subtask: String,
    /// Empty when the sub-task says the task is done.
    pub keyposes: Vec<Keypose>,
    pub timing: Timing,
}

impl Output {
    /// Whether the model wrote a "done …" sentence (every task's completed text starts so).
    pub fn is_done(&self) -> bool {
        self.keyposes.is_empty()
    }
}

/// The model with its vocabulary and the random stream of its action samples.
pub struct Vla {
    model: Loho,
    vocab: Vocab,
    rng: ChaCha8Rng,
    /// The padded instruction of the episode.
    instruction: Vec<u32>,
    /// True when the instruction was cut to fit `max_instruction`.
    pub truncated: bool,
    /// How the sub-task is written: the checkpoint's `head.decoding`.
    mode: Mode,
}

impl Vla {
    pub fn new(model: Loho, vocab: Vocab, seed: u64) -> Self {
        let decoding = model.config().head.decoding;
        // checkpoint::load refuses settings that cannot run; a model built in memory with
        // them writes its sub-tasks autoregressively (what blocks of one do too).
        let mode = decode::mode(&model.config().head, decoding, &vocab).unwrap_or_else(|e| {
            tracing::warn!("{e}: writing sub-tasks autoregressively");
            Mode::Ar
        });
        Self {
            mode,
            model,
            vocab,
            rng: ChaCha8Rng::seed_from_u64(seed),
            instruction: Vec::new(),
            truncated: false,
        }
    }

    /// Writes sub-tasks as `decoding` says (`--decoding`), with the checkpoint's block and
    /// refinement steps.
    pub fn set_decoding(&mut self, decoding: Decoding) -> Result<(), ModelError> {
        self.mode = decode::mode(&self.model.config().head, decoding, &self.vocab)
            .map_err(ModelError::Data)?;
        Ok(())
    }

    /// Restarts the random stream of the action samples.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The checkpoint in `dir`, on `device`.
    pub fn load(dir: &Path, seed: u64, device: &Device) -> Result<Self, ModelError> {
        let (model, vocab) = checkpoint::load(dir, device)?;
        Ok(Self::new(model, vocab, seed))
    }

    /// Starts an episode; words the vocabulary does not know become `<unk>`.
    pub fn start(&mut self, instruction: &str) -> Result<(), ModelError> {
        let words = self.vocab.encode(instruction)?;
        let (ids, truncated) = self.model.config().instruction_ids(&words);
        self.truncated = truncated;
        self.model.start(&ids)?;
        self.instruction = ids;
        Ok(())
    }

    /// Time to write one token without the cache: the whole sequence (instruction, image,
    /// `<sub>` and `subtask`) recomputed, as decoding would cost per token without it.
    pub fn uncached_token(
        &mut self,
        rgb: &[u8],
        height: &[f32],
        subtask: &str,
    ) -> Result<Duration, ModelError> {
        let frame = self
            .model
            .config()
            .stem
            .frame(rgb, height, self.model.device())?;
        let mut sub = vec![ids::SUB];
        sub.extend(self.vocab.encode(subtask)?);
        sub.truncate(self.model.config().max_subtask);
        let t = Instant::now();
        let h = self.model.recompute(&self.instruction, &frame, &sub)?;
        let last = h.dim(0)? - 1;
        argmax(&self.model.logits(&h.narrow(0, last, 1)?)?)?;
        Ok(t.elapsed())
    }

    /// One decision on a heightmap (row-major RGB bytes and heights in metres), its
    /// sub-task as `plan` says: re-read (only a new action is sampled, LoHoVLA's loop
    /// between re-plans), written greedily, or written again with its words sampled at the
    /// checkpoint's `replan_temperature`.
    pub fn decide(
        &mut self,
        rgb: &[u8],
        height: &[f32],
        plan: &Plan,
    ) -> Result<Output, ModelError> {
        let keep = match plan {
            Plan::Keep(text) => Some(text.as_str()),
            _ => None,
        };
        let temperature = match plan {
            Plan::Rewrite => self.model.config().replan_temperature,
            _ => 0.0,
        };
        let t0 = Instant::now();
        let frame = self
            .model
            .config()
            .stem
            .frame(rgb, height, self.model.device())?;
        let h = self.model.observe(&frame)?;
        let prefill = t0.elapsed();

        let t1 = Instant::now();
        let max_words = self.model.config().max_subtask - 3;
        let mut words;
        let (unfed, passes);
        match keep {
            Some(text) => {
                words = self.vocab.encode(text)?;
                words.truncate(max_words);
                (unfed, passes) = (words.len(), 0);
            }
            None => {
                let mode = self.mode;
                let rng = &mut self.rng;
                let mut pick = |logits: &Tensor| -> candle_core::Result<(u32, f32)> {
                    let t = if temperature > 0.0 {
                        sample(logits, temperature, rng)?
                    } else {
                        argmax(logits)?
                    };
                    Ok((t, prob(logits, t)?))
                };
                let w = decode::write(&mut self.model, h, max_words, mode, &mut pick)?;
                (words, unfed, passes) = (w.words, w.unfed, w.passes);
            }
        }
        let subtask = self.vocab.decode(&words);
        let mut tokens = words.len();
        let mut passes = passes;
        let mut keyposes = Vec::new();
        let mut head = Duration::ZERO;
        if keep.is_some() || !subtask::is_done(&subtask) {
            // The words not yet in the cache, `</sub>` and `<act>`: one pass.
            let rest = [&words[words.len() - unfed..], &[ids::END_SUB, ids::ACT]].concat();
            let h = self.model.feed(&rest)?;
            let h = h.narrow(0, rest.len() - 1, 1)?;
            tokens += 2;
            passes += 1;
            let t2 = Instant::now();
            let cfg = &self.model.config().head;
            let (dims, n, scale) = (cfg.action_dims(), cfg.samples.max(1), cfg.noise_scale);
            let noise: Vec<f32> = (0..n * dims)
                .map(|_| scale * normal(&mut self.rng))
                .collect();
            let noise = Tensor::from_vec(noise, (n, dims), self.model.device())?;
            let place = subtask::place_kind(&subtask);
            let on_zone = place == PlaceKind::Zone;
            let mut open = vec![false; cfg.keyposes];
            open[cfg.keyposes - 1] = place == PlaceKind::Open;
            let w = self.model.pointer_weights(&h, on_zone)?;
            let w = cfg.pointing.choose(&w, &open, &mut self.rng)?;
            let (cond, anchor) = self.model.act_condition(&h, &w)?;
            let sample = self.model.head().sample(&cond.repeat((n, 1))?, &noise)?;
            let mut all: Vec<Vec<f32>> = sample.to_vec2()?;
            for a in &mut all {
                anchor.absolute(0, a);
            }
            let a = medoid(&all);
            let ws = &self.model.config().workspace;
            keyposes = a
                .chunks(crate::head::KEYPOSE_DIMS)
                .map(|k| ws.decode(k))
                .collect();
            head = t2.elapsed();
        }
        let decode = t1.elapsed() - head;
        Ok(Output {
            subtask,
            keyposes,
            timing: Timing {
                prefill,
                decode,
                tokens,
                passes,
                head,
                total: t0.elapsed(),
            },
        })
    }
}

/// The sample with the smallest summed distance to the others.
fn medoid(samples: &[Vec<f32>]) -> &[f32] {
    let dist = |a: &[f32], b: &[f32]| -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt()
    };
    samples
        .iter()
        .min_by(|a, b| {
            let sa: f32 = samples.iter().map(|o| dist(a, o)).sum();
            let sb: f32 = samples.iter().map(|o| dist(b, o)).sum();
            sa.total_cmp(&sb)
        })
        .expect("at least one sample")
}

/// A word drawn from softmax(logits / `temperature`).
fn sample(logits: &Tensor, temperature: f32, rng: &mut ChaCha8Rng) -> candle_core::Result<u32> {
    let l: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    let top = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let p: Vec<f32> = l.iter().map(|v| ((v - top) / temperature).exp()).collect();
    let mut u = rng.gen::<f32>() * p.iter().sum::<f32>();
    for (i, &pi) in p.iter().enumerate() {
        if u < pi {
            return Ok(i as u32);
        }
        u -= pi;
    }
    Ok((p.len() - 1) as u32)
}

/// The probability softmax(logits) gives word `t`.
fn prob(logits: &Tensor, t: u32) -> candle_core::Result<f32> {
    let l: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    let top = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = l.iter().map(|v| (v - top).exp()).sum();
    Ok((l[t as usize] - top).exp() / sum)
}

fn argmax(logits: &Tensor) -> candle_core::Result<u32> {
    logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()
}
