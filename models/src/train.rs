//! Training: batches from a [`Dataset`], the loss, AdamW with warm-up and cosine decay,
//! gradient clipping, and a run folder that can be resumed after a kill.
//!
//! Loss = cross-entropy of the sub-task words (and `</sub>`; where a sample lists
//! [`Sample::alternatives`](crate::data::Sample), −log of the summed probability of every
//! word that starts a right sub-task) + `action_weight` × the
//! flow-matching loss of the head at `<act>`, with `noise_draws` noise draws per sample
//! (the head is cheap next to the backbone, so more draws cost little).
//!
//! Everything random (initial weights, batches, observation and flow noise) comes from
//! ChaCha streams of the seed and the step number, so a resumed run draws exactly what an
//! uninterrupted one would have. candle's own CPU generator cannot be seeded, which is why
//! weights are drawn here ([`SeededInit`]) rather than by candle.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, write_atomic};
use crate::data::Dataset;
use crate::model::{ids, Config, Loho, DTYPE};
use crate::vocab::Vocab;
use crate::{normal, ModelError};

/// Hyper-parameters of a run; saved in `train.json` so `--resume` continues the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    pub warmup: usize,
    pub weight_decay: f64,
    /// Global gradient-norm limit.
    pub clip: f64,
    pub action_weight: f64,
    /// Flow-matching noise draws per sample.
    pub noise_draws: usize,
    pub seed: u64,
    /// Add the benchmark's observation noise (colour σ 3, depth σ 3 mm) to every frame.
    pub obs_noise: bool,
    /// Colour names and RGB of the scene's objects. An object token whose mean colour is
    /// within [`COLOUR_MATCH`] of one is also trained to predict that word through the tied
    /// language head, so "red" in the text and a red object's token point the same way,
    /// and matching them is one attention hop instead of a binding learned from scratch.
    #[serde(default)]
    pub palette: Vec<(String, [u8; 3])>,
}

/// Largest per-channel difference (0–255) between a region's mean colour and a palette
/// colour for the region to be labelled with it (the shaded floor of a bowl is not).
pub const COLOUR_MATCH: f32 = 20.0;

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 8_000,
            batch: 16,
            lr: 1e-3,
            min_lr: 5e-5,
            warmup: 300,
            weight_decay: 0.01,
            clip: 1.0,
            action_weight: 1.0,
            noise_draws: 4,
            seed: 0,
            obs_noise: true,
            palette: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Linear warm-up, then cosine from `lr` to `min_lr` at `steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = (self.steps.saturating_sub(self.warmup)).max(1) as f64;
        let p = ((step - self.warmup) as f64 / span).min(1.0);
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

/// What `train.json` holds besides the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub step: usize,
    pub config: TrainConfig,
    /// Wall seconds spent training so far, over all resumptions.
    pub wall_s: f64,
}

pub const STATE: &str = "train.json";
pub const OPTIMIZER: &str = "optimizer.safetensors";

/// Losses of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    pub text: f32,
    pub action: f32,
    /// Cross-entropy of the pointers on the objects the oracle picked and placed on.
    pub pointer: f32,
    /// Cross-entropy of object tokens on their colour words.
    pub colour: f32,
    pub lr: f64,
    pub grad_norm: f32,
}

/// A VarMap whose new variables are drawn from a seeded stream, in creation order.
struct SeededInit {
    map: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock");
        if let Some(v) = data.get(name) {
            return Ok(v.as_tensor().clone());
        }
        let n = s.elem_count();
        let mut rng = self.rng.lock().expect("rng lock");
        let values: Vec<f32> = match h {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| (mean + stdev * normal(&mut *rng) as f64) as f32)
                .collect(),
            Init::Uniform { lo, up } => (0..n).map(|_| rng.gen_range(lo..up) as f32).collect(),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(&s) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => (0..n)
                        .map(|_| (std * normal(&mut *rng) as f64) as f32)
                        .collect(),
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.gen_range(-b..b) as f32).collect()
                    }
                }
            }
        };
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no tensor {name}")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("var map lock")
            .contains_key(name)
    }
}

/// New variables drawn from `seed` in creation order, so a run (or a test) is reproducible.
pub(crate) fn seeded_var_builder(seed: u64) -> (VarMap, VarBuilder<'static>) {
    let seeded = SeededInit {
        map: VarMap::new(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
    };
    let map = seeded.map.clone();
    (
        map,
        VarBuilder::from_backend(Box::new(seeded), DTYPE, Device::Cpu),
    )
}

/// AdamW over named variables, with its moments kept so a run can be resumed.
struct AdamW {
    /// (name, variable, first moment, second moment, decayed)
    vars: Vec<(String, Var, Tensor, Tensor, bool)>,
    weight_decay: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    fn new(map: &VarMap, weight_decay: f64) -> candle_core::Result<Self> {
        let data = map.data().lock().expect("var map lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let vars = names
            .into_iter()
            .map(|n| {
                let v = data[n].clone();
                let z = v.zeros_like()?;
                // Matrices decay; biases, norms and gains do not.
                let decayed = v.rank() >= 2;
                Ok((n.clone(), v, z.clone(), z, decayed))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { vars, weight_decay })
    }

    /// One update at (1-based) step `t`; returns the gradient norm before clipping.
    fn step(
        &mut self,
        grads: &GradStore,
        lr: f64,
        t: usize,
        clip: f64,
    ) -> candle_core::Result<f32> {
        let mut sq = 0f32;
        for (_, v, ..) in &self.vars {
            if let Some(g) = grads.get(v) {
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()?;
            }
        }
        let norm = sq.sqrt();
        let scale = if norm as f64 > clip {
            clip / norm as f64
        } else {
            1.0
        };
        let (c1, c2) = (1.0 - BETA1.powi(t as i32), 1.0 - BETA2.powi(t as i32));
        for (_, v, m, s, decayed) in &mut self.vars {
            let Some(g) = grads.get(v) else { continue };
            let g = (g * scale)?;
            *m = ((&*m * BETA1)? + (&g * (1.0 - BETA1))?)?;
            *s = ((&*s * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let mut update = ((&*m / c1)? / ((&*s / c2)?.sqrt()? + EPS)?)?;
            if *decayed {
                update = (update + (v.as_tensor() * self.weight_decay)?)?;
            }
            v.set(&(v.as_tensor() - (update * lr)?)?)?;
        }
        Ok(norm)
    }

    fn save(&self, path: &Path) -> candle_core::Result<()> {
        let mut out = HashMap::new();
        for (n, _, m, s, _) in &self.vars {
            out.insert(format!("m.{n}"), m.clone());
            out.insert(format!("v.{n}"), s.clone());
        }
        candle_core::safetensors::save(&out, path)
    }

    fn load(&mut self, path: &Path, device: &Device) -> candle_core::Result<()> {
        let mut saved = candle_core::safetensors::load(path, device)?;
        for (n, v, m, s, _) in &mut self.vars {
            for (key, slot) in [(format!("m.{n}"), &mut *m), (format!("v.{n}"), &mut *s)] {
                let t = saved
                    .remove(&key)
                    .ok_or_else(|| candle_core::Error::CannotFindTensor { path: key.clone() })?;
                if t.shape() != v.shape() {
                    candle_core::bail!("optimizer tensor {key} has shape {:?}", t.shape());
                }
                *slot = t;
            }
        }
        Ok(())
    }
}

/// A batch ready for the model.
struct Batch {
    instructions: Vec<u32>,
    frames: Tensor,
    subtasks: Vec<u32>,
    /// (flat row in hidden states, target id) of every predicted word.
    text: Vec<(u32, u32)>,
    /// (index into `text`, a word as right there): where an alternative sub-task branches.
    also: Vec<(u32, u32)>,
    /// Flat rows of `<act>` and the normalised actions there.
    act_rows: Vec<u32>,
    actions: Vec<f32>,
    /// (act row × keyposes + keypose, object token) for keyposes on an object.
    pointer: Vec<(u32, u32)>,
    /// (flat row of an object token, its colour word).
    colour: Vec<(u32, u32)>,
}

pub struct Trainer {
    model: Loho,
    vocab: Vocab,
    params: VarMap,
    opt: AdamW,
    /// Standard normal draws that observation noise is cut from at random offsets:
    /// drawing 200 000 fresh normals per frame would cost a tenth of a step.
    noise_table: Vec<f32>,
    pub state: RunState,
}

const NOISE_TABLE: usize = 1 << 22;

impl Trainer {
    /// A fresh run with weights drawn from `tc.seed`.
    pub fn new(cfg: &Config, vocab: Vocab, tc: TrainConfig) -> Result<Self, ModelError> {
        let (map, vb) = seeded_var_builder(tc.seed);
        let model = Loho::new(cfg, vb)?;
        let opt = AdamW::new(&map, tc.weight_decay)?;
        let mut rng = ChaCha8Rng::seed_from_u64(tc.seed.wrapping_add(1));
        let noise_table = (0..NOISE_TABLE).map(|_| normal(&mut rng)).collect();
        Ok(Self {
            model,
            vocab,
            params: map,
            opt,
            noise_table,
            state: RunState {
                step: 0,
                config: tc,
                wall_s: 0.0,
            },
        })
    }

    /// Continues the run saved in `dir` (weights, optimizer moments, step).
    pub fn resume(dir: &Path) -> Result<Self, ModelError> {
        let state_path = dir.join(STATE);
        let text = std::fs::read_to_string(&state_path)
            .map_err(|e| ModelError::Data(format!("{}: {e}", state_path.display())))?;
        let state: RunState = serde_json::from_str(&text)
            .map_err(|e| ModelError::Data(format!("{}: {e}", state_path.display())))?;
        let cfg = checkpoint::read_config(dir)?;
        let vocab = Vocab::load(&dir.join(checkpoint::TOKENIZER))?;
        let mut t = Self::new(&cfg, vocab, state.config.clone())?;
        let weights = dir.join(checkpoint::WEIGHTS);
        t.params
            .load(&weights)
            .map_err(|e| ModelError::Checkpoint {
                path: weights.clone(),
                reason: e.to_string(),
            })?;
        let opt = dir.join(OPTIMIZER);
        t.opt
            .load(&opt, &Device::Cpu)
            .map_err(|e| ModelError::Checkpoint {
                path: opt,
                reason: e.to_string(),
            })?;
        t.state = state;
        Ok(t)
    }

    /// Saves a checkpoint that `loho eval --policy DIR` loads, plus what resuming needs.
    /// `train.json` is written last: a kill before it resumes from the previous save's step
    /// with these newer weights, which only repeats a few batches.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        checkpoint::save(dir, self.model.config(), &self.vocab, &self.params)?;
        write_atomic(&dir.join(OPTIMIZER), |p| {
            self.opt.save(p).map_err(|e| ModelError::Checkpoint {
                path: p.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        write_atomic(&dir.join(STATE), |p| {
            let text = serde_json::to_string_pretty(&self.state)
                .map_err(|e| ModelError::Data(e.to_string()))?;
            std::fs::write(p, text + "\n").map_err(|e| ModelError::Data(e.to_string()))
        })
    }

    /// One optimisation step on a batch drawn for this step number.
    pub fn step(&mut self, data: &Dataset) -> Result<StepStats, ModelError> {
        let tc = self.state.config.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(
            tc.seed ^ (self.state.step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let idx: Vec<usize> = (0..tc.batch)
            .map(|_| rng.gen_range(0..data.len()))
            .collect();
        let batch = self.batch(data, &idx, &mut rng)?;
        let (text, colour, action, pointer) = self.losses(&batch, &mut rng)?;
        let mut loss = text.clone();
        if let Some(c) = &colour {
            loss = (loss + c)?;
        }
        for extra in [&action, &pointer].into_iter().flatten() {
            loss = (loss + (extra * tc.action_weight)?)?;
        }
        let grads = loss.backward()?;
        let lr = tc.lr_at(self.state.step);
        self.state.step += 1;
        let grad_norm = self.opt.step(&grads, lr, self.state.step, tc.clip)?;
        Ok(StepStats {
            loss: loss.to_scalar()?,
            text: text.to_scalar()?,
            action: match action {
                Some(a) => a.to_scalar()?,
                None => 0.0,
            },
            pointer: match pointer {
                Some(p) => p.to_scalar()?,
                None => 0.0,
            },
            colour: match colour {
                Some(c) => c.to_scalar()?,
                None => 0.0,
            },
            lr,
            grad_norm,
        })
    }

    /// The losses of a batch: text, colour (`None` without labelled objects), action and
    /// pointer (`None` when the batch holds only "done" samples, or no keypose on an object).
    #[allow(clippy::type_complexity)]
    fn losses(
        &mut self,
        b: &Batch,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>, Option<Tensor>), ModelError> {
        let dev = Device::Cpu;
        let h = self
            .model
            .forward_train(&b.instructions, &b.frames, &b.subtasks)?;
        let (n, t, d) = h.dims3()?;
        let flat = h.reshape((n * t, d))?;
        let rows: Vec<u32> = b.text.iter().map(|r| r.0).collect();
        let targets: Vec<u32> = b.text.iter().map(|r| r.1).collect();
        let nt = rows.len();
        let logits = self
            .model
            .logits(&flat.index_select(&Tensor::from_vec(rows, nt, &dev)?, 0)?)?;
        let text = set_cross_entropy(&logits, &targets, &b.also)?;
        let colour = if b.colour.is_empty() {
            None
        } else {
            let nc = b.colour.len();
            let rows = Tensor::from_vec(b.colour.iter().map(|c| c.0).collect(), nc, &dev)?;
            let words = Tensor::from_vec(b.colour.iter().map(|c| c.1).collect(), nc, &dev)?;
            let logits = self.model.logits(&flat.index_select(&rows, 0)?)?;
            Some(candle_nn::loss::cross_entropy(&logits, &words)?)
        };
        let na = b.act_rows.len();
        if na == 0 {
            return Ok((text, colour, None, None));
        }
        let (cond, pointer_logits, anchor) =
            self.model
                .act_train(&h, &b.frames, &b.act_rows, &b.pointer)?;
        let pointer = if b.pointer.is_empty() {
            None
        } else {
            let (_, k, objects) = pointer_logits.dims3()?;
            let np = b.pointer.len();
            let which = Tensor::from_vec(b.pointer.iter().map(|p| p.0).collect(), np, &dev)?;
            let target = Tensor::from_vec(b.pointer.iter().map(|p| p.1).collect(), np, &dev)?;
            let chosen = pointer_logits
                .reshape((na * k, objects))?
                .index_select(&which, 0)?;
            Some(candle_nn::loss::cross_entropy(&chosen, &target)?)
        };
        let draws = self.state.config.noise_draws.max(1);
        let dims = self.model.config().head.action_dims();
        let cond = cond.repeat((draws, 1))?;
        let mut target = b.actions.clone();
        for (row, action) in target.chunks_mut(dims).enumerate() {
            anchor.relative(row, action);
        }
        let target = Tensor::from_vec(target, (na, dims), &dev)?.repeat((draws, 1))?;
        let m = na * draws;
        let noise: Vec<f32> = (0..m * dims).map(|_| normal(rng)).collect();
        let times: Vec<f32> = (0..m).map(|_| rng.gen::<f32>()).collect();
        let action = self.model.head().loss(
            &cond,
            &target,
            &Tensor::from_vec(noise, (m, dims), &dev)?,
            &Tensor::from_vec(times, m, &dev)?,
        )?;
        Ok((text, colour, Some(action), pointer))
    }

    /// The stem's input for sample `i`, with the benchmark's sensor noise (colour σ = 3,
    /// depth σ = 3 mm) cut from the noise table at `noise` when given: it is added to the
    /// pixels, so the stem segments what a noisy camera would give it.
    fn frame(&self, data: &Dataset, i: usize, noise: Option<usize>) -> Result<Tensor, ModelError> {
        let mut f = data.frame(i)?;
        if let Some(off) = noise {
            let n = f.height.len();
            let (c, z) = self.noise_table[off..off + 4 * n].split_at(3 * n);
            for (p, e) in f.rgb.iter_mut().zip(c) {
                *p = (*p as f32 + 3.0 * e).round().clamp(0.0, 255.0) as u8;
            }
            for (p, e) in f.height.iter_mut().zip(z) {
                *p = (*p + 0.003 * e).max(0.0);
            }
        }
        self.model.stem().frame(&f.rgb, &f.height, &Device::Cpu)
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
        for (name, rgb) in &self.state.config.palette {
            match self.vocab.encode(name)?.as_slice() {
                [id] if *id != ids::UNK => words.push((*id, rgb.map(f32::from))),
                _ => {}
            }
        }
        let start = self.model.config().max_instruction;
        let mut out = Vec::new();
        for (b, frame) in objects.iter().enumerate() {
            for (slot, f) in frame.iter().enumerate() {
                if f[SLOT_PRESENT] < 0.5 {
                    continue;
                }
                let rgb = [0, 1, 2].map(|c| (f[c] + 1.0) * 127.5);
                let near = words
                    .iter()
                    .find(|(_, p)| (0..3).all(|c| (rgb[c] - p[c]).abs() <= COLOUR_MATCH));
                if let Some((id, _)) = near {
                    out.push(((b * total + start + slot) as u32, *id));
                }
            }
        }
        Ok(out)
    }

    fn batch(
        &self,
        data: &Dataset,
        idx: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<Batch, ModelError> {
        let cfg = self.model.config().clone();
        let mut instructions = Vec::new();
        let mut subs: Vec<Vec<u32>> = Vec::new();
        let mut alts: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut actions = Vec::new();
        // Noise offsets are drawn in sample order (a resumed run draws the same); decoding
        // and segmenting the frames, a tenth of a step, then runs on two threads.
        let offsets: Vec<Option<usize>> = idx
            .iter()
            .map(|_| {
                self.state.config.obs_noise.then(|| {
                    let n = cfg.stem.image_height * cfg.stem.image_width;
                    rng.gen_range(0..self.noise_table.len() - 4 * n)
                })
            })
            .collect();
        let jobs: Vec<(usize, Option<usize>)> = idx.iter().copied().zip(offsets).collect();
        let (first, second) = jobs.split_at(jobs.len().div_ceil(2));
        let make = |part: &[(usize, Option<usize>)]| -> Result<Vec<Tensor>, ModelError> {
            part.iter()
                .map(|&(i, off)| self.frame(data, i, off))
                .collect()
        };
        let frames = std::thread::scope(|s| {
            let other = s.spawn(|| make(second));
            let mut a = make(first)?;
            a.extend(other.join().expect("frame thread")?);
            Ok::<_, ModelError>(a)
        })?;
        for &i in idx {
            let s = &data.samples[i];
            let words = self.vocab.encode(&s.instruction)?;
            instructions.extend(self.model.instruction_ids(&words).0);
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
        let sub_len = subs.iter().map(Vec::len).max().unwrap_or(1);
        let total = cfg.subtask_start() + sub_len;
        let start = cfg.subtask_start();
        let mut subtasks = Vec::with_capacity(idx.len() * sub_len);
        let mut text = Vec::new();
        let mut also = Vec::new();
        let mut act_rows = Vec::new();
        for (b, sub) in subs.iter().enumerate() {
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
        let frames = Tensor::cat(&frames, 0)?;
        let objects: Vec<Vec<Vec<f32>>> = frames.to_vec3()?;
        let pointer = pointer_labels(&cfg, &objects, &act_rows, total, &actions);
        let colour = self.colour_labels(&objects, total)?;
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
        })
    }
}

/// The words alternatives put at `j + 1` where they agree with `sub` up to `j` and differ
/// there: after the branch the sub-task is taught as written, so each alternative's
/// remaining words (the bowl that matches the block) are not rewarded out of context.
fn branches<'a>(sub: &'a [u32], alts: &'a [Vec<u32>], j: usize) -> impl Iterator<Item = u32> + 'a {
    alts.iter().filter_map(move |a| {
        let next = *a.get(j + 1)?;
        (a[..=j] == sub[..=j] && next != sub[j + 1]).then_some(next)
    })
}

/// Cross-entropy where a row may have more than one right word: −log of their summed
/// probability. With one right word per row it is the usual cross-entropy.
fn set_cross_entropy(
    logits: &Tensor,
    right: &[u32],
    also: &[(u32, u32)],
) -> candle_core::Result<Tensor> {
    let (n, v) = logits.dims2()?;
    let mut mask = vec![-1e9f32; n * v];
    let rows = right.iter().enumerate().map(|(r, &w)| (r as u32, w));
    for (r, w) in rows.chain(also.iter().copied()) {
        mask[r as usize * v + w as usize] = 0.0;
    }
    let mask = Tensor::from_vec(mask, (n, v), logits.device())?;
    let right = logits.add(&mask)?.log_sum_exp(1)?;
    (logits.log_sum_exp(1)? - right)?.mean_all()
}

/// Within this distance (m, in 3-D, to a region's centroid at its top) a keypose is on that
/// object: a pick is on the block's top face, a place on a block it stacks on.
const ON_OBJECT: f64 = 0.04;

/// A keypose is over an object's footprint within this distance (m) of its centroid, or
/// within half its bounding box if that is larger.
const FOOTPRINT: f64 = 0.02;

/// An object token's centroid in the workspace (m), from its ±1 stem features.
fn object_xy(cfg: &Config, f: &[f32]) -> (f64, f64) {
    use crate::stem::{SLOT_X, SLOT_Y};
    let ws = &cfg.workspace;
    let at = |v: f32, r: [f64; 2]| (v as f64 + 1.0) * (r[1] - r[0]) / 2.0 + r[0];
    (at(f[SLOT_X], ws.x), at(f[SLOT_Y], ws.y))
}

/// The pointer targets of a batch with stem inputs `objects` (b × N × FEATURES): for each
/// `<act>` row and keypose, the nearest object token when it is within [`ON_OBJECT`], or
/// else the object it rests on ([`support`]: a place on a zone stands a block's height
/// above the zone's paint, too far for the first rule). Keyposes over open table (a spot
/// in an area) get no pointer label.
fn pointer_labels(
    cfg: &Config,
    objects: &[Vec<Vec<f32>>],
    act_rows: &[u32],
    total: usize,
    actions: &[f32],
) -> Vec<(u32, u32)> {
    use crate::stem::{SLOT_PRESENT, SLOT_TOP};
    let ws = &cfg.workspace;
    let dims = crate::head::KEYPOSE_DIMS;
    let k = cfg.head.keyposes;
    let mut out = Vec::new();
    for (a, &row) in act_rows.iter().enumerate() {
        let frame = &objects[row as usize / total];
        for j in 0..k {
            let pose = ws.decode(&actions[(a * k + j) * dims..][..dims]);
            let dist = |f: &Vec<f32>| {
                let (x, y) = object_xy(cfg, f);
                let (dx, dy) = (x - pose.x, y - pose.y);
                let dz = f[SLOT_TOP] as f64 * 0.1 - pose.z;
                (dx * dx + dy * dy + dz * dz).sqrt()
            };
            let nearest = frame
                .iter()
                .enumerate()
                .filter(|(_, f)| f[SLOT_PRESENT] > 0.5)
                .map(|(i, f)| (i, dist(f)))
                .min_by(|x, y| x.1.total_cmp(&y.1));
            let label = match nearest {
                Some((i, d)) if d <= ON_OBJECT => Some(i),
                _ => support(cfg, frame, &pose),
            };
            if let Some(i) = label {
                out.push(((a * k + j) as u32, i as u32));
            }
        }
    }
    out
}

/// The object a keypose rests on: the highest one whose footprint holds its x, y and whose
/// top is below it.
fn support(cfg: &Config, frame: &[Vec<f32>], pose: &crate::Keypose) -> Option<usize> {
    use crate::stem::{SLOT_PRESENT, SLOT_TOP};
    // Metres per heightmap pixel (square pixels: the image spans the workspace).
    let pixel = (cfg.workspace.x[1] - cfg.workspace.x[0]) / cfg.stem.image_width as f64;
    frame
        .iter()
        .enumerate()
        .filter(|(_, f)| f[SLOT_PRESENT] > 0.5)
        .filter(|(_, f)| {
            let (x, y) = object_xy(cfg, f);
            let (dx, dy) = (x - pose.x, y - pose.y);
            // Bounding box rows and columns, in units of 40 px (`Object::features`).
            let reach = FOOTPRINT.max(f[7].max(f[8]) as f64 * 40.0 * pixel / 2.0);
            (dx * dx + dy * dy).sqrt() <= reach && (f[SLOT_TOP] as f64) * 0.1 < pose.z
        })
        .max_by(|a, b| a.1[SLOT_TOP].total_cmp(&b.1[SLOT_TOP]))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keypose::Keypose;
    use crate::stem::{FEATURES, SLOT_PRESENT, SLOT_TOP, SLOT_X, SLOT_Y};

    #[test]
    fn an_alternative_is_right_only_where_it_branches() {
        // <sub> pick red on red </sub> vs <sub> pick blue on blue </sub>: blue is as right
        // as red after "pick", and nowhere else (the second "blue" follows "red").
        let (pick, red, blue, on) = (10, 11, 12, 13);
        let sub = [ids::SUB, pick, red, on, red, ids::END_SUB];
        let alts = [vec![ids::SUB, pick, blue, on, blue, ids::END_SUB]];
        let at: Vec<Vec<u32>> = (0..sub.len() - 1)
            .map(|j| branches(&sub, &alts, j).collect())
            .collect();
        assert_eq!(at, [vec![], vec![blue], vec![], vec![], vec![]]);
    }

    #[test]
    fn set_cross_entropy_sums_the_right_words() {
        let logits = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.0, -1.0, 3.0]], &Device::Cpu).unwrap();
        let p: Vec<Vec<f32>> = candle_nn::ops::softmax(&logits, 1)
            .unwrap()
            .to_vec2()
            .unwrap();
        let plain = set_cross_entropy(&logits, &[1, 2], &[]).unwrap();
        let want = candle_nn::loss::cross_entropy(
            &logits,
            &Tensor::new(&[1u32, 2], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let (plain, want) = (
            plain.to_scalar::<f32>().unwrap(),
            want.to_scalar::<f32>().unwrap(),
        );
        assert!((plain - want).abs() < 1e-6, "{plain} vs {want}");
        // Row 0 also accepts word 0: −log(p00 + p01); row 1 unchanged.
        let set = set_cross_entropy(&logits, &[1, 2], &[(0, 0)])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (-(p[0][0] + p[0][1]).ln() - p[1][2].ln()) / 2.0;
        assert!((set - want).abs() < 1e-6, "{set} vs {want}");
        assert!(set < plain);
    }

    #[test]
    fn a_keypose_on_an_object_points_at_it_and_one_in_the_open_at_none() {
        let cfg = Config::tiny(10);
        let n = cfg.stem.tokens();
        let mut f = vec![0f32; n * FEATURES];
        // Object 1 at the workspace centre, 4 cm tall; object 0 at x 0.3, y −0.4.
        for (i, (x, y, top)) in [(-0.8f32, -0.8f32, 0.4f32), (0.0, 0.0, 0.4)]
            .iter()
            .enumerate()
        {
            let row = &mut f[i * FEATURES..][..FEATURES];
            (row[SLOT_X], row[SLOT_Y], row[SLOT_TOP], row[SLOT_PRESENT]) = (*x, *y, *top, 1.0);
        }
        let objects: Vec<Vec<Vec<f32>>> = Tensor::from_vec(f, (1, n, FEATURES), &Device::Cpu)
            .unwrap()
            .to_vec3()
            .unwrap();
        let pose = |x, y, z| Keypose {
            x,
            y,
            z,
            yaw: 0.0,
            suction: true,
        };
        let mut actions = Vec::new();
        actions.extend(cfg.workspace.encode(&pose(0.51, 0.01, 0.045)));
        actions.extend(cfg.workspace.encode(&pose(0.375, 0.25, 0.02)));
        let total = cfg.subtask_start() + 5;
        let labels = pointer_labels(
            &cfg,
            &objects,
            &[(cfg.subtask_start() + 4) as u32],
            total,
            &actions,
        );
        assert_eq!(
            labels,
            vec![(0, 1)],
            "the pick is on object 1, the place on nothing"
        );
    }

    #[test]
    fn a_place_over_a_zone_points_at_the_zone_or_the_block_in_it() {
        let cfg = Config::tiny(10);
        let n = cfg.stem.tokens();
        let mut f = vec![0f32; n * FEATURES];
        // Object 0: a zone at the workspace centre (1 mm, a 52 px box); object 1: a block
        // 4 cm tall at x 0.56 inside it; object 2: a block outside it.
        for (i, (x, y, top, extent)) in [
            (0.0f32, 0.0f32, 0.01f32, 1.3f32),
            (0.24, 0.0, 0.4, 0.35),
            (-0.8, 0.5, 0.4, 0.35),
        ]
        .iter()
        .enumerate()
        {
            let row = &mut f[i * FEATURES..][..FEATURES];
            (row[SLOT_X], row[SLOT_Y], row[SLOT_TOP], row[SLOT_PRESENT]) = (*x, *y, *top, 1.0);
            (row[7], row[8]) = (*extent, *extent);
        }
        let objects: Vec<Vec<Vec<f32>>> = Tensor::from_vec(f, (1, n, FEATURES), &Device::Cpu)
            .unwrap()
            .to_vec3()
            .unwrap();
        let pose = |x, y, z| Keypose {
            x,
            y,
            z,
            yaw: 0.0,
            suction: false,
        };
        let total = cfg.subtask_start() + 5;
        let act = [(cfg.subtask_start() + 4) as u32];
        let label = |place: Keypose| {
            let mut actions = Vec::new();
            actions.extend(cfg.workspace.encode(&pose(0.3, 0.25, 0.04)));
            actions.extend(cfg.workspace.encode(&place));
            pointer_labels(&cfg, &objects, &act, total, &actions)
        };
        // 4 cm off the zone's centre, a block's height above its paint: the zone.
        assert_eq!(label(pose(0.5, 0.04, 0.06)), vec![(0, 2), (1, 0)]);
        // On the block in the zone, a block's height above its top: the block.
        assert_eq!(label(pose(0.56, 0.005, 0.085)), vec![(0, 2), (1, 1)]);
        // Beside the zone, over bare table: nothing.
        assert_eq!(label(pose(0.5, 0.3, 0.04)), vec![(0, 2)]);
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
        let trainer = Trainer::new(&cfg, vocab, tc).unwrap();
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
        let labels = trainer.colour_labels(&objects, total).unwrap();
        let row = (total + cfg.max_instruction + 2) as u32;
        assert_eq!(labels, vec![(row, red)]);
    }
}
