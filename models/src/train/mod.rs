//! Training: batches from a [`Dataset`], the loss, AdamW with warm-up and cosine decay,
//! gradient clipping, and a run folder that can be resumed after a kill.
//!
//! Loss = cross-entropy of the sub-task words (and `</sub>`; where a sample lists
//! [`Sample::alternatives`](crate::data::Sample), −log of the summed probability of every
//! word that starts a right sub-task) + `action_weight` × the
//! flow-matching loss of the head at `<act>`, with `noise_draws` noise draws per sample
//! (the head is cheap next to the backbone, so more draws cost little).
//!
//! One file per part: [`init`] (seeded weights), [`optim`] (AdamW), [`batch`] (samples to
//! tensors and per-token labels, drawn for the next step on a second thread while this
//! one trains), [`labels`] (which object a keypose points at), [`loss`] (the set
//! cross-entropy); this file holds the run: its config, state and [`Trainer`].
//!
//! Everything random (initial weights, batches, observation and flow noise) comes from
//! ChaCha streams of the seed and the step number, so a resumed run draws exactly what an
//! uninterrupted one would have. candle's own CPU generator cannot be seeded, which is why
//! weights are drawn here ([`SeededInit`]) rather than by candle.

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

mod batch;
mod init;
mod labels;
mod loss;
mod optim;
mod parallel;
mod step;

use batch::{Batch, Batcher};
pub(crate) use init::seeded_var_builder;
use optim::AdamW;
pub use parallel::Parallel;
use step::train_on;

use crate::checkpoint::{self, write_atomic};
use crate::data::Dataset;
use crate::model::{Config, Loho};
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
    /// Also train parallel decoding: every sample again as a row with a masked block.
    #[serde(default)]
    pub parallel: Option<Parallel>,
    /// A checkpoint (the fine-tune's start) that parallel decoding and a shorter flow
    /// ([`Self::flow_steps`]) are distilled from; read only where one of them is.
    #[serde(default)]
    pub teacher: Option<std::path::PathBuf>,
    /// Distil the teacher's flow into this many Euler steps (the run's
    /// `head.flow_steps`): from the noise a decision starts at (`head.noise_scale`), the
    /// head's few steps learn to land where the teacher's full flow lands, instead of
    /// matching the flow to the demonstrated actions.
    #[serde(default)]
    pub flow_steps: Option<usize>,
    /// The open vocabulary folder (`loho vocab import`) a new run's frozen piece table
    /// comes from; resumed and fine-tuned runs read it from their checkpoint.
    #[serde(default)]
    pub vocab: Option<std::path::PathBuf>,
    /// Each instruction piece is `<unk>` with this probability, drawn per sample and step:
    /// a model that cannot count on every word reads the others too (a relation word
    /// where the noun alone would do).
    #[serde(default)]
    pub word_dropout: f32,
    /// Widen a fine-tune's instruction window to this many tokens (`<bos>` included; the
    /// `--from` checkpoint's `max_instruction` is the least): the object and sub-task
    /// positions move along with their learned rows, and the new instruction positions
    /// start as the last one, so before any step a bidirectional-prefix model (which
    /// hides padding) decides as its parent did on every instruction that fitted; a causal
    /// one, which sees its padding, sees more of it.
    #[serde(default)]
    pub max_instruction: Option<usize>,
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
            parallel: None,
            teacher: None,
            flow_steps: None,
            vocab: None,
            word_dropout: 0.0,
            max_instruction: None,
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

/// The backbone's learned positions (one row per sequence position).
const POSITIONS: &str = "backbone.pos.weight";

/// `cfg` with an instruction window of `n` tokens; a causal checkpoint stays causal.
fn widened(cfg: Config, n: usize) -> Config {
    let causal = cfg.backbone.prefix == 0;
    let subtask = cfg.max_subtask;
    let mut cfg = cfg.with_lengths(n, subtask);
    if causal {
        cfg.backbone.prefix = 0;
    }
    cfg
}

/// The position table `old` with `fresh.len()` rows put in at row `at` (the end of the
/// instruction window), each the last instruction position's row plus its own small
/// draw: everything after the window keeps its learned row at its new index.
fn widen_positions(old: &Tensor, at: usize, fresh: &Tensor) -> candle_core::Result<Tensor> {
    let (rows, d) = old.dims2()?;
    let k = fresh.dim(0)?;
    let last = old.narrow(0, at - 1, 1)?.broadcast_as((k, d))?;
    Tensor::cat(
        &[
            &old.narrow(0, 0, at)?,
            &(last + fresh)?,
            &old.narrow(0, at, rows - at)?,
        ],
        0,
    )
}

/// What `train.json` holds besides the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub step: usize,
    pub config: TrainConfig,
    /// Wall seconds spent training so far, over all resumptions.
    pub wall_s: f64,
    /// The tasks (letters) of every dataset the run trained on, over all its legs:
    /// `loho eval` labels the others' rows held-out.
    #[serde(default)]
    pub tasks: std::collections::BTreeSet<String>,
}

/// The tasks a checkpoint folder's run trained on (its `train.json`), if it says.
pub fn trained_tasks(dir: &Path) -> Option<std::collections::BTreeSet<String>> {
    let tasks = run_state(dir)?.tasks;
    (!tasks.is_empty()).then_some(tasks)
}

/// The colours (name, RGB) a checkpoint folder's run labelled its objects with (its
/// `train.json`'s `--palette`), if it says: the names its model knows by what they name.
pub fn trained_palette(dir: &Path) -> Option<Vec<(String, [u8; 3])>> {
    let palette = run_state(dir)?.config.palette;
    (!palette.is_empty()).then_some(palette)
}

fn run_state(dir: &Path) -> Option<RunState> {
    let text = std::fs::read_to_string(dir.join(STATE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub const STATE: &str = "train.json";
pub const OPTIMIZER: &str = "optimizer.safetensors";

/// Losses of one step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepStats {
    pub loss: f32,
    pub text: f32,
    pub action: f32,
    /// Cross-entropy of the pointers on the objects the oracle picked and placed on.
    pub pointer: f32,
    /// Cross-entropy of object tokens on their colour words.
    pub colour: f32,
    /// Cross-entropy of the masked block tokens of the parallel-decoding rows.
    pub parallel: f32,
    /// KL from the teacher's next-word distributions to theirs.
    pub distill: f32,
    pub lr: f64,
    pub grad_norm: f32,
    /// Where the step's time went.
    pub phases: Phases,
}

/// A step's wall time by phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Phases {
    /// Drawing the batch: decoding frames, noise, segmentation, labels.
    pub batch: Duration,
    /// The forward pass and the losses.
    pub forward: Duration,
    pub backward: Duration,
    /// Clipping and AdamW.
    pub update: Duration,
}

pub struct Trainer {
    model: Loho,
    batcher: Batcher,
    params: VarMap,
    opt: AdamW,
    /// The next step's batch, drawn on a second thread while this step trains.
    ahead: Option<(usize, Vec<Batch>)>,
    /// Draw batches ahead (the default); off, each step draws its own first.
    pub prefetch: bool,
    /// Threads a step's batch is split over, each training on its shard with its own ops
    /// (1 by default). The step's maths does not depend on it, so it is not saved.
    pub workers: usize,
    pub state: RunState,
    /// The checkpoint parallel decoding and a shorter flow are distilled from.
    teacher: Option<Loho>,
}

/// Sets a new run's frozen piece table from the vocabulary folder `dir`.
fn set_pieces(map: &VarMap, dir: &Path) -> Result<(), ModelError> {
    let path = dir.join(crate::words::PIECES);
    let err = |reason: String| ModelError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let saved = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(|e| err(format!("{e} (made by `loho vocab import`, docs/model.md)")))?;
    let table = saved
        .get(crate::words::TABLE)
        .ok_or_else(|| err(format!("no tensor {}", crate::words::TABLE)))?;
    let data = map.data().lock().expect("var map lock");
    let (_, var) = data
        .iter()
        .find(|(name, _)| checkpoint::frozen(name))
        .ok_or_else(|| err("this model has no piece table".into()))?;
    if table.dims() != var.dims() {
        return Err(err(format!(
            "the table is {:?}, the model's {:?}: a vocabulary folder and its tokenizer go together",
            table.dims(),
            var.dims()
        )));
    }
    var.set(&table.to_dtype(var.dtype())?.to_device(var.device())?)?;
    Ok(())
}

/// A ChaCha stream for one use (`stream`) of one step of a run.
fn step_rng(seed: u64, step: usize, stream: u64) -> ChaCha8Rng {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(stream);
    rng
}

impl Trainer {
    /// A fresh run on `device` with weights drawn from `tc.seed`.
    pub fn new(
        cfg: &Config,
        vocab: Vocab,
        tc: TrainConfig,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (map, vb) = seeded_var_builder(tc.seed, device);
        let model = Loho::new(cfg, vb)?;
        let opt = AdamW::new(&map, tc.weight_decay)?;
        let needs_teacher =
            tc.parallel.as_ref().is_some_and(|p| p.distill > 0.0) || tc.flow_steps.is_some();
        let teacher = match &tc.teacher {
            Some(path) if needs_teacher => {
                let (teacher, words) = checkpoint::load(path, device)?;
                if !vocab.extends(&words) {
                    return Err(ModelError::Data(format!(
                        "the teacher {} has words or ids this run's vocabulary lacks: \
                         learn from the checkpoint the run started from",
                        path.display()
                    )));
                }
                Some(teacher)
            }
            None if needs_teacher => {
                return Err(ModelError::Data(
                    "distillation learns from a teacher checkpoint: fine-tune one (loho \
                     train --from CHECKPOINT)"
                        .into(),
                ))
            }
            _ => None,
        };
        if let Some(dir) = tc.vocab.as_ref().filter(|_| cfg.pieces.is_some()) {
            set_pieces(&map, dir)?;
        }
        Ok(Self {
            teacher,
            model,
            batcher: Batcher::new(cfg, vocab, &tc),
            params: map,
            opt,
            ahead: None,
            prefetch: true,
            workers: 1,
            state: RunState {
                step: 0,
                config: tc,
                wall_s: 0.0,
                tasks: Default::default(),
            },
        })
    }

    /// Continues the run saved in `dir` (weights, optimizer moments, step) on `device`.
    pub fn resume(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let state_path = dir.join(STATE);
        let text = std::fs::read_to_string(&state_path)
            .map_err(|e| ModelError::Data(format!("{}: {e}", state_path.display())))?;
        let state: RunState = serde_json::from_str(&text)
            .map_err(|e| ModelError::Data(format!("{}: {e}", state_path.display())))?;
        let cfg = checkpoint::read_config(dir)?;
        let vocab = Vocab::load(&dir.join(checkpoint::TOKENIZER))?;
        let mut t = Self::new(&cfg, vocab, state.config.clone(), device)?;
        checkpoint::load_weights(&t.params, &dir.join(checkpoint::WEIGHTS))?;
        let opt = dir.join(OPTIMIZER);
        t.opt
            .load(&opt, device)
            .map_err(|e| ModelError::Checkpoint {
                path: opt,
                reason: e.to_string(),
            })?;
        t.state = state;
        Ok(t)
    }

    /// A new run that starts from the weights of checkpoint `from` (its architecture,
    /// vocabulary and decision settings) with fresh optimizer moments, `from` being the
    /// [`TrainConfig::teacher`] unless one is given. With
    /// [`TrainConfig::parallel`] the vocabulary gains `<mask>` (a new embedding row drawn
    /// from the seed; every other weight as saved) and `head.block` the run's block. On an
    /// open vocabulary the head also writes the pieces of `texts` (the new data's sub-tasks,
    /// the palette's names) it did not: their rows are the frozen table's through the
    /// learned projection, so no weight changes shape.
    pub fn fine_tune<'a>(
        from: &Path,
        mut tc: TrainConfig,
        device: &Device,
        texts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ModelError> {
        tc.teacher.get_or_insert_with(|| from.to_path_buf());
        let mut cfg = checkpoint::read_config(from)?;
        let mut vocab = Vocab::load(&from.join(checkpoint::TOKENIZER))?;
        if let Some(p) = cfg.pieces.as_mut() {
            let before = p.writes.len();
            let mut all: std::collections::BTreeSet<u32> = p.writes.iter().copied().collect();
            all.extend(crate::words::writes(&vocab, texts)?);
            p.writes = all.into_iter().collect();
            if p.writes.len() > before {
                tracing::info!(
                    pieces = p.writes.len() - before,
                    "the head writes new pieces"
                );
            }
        }
        if let Some(k) = tc.flow_steps {
            if k == 0 {
                return Err(ModelError::Data(
                    "--flow-steps 0: the flow takes at least one step".into(),
                ));
            }
            cfg.head.flow_steps = k;
        }
        if let Some(p) = &tc.parallel {
            vocab = vocab.with(crate::vocab::MASK)?;
            cfg.vocab_size = vocab.len();
            cfg.head.block = p.block;
            cfg.head.refine_steps = cfg.head.refine_steps.min(p.block);
            cfg.head
                .check_decoding()
                .map_err(|e| ModelError::Data(format!("--parallel: {e}")))?;
        }
        let parent_window = cfg.max_instruction;
        if let Some(n) = tc.max_instruction {
            if n < parent_window {
                return Err(ModelError::Data(format!(
                    "--max-instruction {n}: {} has a window of {parent_window} tokens, and \
                     a window only widens (give {parent_window} or more)",
                    from.display()
                )));
            }
            cfg = widened(cfg, n);
        }
        let mut t = Self::new(&cfg, vocab, tc, device)?;
        // The weights learned the parent's tasks too: its legs count among this run's.
        t.state.tasks = trained_tasks(from).unwrap_or_default();
        let path = from.join(checkpoint::WEIGHTS);
        let err = |reason: String| ModelError::Checkpoint {
            path: path.clone(),
            reason,
        };
        let saved =
            candle_core::safetensors::load(&path, device).map_err(|e| err(e.to_string()))?;
        for (name, var) in t.params.data().lock().expect("var map lock").iter() {
            let old = saved
                .get(name)
                .ok_or_else(|| err(format!("no tensor {name}")))?;
            let old = &old.to_dtype(var.dtype())?;
            let (have, want) = (old.dims().to_vec(), var.dims().to_vec());
            let value = if have == want {
                old.clone()
            } else if name == POSITIONS && have.len() == 2 && have[0] < want[0] {
                let fresh = var
                    .as_tensor()
                    .narrow(0, parent_window, want[0] - have[0])?;
                widen_positions(old, parent_window, &fresh)?
            } else if have.len() == 2 && have[1] == want[1] && have[0] < want[0] {
                // Rows appended to a table (the embedding of new words) keep their draw.
                let new = var.as_tensor().narrow(0, have[0], want[0] - have[0])?;
                Tensor::cat(&[old, &new], 0)?
            } else {
                return Err(err(format!("{name} is {have:?}, this run needs {want:?}")));
            };
            var.set(&value)?;
        }
        Ok(t)
    }

    /// Saves a checkpoint that `loho eval --policy DIR` loads, plus what resuming needs.
    /// `train.json` is written last: a kill before it resumes from the previous save's step
    /// with these newer weights, which only repeats a few batches.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        checkpoint::save(dir, self.model.config(), &self.batcher.vocab, &self.params)?;
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

    /// One optimisation step on a batch drawn for this step number. Everything random
    /// comes from streams of the seed and the step, so the run is the same with or without
    /// [`Trainer::prefetch`], and after a resume.
    pub fn step(&mut self, data: &Dataset) -> Result<StepStats, ModelError> {
        let step = self.state.step;
        let t = Instant::now();
        let batch = match self.ahead.take() {
            Some((s, b)) if s == step => b,
            _ => self.batcher.draw(data, step, 2, self.workers)?,
        };
        let batch_time = t.elapsed();
        let (batcher, prefetch, workers) = (&self.batcher, self.prefetch, self.workers);
        let (result, ahead) = std::thread::scope(|s| {
            let ahead = prefetch.then(|| s.spawn(|| batcher.draw(data, step + 1, 1, workers)));
            let result = train_on(
                &self.model,
                self.teacher.as_ref(),
                &mut self.opt,
                &mut self.state,
                &batch,
            );
            let ahead = ahead.map(|h| h.join().expect("batch thread"));
            (result, ahead)
        });
        if let Some(next) = ahead {
            self.ahead = Some((step + 1, next?));
        }
        let mut stats = result?;
        stats.phases.batch = batch_time;
        Ok(stats)
    }
}
