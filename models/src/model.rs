//! The whole model: stem, word embeddings, backbone, and the two heads.
//!
//! Every sequence has one layout, in training and inference alike:
//!
//! ```text
//! <bos> instruction <pad>…   image tokens   <sub> sub-task </sub> <act>
//! └─ max_instruction ──────┘└─ stem ──────┘└─ up to max_subtask ─────┘
//! ```
//!
//! The instruction is padded to a fixed length, so image and sub-task tokens always sit at
//! the same positions. It is padded on the right: word i of the instruction and word i of
//! the sub-task are then always the same distance apart, so copying a phrase is one fixed
//! attention offset. The language head shares the word embedding matrix (tied weights).
//!
//! Instruction and image form the backbone's bidirectional prefix (`backbone.prefix`):
//! "the red block is already in its bowl" needs a block's token to see a bowl that comes
//! later in raster order. The prefix is computed once per decision, and padding (of the
//! instruction, the object slots and the sub-task) is hidden from every token. Checkpoints
//! without a prefix are causal and see padding, as they were trained; their instruction is
//! cached once per episode.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::anchor::Anchor;
use crate::backbone::{self, Backbone};
use crate::head::{ActionHead, HeadConfig};
use crate::keypose::Workspace;
use crate::pointer::{Pointer, Pointing};
use crate::stem::{Stem, StemConfig};
use crate::words::{PiecesConfig, Words};

/// Everything that fixes the shapes of a checkpoint; saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub stem: StemConfig,
    pub backbone: backbone::Config,
    pub head: HeadConfig,
    pub vocab_size: usize,
    /// An open vocabulary's pretrained word pieces (docs/model.md); none: a row per word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<PiecesConfig>,
    /// Instruction tokens including `<bos>`; shorter instructions are padded.
    pub max_instruction: usize,
    /// Sub-task tokens including `<sub>`, `</sub>` and `<act>`.
    pub max_subtask: usize,
    pub workspace: Workspace,
    /// Temperature of the sub-task's words when the closed loop writes it again after
    /// failed steps (0: greedy, as every other time). Chosen on the val split, not trained.
    #[serde(default)]
    pub replan_temperature: f32,
}

impl Config {
    /// The shipped size: up to 32 object tokens, 4 layers of width 128.
    pub fn tiny(vocab_size: usize) -> Self {
        let stem = StemConfig {
            image_height: 320,
            image_width: 160,
            max_objects: 32,
            hidden: 128,
        };
        Self {
            backbone: backbone::Config {
                d_model: 128,
                n_layers: 4,
                n_heads: 4,
                d_ff: 512,
                max_len: 0,
                norm_eps: 1e-5,
                activation: candle_nn::Activation::Relu,
                prefix: 0,
            },
            stem,
            head: HeadConfig {
                samples: 1,
                noise_scale: 1.0,
                pointing: Pointing::Soft,
                hidden: 256,
                blocks: 3,
                keyposes: 2,
                flow_steps: 10,
                decoding: Default::default(),
                block: 4,
                refine_steps: 2,
                confidence: 1.0,
            },
            vocab_size,
            pieces: None,
            max_instruction: 0,
            max_subtask: 0,
            workspace: Workspace::default(),
            replan_temperature: 0.0,
        }
        .with_lengths(24, 24)
    }

    /// This config with room for `max_instruction` and `max_subtask` tokens (the
    /// backbone's length and bidirectional prefix follow).
    pub fn with_lengths(mut self, max_instruction: usize, max_subtask: usize) -> Self {
        self.max_instruction = max_instruction;
        self.max_subtask = max_subtask;
        self.backbone.prefix = max_instruction + self.stem.tokens();
        self.backbone.max_len = self.backbone.prefix + max_subtask;
        self
    }

    /// `<bos>` and the instruction's ids, right-padded to `max_instruction`. Too long an
    /// instruction keeps its first words (the returned flag is then true).
    pub fn instruction_ids(&self, words: &[u32]) -> (Vec<u32>, bool) {
        let n = self.max_instruction;
        let keep = words.len().min(n - 1);
        let mut out = vec![ids::BOS];
        out.extend_from_slice(&words[..keep]);
        out.resize(n, ids::PAD);
        (out, keep < words.len())
    }

    /// Position of the first sub-task token (`<sub>`).
    pub fn subtask_start(&self) -> usize {
        self.max_instruction + self.stem.tokens()
    }
}

/// Token ids the model treats specially (fixed by [`crate::vocab::SPECIALS`]).
pub mod ids {
    pub const PAD: u32 = 0;
    pub const UNK: u32 = 1;
    pub const BOS: u32 = 2;
    pub const SUB: u32 = 3;
    pub const END_SUB: u32 = 4;
    pub const ACT: u32 = 5;
}

#[derive(Clone)]
pub struct Loho {
    stem: Stem,
    words: Words,
    backbone: Backbone,
    pointer: Pointer,
    head: ActionHead,
    cfg: Config,
    device: Device,
    /// The padded instruction of the episode (with a bidirectional prefix it is computed
    /// again with every frame, since it now sees the objects).
    instruction: Vec<u32>,
    /// The object tokens' states (1, N, d) of the frame last observed, and its stem inputs
    /// (1, N, FEATURES), from which the pointers' masks and the anchor are read.
    frame_objects: Option<(Tensor, Tensor)>,
}

impl Loho {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let need = cfg.subtask_start() + cfg.max_subtask;
        if ![0, cfg.subtask_start()].contains(&cfg.backbone.prefix) {
            candle_core::bail!(
                "backbone prefix {} is neither 0 (causal) nor instruction + image ({})",
                cfg.backbone.prefix,
                cfg.subtask_start()
            );
        }
        if cfg.backbone.max_len < need {
            candle_core::bail!(
                "backbone max_len {} < {need} (instruction + image + sub-task)",
                cfg.backbone.max_len
            );
        }
        let d = cfg.backbone.d_model;
        Ok(Self {
            stem: Stem::new(&cfg.stem, d, vb.pp("stem"))?,
            words: Words::new(cfg.vocab_size, d, cfg.pieces.as_ref(), vb.pp("embed"))?,
            backbone: Backbone::new(&cfg.backbone, vb.pp("backbone"))?,
            pointer: Pointer::new(cfg.head.keyposes, d, vb.pp("pointer"))?,
            head: ActionHead::new(&cfg.head, d, vb.pp("head"))?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
            instruction: Vec::new(),
            frame_objects: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn stem(&self) -> &Stem {
        &self.stem
    }
    pub fn head(&self) -> &ActionHead {
        &self.head
    }

    fn embed_ids(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        let t = Tensor::from_vec(ids.to_vec(), (batch, ids.len() / batch), &self.device)?;
        self.words.embed(&t)
    }

    /// Next-token logits of hidden states (…, d_model) (the tied language head), over the
    /// words it scores: index i is word [`Loho::word`]`(i)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.words.logits(hidden)
    }

    /// The word of logit index `i`.
    pub fn word(&self, i: u32) -> u32 {
        self.words.word(i)
    }

    /// The logit index of word `id`, if the language head scores it.
    pub fn index(&self, id: u32) -> Option<u32> {
        self.words.index(id)
    }

    // ---- inference, one episode at a time, with the cache ----

    /// Whether instruction and image tokens see each other and padding is hidden
    /// ([`backbone::Config::prefix`]); the causal checkpoints were trained seeing padding.
    fn bidirectional(&self) -> bool {
        self.cfg.backbone.prefix > 0
    }

    /// Which tokens of padded sequences are real (batch × tokens), for a model that hides
    /// padding: `None` for a causal one.
    fn real(
        &self,
        instructions: &[u32],
        frames: &Tensor,
        subtasks: &[u32],
    ) -> Result<Option<Vec<bool>>> {
        if !self.bidirectional() {
            return Ok(None);
        }
        let b = frames.dim(0)?;
        let present: Vec<Vec<f32>> = Stem::present(frames)?.to_vec2()?;
        let (ni, ns) = (instructions.len() / b, subtasks.len() / b);
        let mut real = Vec::with_capacity(b * (ni + self.cfg.stem.tokens() + ns));
        for (row, present) in present.iter().enumerate() {
            real.extend(
                instructions[row * ni..][..ni]
                    .iter()
                    .map(|&id| id != ids::PAD),
            );
            real.extend(present.iter().map(|&p| p > 0.5));
            real.extend(subtasks[row * ns..][..ns].iter().map(|&id| id != ids::PAD));
        }
        Ok(Some(real))
    }

    /// Starts an episode with the (padded) instruction, cached now in a causal model.
    pub fn start(&mut self, instruction: &[u32]) -> Result<()> {
        if instruction.len() != self.cfg.max_instruction {
            candle_core::bail!("instruction must be padded to {}", self.cfg.max_instruction);
        }
        self.instruction = instruction.to_vec();
        self.words.start()?;
        self.backbone.clear_cache();
        if !self.bidirectional() {
            self.backbone
                .forward(&self.embed_ids(instruction, 1)?, 0, None)?;
        }
        Ok(())
    }

    /// A new frame (from [`StemConfig::frame`](crate::stem::StemConfig::frame)): drops everything after the instruction (all of
    /// the cache with a bidirectional prefix), prefills the image tokens and `<sub>`, and
    /// returns the hidden state (1, d) at `<sub>`.
    pub fn observe(&mut self, frame: &Tensor) -> Result<Tensor> {
        if self.instruction.is_empty() {
            candle_core::bail!("observe before start");
        }
        let img = self.stem.forward(frame)?;
        let sub = self.embed_ids(&[ids::SUB], 1)?;
        let h = if self.bidirectional() {
            self.backbone.clear_cache();
            let x = Tensor::cat(&[&self.embed_ids(&self.instruction, 1)?, &img, &sub], 1)?;
            let real = self.real(&self.instruction, frame, &[ids::SUB])?;
            self.backbone.forward(&x, 0, real.as_deref())?.narrow(
                1,
                self.cfg.max_instruction,
                img.dim(1)? + 1,
            )?
        } else {
            self.backbone.truncate_cache(self.cfg.max_instruction)?;
            let x = Tensor::cat(&[&img, &sub], 1)?;
            self.backbone.forward(&x, self.cfg.max_instruction, None)?
        };
        self.frame_objects = Some((h.narrow(1, 0, img.dim(1)?)?, frame.clone()));
        h.get(0)?.narrow(0, img.dim(1)?, 1)
    }

    /// The pointers' softmax (n, keyposes, N) for hidden states at `<act>` (n, d) on the
    /// frame last observed. With `place_on_flat` (the sub-task places on a zone) the last
    /// keypose's pointer may only pick objects flat on the table, if the frame shows any.
    pub fn pointer_weights(&self, act: &Tensor, place_on_flat: bool) -> Result<Tensor> {
        let (objects, frame) = self.last_frame()?;
        let n = act.dim(0)?;
        let k = self.cfg.head.keyposes;
        let mut allowed = vec![Stem::present(frame)?; k];
        let flat = Stem::flat(frame)?;
        if place_on_flat && flat.sum_all()?.to_scalar::<f32>()? > 0.0 {
            allowed[k - 1] = flat;
        }
        let allowed = Tensor::stack(&allowed, 1)?.repeat((n, 1, 1))?;
        Ok(self
            .pointer
            .weights(act, &objects.repeat((n, 1, 1))?, &allowed)?
            .1)
    }

    /// The action head's condition for hidden states at `<act>` (n, d) when the pointers
    /// weigh the last frame's objects by `w` (n, keyposes, N) — the state plus what they
    /// pick out — and the anchor the head's sample is relative to.
    pub fn act_condition(&self, act: &Tensor, w: &Tensor) -> Result<(Tensor, Anchor)> {
        let (objects, frame) = self.last_frame()?;
        let n = act.dim(0)?;
        let c = self
            .pointer
            .condition(act, &objects.repeat((n, 1, 1))?, w)?;
        Ok((c, Anchor::new(w, &frame.repeat((n, 1, 1))?)?))
    }

    /// The last frame's object states and stem inputs.
    fn last_frame(&self) -> Result<&(Tensor, Tensor)> {
        match &self.frame_objects {
            Some(f) => Ok(f),
            None => candle_core::bail!("no frame observed yet"),
        }
    }

    /// Feeds tokens after the cache, each seeing those before it (as if fed one at a
    /// time), and returns their hidden states (k, d).
    pub fn feed(&mut self, ids: &[u32]) -> Result<Tensor> {
        let offset = self.room(ids.len())?;
        self.backbone
            .forward(&self.embed_ids(ids, 1)?, offset, None)?
            .get(0)
    }

    /// Feeds `committed` tokens after the cache as [`Loho::feed`] does, then a `block`
    /// that sees itself both ways (parallel decoding), in one pass; returns the hidden
    /// states of both (committed + block, d).
    pub fn feed_block(&mut self, committed: &[u32], block: &[u32]) -> Result<Tensor> {
        let ids = [committed, block].concat();
        let offset = self.room(ids.len())?;
        self.backbone
            .forward_block(&self.embed_ids(&ids, 1)?, offset, committed.len())?
            .get(0)
    }

    /// The cache's length, if `n` more sub-task tokens fit after it.
    fn room(&self, n: usize) -> Result<usize> {
        let offset = self.backbone.cached();
        if offset + n > self.cfg.subtask_start() + self.cfg.max_subtask {
            candle_core::bail!("sub-task longer than {} tokens", self.cfg.max_subtask);
        }
        Ok(offset)
    }

    /// Tokens in the cache.
    pub fn cached(&self) -> usize {
        self.backbone.cached()
    }

    /// Drops the cached tokens after the first `len` (a block's trial pass).
    pub fn rewind(&mut self, len: usize) -> Result<()> {
        self.backbone.truncate_cache(len)
    }

    /// Hidden states of a whole sequence recomputed from scratch, without touching the
    /// cache: the baseline that cached decoding is measured and tested against.
    pub fn recompute(
        &mut self,
        instruction: &[u32],
        frame: &Tensor,
        subtask: &[u32],
    ) -> Result<Tensor> {
        let x = self.sequence(instruction, frame, subtask, 1)?;
        let real = self.real(instruction, frame, subtask)?;
        self.backbone.forward_full(&x, real.as_deref())?.get(0)
    }

    /// Embedded sequences (batch, tokens, d): instructions, frames, sub-task ids.
    fn sequence(
        &self,
        instruction: &[u32],
        frames: &Tensor,
        subtask: &[u32],
        batch: usize,
    ) -> Result<Tensor> {
        Tensor::cat(
            &[
                &self.embed_ids(instruction, batch)?,
                &self.stem.forward(frames)?,
                &self.embed_ids(subtask, batch)?,
            ],
            1,
        )
    }

    // ---- training ----

    /// Hidden states (batch, tokens, d) of whole padded sequences, differentiable.
    /// `blocks`: per sequence, the positions of a block of sub-task tokens that see each
    /// other both ways (parallel decoding's training, [`crate::decode`]).
    pub fn forward_train(
        &mut self,
        instructions: &[u32],
        frames: &Tensor,
        subtasks: &[u32],
        blocks: Option<Vec<std::ops::Range<usize>>>,
    ) -> Result<Tensor> {
        let b = frames.dim(0)?;
        let x = self.sequence(instructions, frames, subtasks, b)?;
        let real = self.real(instructions, frames, subtasks)?;
        self.backbone.forward_train(&x, real.as_deref(), blocks)
    }

    /// Action-head conditions (n, d), pointer logits (n, keyposes, N) and anchors at the
    /// `<act>` positions `rows` (flat indices into
    /// `hidden` (b, T, d) from [`Loho::forward_train`]). A keypose with a pointer label
    /// (`labels`: row × keyposes + keypose, object) is conditioned and anchored on that
    /// object alone, as a decision that commits to one object ([`crate::pointer::Pointing`])
    /// will be; the others on the softmax.
    pub fn act_train(
        &self,
        hidden: &Tensor,
        frames: &Tensor,
        rows: &[u32],
        labels: &[(u32, u32)],
    ) -> Result<(Tensor, Tensor, Anchor)> {
        let (b, t, d) = hidden.dims3()?;
        let n = rows.len();
        let dev = hidden.device();
        let act = hidden
            .reshape((b * t, d))?
            .index_select(&Tensor::from_vec(rows.to_vec(), n, dev)?, 0)?;
        let which = Tensor::from_vec(rows.iter().map(|r| r / t as u32).collect(), n, dev)?;
        let objects = hidden
            .narrow(1, self.cfg.max_instruction, self.cfg.stem.tokens())?
            .contiguous()?
            .index_select(&which, 0)?;
        let present = Stem::present(frames)?.index_select(&which, 0)?;
        let (logits, w) = self.pointer.weights(&act, &objects, &present)?;
        let (k, count) = (self.cfg.head.keyposes, objects.dim(1)?);
        let mut keep = vec![1f32; n * k];
        let mut hot = vec![0f32; n * k * count];
        for &(row, object) in labels {
            keep[row as usize] = 0.0;
            hot[row as usize * count + object as usize] = 1.0;
        }
        let w = w
            .broadcast_mul(&Tensor::from_vec(keep, (n, k, 1), dev)?)?
            .add(&Tensor::from_vec(hot, (n, k, count), dev)?)?;
        let c = self.pointer.condition(&act, &objects, &w)?;
        Ok((
            c,
            logits,
            Anchor::new(&w, &frames.index_select(&which, 0)?)?,
        ))
    }
}

/// The dtype of every tensor (f32 on the CPU).
pub const DTYPE: DType = backbone::DTYPE;
