//! Samples of a dataset as one batch of tensors, with the label of every predicted word,
//! action, pointer and colour.

use std::ops::Range;

use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::labels::pointer_labels;
use super::loss::branches;
use super::*;
use crate::data::Dataset;
use crate::keypose::ActionScale;
use crate::model::ids;
use crate::vocab::MASK;
use crate::ModelError;

/// A batch ready for the model.
pub(super) struct Batch {
    pub(super) instructions: Vec<u32>,
    pub(super) frames: Tensor,
    pub(super) subtasks: Vec<u32>,
    /// (flat row in hidden states, target id) of every predicted word.
    pub(super) text: Vec<(u32, u32)>,
    /// (index into `text`, a word as right there): where an alternative sub-task branches.
    pub(super) also: Vec<(u32, u32)>,
    /// Flat rows of `<act>` and the normalised actions there.
    pub(super) act_rows: Vec<u32>,
    pub(super) actions: Vec<f32>,
    /// (act row × keyposes + keypose, object token) for keyposes on an object.
    pub(super) pointer: Vec<(u32, u32)>,
    /// (flat row of an object token, its colour word).
    pub(super) colour: Vec<(u32, u32)>,
    /// Sequences before the parallel-decoding rows (all of them without those).
    pub(super) ar_rows: usize,
    /// Per sequence, the positions of its block that see each other both ways (empty for
    /// the autoregressive rows); `None` without parallel rows.
    pub(super) blocks: Option<Vec<Range<usize>>>,
    /// (flat row, target) of every masked block token of the parallel rows.
    pub(super) par_text: Vec<(u32, u32)>,
    /// (index into `par_text`, a word as right there), as `also` for `text`.
    pub(super) par_also: Vec<(u32, u32)>,
    /// (index into `par_text`, the autoregressive row that predicts the same word from the
    /// clean words before it): where the teacher's distribution is learnt.
    pub(super) distill: Vec<(u32, u32)>,
}

/// Samples as token ids and encoded keyposes, before they are laid out in rows.
struct Encoded {
    instructions: Vec<u32>,
    subs: Vec<Vec<u32>>,
    alts: Vec<Vec<Vec<u32>>>,
    actions: Vec<f32>,
}

/// What drawing a batch needs besides the model's weights, so that the next step's batch
/// can be drawn on a second thread while the model trains on this one.
pub(super) struct Batcher {
    cfg: Config,
    pub(super) vocab: Vocab,
    tc: TrainConfig,
    /// Standard normal draws that observation noise is cut from at random offsets:
    /// drawing 200 000 fresh normals per frame would cost a tenth of a step.
    noise_table: Vec<f32>,
}

const NOISE_TABLE: usize = 1 << 22;

impl Batcher {
    pub(super) fn new(cfg: &Config, vocab: Vocab, tc: &TrainConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(tc.seed.wrapping_add(1));
        Self {
            cfg: cfg.clone(),
            vocab,
            tc: tc.clone(),
            noise_table: (0..NOISE_TABLE).map(|_| normal(&mut rng)).collect(),
        }
    }

    /// The batch of step `step` in `shards` parts of consecutive samples (one per
    /// training thread): samples and noise drawn from the step's own stream in sample
    /// order, whatever the number of parts; frames segmented on `threads` threads (one
    /// when drawn ahead beside a training step, which has the other core: measured 145
    /// against 166 ms a step with two).
    pub(super) fn draw(
        &self,
        data: &Dataset,
        step: usize,
        threads: usize,
        shards: usize,
    ) -> Result<Vec<Batch>, ModelError> {
        let mut rng = step_rng(self.tc.seed, step, 0);
        let idx: Vec<usize> = (0..self.tc.batch)
            .map(|_| rng.gen_range(0..data.len()))
            .collect();
        let frames = self.frames(data, &idx, &mut rng, threads)?;
        // A seed per sample for its parallel-decoding row and its dropped words; none
        // drawn without them, so such runs draw what they always drew.
        let blocks: Vec<u64> = match self.tc.parallel.is_some() || self.tc.word_dropout > 0.0 {
            true => idx.iter().map(|_| rng.gen()).collect(),
            false => vec![0; idx.len()],
        };
        let per = idx.len().div_ceil(shards.max(1)).max(1);
        idx.chunks(per)
            .zip(frames.chunks(per))
            .zip(blocks.chunks(per))
            .map(|((idx, frames), blocks)| self.batch(data, idx, frames, blocks))
            .collect()
    }

    /// For every object token of a batch's stem inputs (b × N × FEATURES) whose colour is in
    /// the palette: its flat row in sequences of length `total`, and the colour's word.
    fn colour_labels(
        &self,
        objects: &[Vec<Vec<f32>>],
        total: usize,
    ) -> Result<Vec<(u32, u32)>, ModelError> {
        use crate::stem::SLOT_PRESENT;
        let mut words = Vec::new();
        // A name of several pieces (an open vocabulary's "pink": "▁p", "ink") is labelled
        // with its first, the one writing it starts with.
        let open = self.vocab.is_open();
        for (name, rgb) in &self.tc.palette {
            match self.vocab.encode(name)?.as_slice() {
                [id] if *id != ids::UNK => words.push((*id, rgb.map(f32::from))),
                [id, ..] if open => words.push((*id, rgb.map(f32::from))),
                _ => {}
            }
        }
        let start = self.cfg.max_instruction;
        let mut out = Vec::new();
        for (b, frame) in objects.iter().enumerate() {
            for (slot, f) in frame.iter().enumerate() {
                if f[SLOT_PRESENT] < 0.5 {
                    continue;
                }
                let rgb = [0, 1, 2].map(|c| (f[c] + 1.0) * 127.5);
                // The nearest within reach: a large palette (`gen-data --palette-draw`)
                // may hold two colours within reach of one region.
                let off = |p: &[f32; 3]| (0..3).map(|c| (rgb[c] - p[c]).abs()).fold(0.0, f32::max);
                let near = words
                    .iter()
                    .filter(|(_, p)| off(p) <= COLOUR_MATCH)
                    .min_by(|a, b| off(&a.1).total_cmp(&off(&b.1)));
                if let Some((id, _)) = near {
                    out.push(((b * total + start + slot) as u32, *id));
                }
            }
        }
        Ok(out)
    }

    /// The stem inputs of samples `idx`. Noise offsets are drawn in sample order (a
    /// resumed run draws the same); decoding and segmenting then runs on `threads` threads.
    fn frames(
        &self,
        data: &Dataset,
        idx: &[usize],
        rng: &mut ChaCha8Rng,
        threads: usize,
    ) -> Result<Vec<Tensor>, ModelError> {
        let cfg = &self.cfg;
        let offsets: Vec<Option<usize>> = idx
            .iter()
            .map(|_| {
                self.tc.obs_noise.then(|| {
                    let n = cfg.stem.image_height * cfg.stem.image_width;
                    rng.gen_range(0..self.noise_table.len() - 4 * n)
                })
            })
            .collect();
        let jobs: Vec<(usize, Option<usize>)> = idx.iter().copied().zip(offsets).collect();
        crate::par_map(&jobs, threads, |&(i, off)| self.frame(data, i, off))
            .into_iter()
            .collect()
    }

    /// The token ids of samples `idx` (instructions, each sub-task with `<act>` where it
    /// acts, and its alternatives) and their encoded keyposes.
    /// [`TrainConfig::word_dropout`] draws from each sample's seed in `seeds`.
    fn encode(&self, data: &Dataset, idx: &[usize], seeds: &[u64]) -> Result<Encoded, ModelError> {
        let cfg = &self.cfg;
        let mut instructions = Vec::new();
        let mut subs: Vec<Vec<u32>> = Vec::new();
        let mut alts: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut actions = Vec::new();
        for (&i, &seed) in idx.iter().zip(seeds) {
            let s = &data.samples[i];
            let mut words = self.vocab.encode(&s.instruction)?;
            if self.tc.word_dropout > 0.0 {
                // Another stream than the parallel-decoding block's of the same seed.
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5744_524f_5053);
                for w in &mut words {
                    if rng.gen::<f32>() < self.tc.word_dropout {
                        *w = ids::UNK;
                    }
                }
            }
            instructions.extend(cfg.instruction_ids(&words).0);
            let encode = |text: &str| -> Result<Vec<u32>, ModelError> {
                let mut sub = vec![ids::SUB];
                let mut w = self.vocab.encode(text)?;
                w.truncate(cfg.max_subtask - 3);
                sub.extend(w);
                sub.push(ids::END_SUB);
                Ok(sub)
            };
            let mut sub = encode(&s.subtask)?;
            alts.push(
                s.alternatives
                    .iter()
                    .map(|t| encode(t))
                    .collect::<Result<_, _>>()?,
            );
            if !s.keyposes.is_empty() {
                if s.keyposes.len() != cfg.head.keyposes {
                    return Err(ModelError::Data(format!(
                        "sample {i} has {} keyposes, the model {}",
                        s.keyposes.len(),
                        cfg.head.keyposes
                    )));
                }
                sub.push(ids::ACT);
                for k in &s.keyposes {
                    actions.extend(cfg.workspace.encode(k));
                }
            }
            subs.push(sub);
        }
        Ok(Encoded {
            instructions,
            subs,
            alts,
            actions,
        })
    }

    /// Samples `idx` with their stem inputs `frames` as one batch, with every label; with
    /// [`TrainConfig::parallel`], each sample again as a parallel-decoding row whose block
    /// is drawn by its seed in `blocks`.
    fn batch(
        &self,
        data: &Dataset,
        idx: &[usize],
        frames: &[Tensor],
        blocks: &[u64],
    ) -> Result<Batch, ModelError> {
        let cfg = &self.cfg;
        let Encoded {
            mut instructions,
            mut subs,
            alts,
            actions,
        } = self.encode(data, idx, blocks)?;
        let ar_rows = subs.len();
        let parallel = match &self.tc.parallel {
            Some(p) => {
                let mask = self.vocab.id(MASK).ok_or_else(|| {
                    ModelError::Data(format!("parallel training needs a {MASK} token"))
                })?;
                let max_words = cfg.max_subtask - 3;
                let drawn: Vec<parallel::Block> = (subs.iter().zip(blocks))
                    .map(|(sub, &seed)| parallel::draw(sub, p.block, max_words, mask, seed))
                    .collect();
                for (i, b) in drawn.iter().enumerate() {
                    let row = [&subs[i][..=b.start], &b.input].concat();
                    subs.push(row);
                }
                drawn
            }
            None => Vec::new(),
        };
        let sub_len = subs.iter().map(Vec::len).max().unwrap_or(1);
        let total = cfg.subtask_start() + sub_len;
        let start = cfg.subtask_start();
        let mut subtasks = Vec::with_capacity(idx.len() * sub_len);
        let mut text = Vec::new();
        let mut also = Vec::new();
        let mut act_rows = Vec::new();
        let (mut par_text, mut par_also, mut distill) = (Vec::new(), Vec::new(), Vec::new());
        let mut ranges = vec![0..0; ar_rows];
        for (b, block) in parallel.iter().enumerate() {
            let first = start + 1 + block.start;
            ranges.push(first..first + block.input.len());
            // Token i of the block is read from position i − 1: the last clean word's for
            // the first, which is `<sub>` (j = 0) for the first block.
            for (i, &t) in block.target.iter().enumerate() {
                if !block.masked[i] {
                    continue;
                }
                let j = block.start + i;
                let k = par_text.len() as u32;
                par_text.push((((ar_rows + b) * total + start + j) as u32, t));
                // Up to `</sub>`, what the autoregressive row j reads: its alternatives
                // and the teacher's distribution there.
                if j + 1 < subs[b].len() && subs[b][j + 1] == t {
                    par_also.extend(branches(&subs[b], &alts[b], j).map(|w| (k, w)));
                    distill.push((k, (b * total + start + j) as u32));
                }
            }
        }
        for (b, sub) in subs.iter().enumerate() {
            if b >= ar_rows {
                subtasks.extend(sub);
                subtasks.extend(std::iter::repeat_n(ids::PAD, sub_len - sub.len()));
                continue;
            }
            for j in 0..sub.len() {
                let row = (b * total + start + j) as u32;
                match sub.get(j + 1) {
                    Some(&next) if next != ids::ACT => {
                        let k = text.len() as u32;
                        also.extend(branches(sub, &alts[b], j).map(|w| (k, w)));
                        text.push((row, next));
                    }
                    _ => {}
                }
                if sub[j] == ids::ACT {
                    act_rows.push(row);
                }
            }
            subtasks.extend(sub);
            subtasks.extend(std::iter::repeat_n(ids::PAD, sub_len - sub.len()));
        }
        let mut frames = Tensor::cat(frames, 0)?;
        let objects: Vec<Vec<Vec<f32>>> = frames.to_vec3()?;
        let pointer = pointer_labels(cfg, &objects, &act_rows, total, &actions);
        let colour = self.colour_labels(&objects, total)?;
        if !parallel.is_empty() {
            frames = Tensor::cat(&[&frames, &frames], 0)?;
            instructions = instructions.repeat(2);
        }
        Ok(Batch {
            instructions,
            frames,
            subtasks,
            text,
            also,
            act_rows,
            actions,
            pointer,
            colour,
            ar_rows,
            blocks: (!parallel.is_empty()).then_some(ranges),
            par_text,
            par_also,
            distill,
        })
    }

    /// The stem's input for sample `i`, with the benchmark's sensor noise (colour σ = 3,
    /// depth σ = 3 mm) cut from the noise table at `noise` when given: it is added to the
    /// pixels, so the stem segments what a noisy camera would give it.
    fn frame(&self, data: &Dataset, i: usize, noise: Option<usize>) -> Result<Tensor, ModelError> {
        let mut f = data.frame(i)?;
        if let Some(off) = noise {
            let n = f.height.len();
            let (c, z) = self.noise_table[off..off + 4 * n].split_at(3 * n);
            // Rounded half up (`as` saturates at 0 and 255): `round` is a call per pixel.
            for (p, e) in f.rgb.iter_mut().zip(c) {
                *p = (*p as f32 + 3.0 * e + 0.5) as u8;
            }
            // Cells no camera saw stay unseen (NaN): `max` would make them table.
            for (p, e) in f.height.iter_mut().zip(z).filter(|(p, _)| p.is_finite()) {
                *p = (*p + 0.003 * e).max(0.0);
            }
        }
        self.cfg.stem.frame(&f.rgb, &f.height, &Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stem::{FEATURES, SLOT_PRESENT};

    #[test]
    fn word_dropout_turns_instruction_pieces_to_unk_by_each_sample_s_seed() {
        let text = "put the blocks in the bowls with mismatched colors.";
        let vocab = Vocab::build([text, "pick up the red block."]).unwrap();
        let cfg = Config::tiny(vocab.len());
        let sample = crate::data::Sample {
            task: "F".into(),
            seed: 0,
            step: 0,
            instruction: text.into(),
            subtask: "pick up the red block.".into(),
            keyposes: Vec::new(),
            frame: String::new(),
            alternatives: Vec::new(),
            state: None,
        };
        let data = Dataset {
            samples: vec![sample; 2],
            frames: Vec::new(),
        };
        let words = vocab.encode(text).unwrap().len();
        let unks = |p: f32, seeds: &[u64]| -> Vec<usize> {
            let tc = TrainConfig {
                word_dropout: p,
                ..Default::default()
            };
            let vocab = Vocab::build([text, "pick up the red block."]).unwrap();
            let b = Batcher::new(&cfg, vocab, &tc);
            let e = b.encode(&data, &[0, 1], seeds).unwrap();
            e.instructions
                .chunks(cfg.max_instruction)
                .map(|ids| ids[1..=words].iter().filter(|&&i| i == ids::UNK).count())
                .collect()
        };
        assert_eq!(unks(0.0, &[1, 2]), [0, 0]);
        assert_eq!(unks(1.0, &[1, 2]), [words, words]);
        let half = unks(0.5, &[1, 2]);
        assert!(half.iter().all(|&n| n > 0 && n < words), "{half:?}");
        assert_eq!(
            unks(0.5, &[1, 2]),
            half,
            "the same seeds drop the same words"
        );
        let many: Vec<Vec<usize>> = (0..8).map(|s| unks(0.5, &[s, s + 100])).collect();
        assert!(many.iter().any(|m| m != &half), "other seeds, other words");
    }

    #[test]
    fn objects_of_a_palette_colour_are_labelled_with_its_word() {
        let vocab = Vocab::build(["pick up the red block.", "the blue zone."]).unwrap();
        let cfg = Config::tiny(vocab.len());
        let red = vocab.encode("red").unwrap()[0];
        let tc = TrainConfig {
            palette: vec![
                ("red".into(), [255, 87, 89]),
                ("blue".into(), [78, 121, 167]),
                ("mauve".into(), [200, 100, 200]), // not a word of this vocabulary
            ],
            ..Default::default()
        };
        let batcher = Batcher::new(&cfg, vocab, &tc);
        let n = cfg.stem.tokens();
        let mut f = vec![0f32; 2 * n * FEATURES];
        let unit = |c: f32| c / 127.5 - 1.0;
        // Sample 1, slot 2: red with a little noise; slot 3: a bowl's shaded floor (0.8×
        // red, far from every colour); slot 4: mauve, whose word the vocabulary lacks.
        for (slot, rgb) in [
            (2, [252.0, 90.0, 86.0]),
            (3, [204.0, 70.0, 71.0]),
            (4, [200.0, 100.0, 200.0]),
        ] {
            let row = &mut f[(n + slot) * FEATURES..][..FEATURES];
            row[..3].copy_from_slice(&rgb.map(unit));
            row[SLOT_PRESENT] = 1.0;
        }
        let objects: Vec<Vec<Vec<f32>>> = Tensor::from_vec(f, (2, n, FEATURES), &Device::Cpu)
            .unwrap()
            .to_vec3()
            .unwrap();
        let total = cfg.subtask_start() + 5;
        let labels = batcher.colour_labels(&objects, total).unwrap();
        let row = (total + cfg.max_instruction + 2) as u32;
        assert_eq!(labels, vec![(row, red)]);
    }
}
