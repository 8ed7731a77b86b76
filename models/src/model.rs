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
//! the same positions and the instruction's cache is reused for every frame of an episode.
//! It is padded on the right: word i of the instruction and word i of the sub-task are then
//! always the same distance apart, so copying a phrase is one fixed attention offset. The language head shares the word embedding matrix (tied weights).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::backbone::{self, embedding, Backbone};
use crate::head::{ActionHead, HeadConfig, KEYPOSE_DIMS};
use crate::keypose::Workspace;
use crate::pointer::Pointer;
use crate::stem::{Stem, StemConfig};

/// Everything that fixes the shapes of a checkpoint; saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub stem: StemConfig,
    pub backbone: backbone::Config,
    pub head: HeadConfig,
    pub vocab_size: usize,
    /// Instruction tokens including `<bos>`; shorter instructions are padded.
    pub max_instruction: usize,
    /// Sub-task tokens including `<sub>`, `</sub>` and `<act>`.
    pub max_subtask: usize,
    pub workspace: Workspace,
}

impl Config {
    /// The shipped size: up to 32 object tokens, 4 layers of width 128.
    pub fn tiny(vocab_size: usize) -> Self {
        let (max_instruction, max_subtask) = (24, 24);
        let stem = StemConfig {
            image_height: 320,
            image_width: 160,
            table_rgb: [51, 51, 51],
            max_objects: 32,
            hidden: 128,
        };
        Self {
            backbone: backbone::Config {
                d_model: 128,
                n_layers: 4,
                n_heads: 4,
                d_ff: 512,
                max_len: max_instruction + stem.tokens() + max_subtask,
                norm_eps: 1e-5,
                activation: candle_nn::Activation::Relu,
            },
            stem,
            head: HeadConfig {
                samples: 1,
                noise_scale: 1.0,
                hidden: 256,
                blocks: 3,
                keyposes: 2,
                flow_steps: 10,
            },
            vocab_size,
            max_instruction,
            max_subtask,
            workspace: Workspace::default(),
        }
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

pub struct Loho {
    stem: Stem,
    embed: Embedding,
    backbone: Backbone,
    pointer: Pointer,
    head: ActionHead,
    cfg: Config,
    device: Device,
    /// The object tokens' states (1, N, d) of the frame last observed, which are real,
    /// which lie flat (zones), and their centroids.
    frame_objects: Option<(Tensor, Tensor, Tensor, Tensor)>,
}

impl Loho {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let need = cfg.subtask_start() + cfg.max_subtask;
        if cfg.backbone.max_len < need {
            candle_core::bail!(
                "backbone max_len {} < {need} (instruction + image + sub-task)",
                cfg.backbone.max_len
            );
        }
        let d = cfg.backbone.d_model;
        Ok(Self {
            stem: Stem::new(&cfg.stem, d, vb.pp("stem"))?,
            embed: embedding(cfg.vocab_size, d, vb.pp("embed"))?,
            backbone: Backbone::new(&cfg.backbone, vb.pp("backbone"))?,
            pointer: Pointer::new(cfg.head.keyposes, d, vb.pp("pointer"))?,
            head: ActionHead::new(&cfg.head, d, vb.pp("head"))?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
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

    /// `<bos>` and the instruction's ids, right-padded to `max_instruction`. Too long an
    /// instruction keeps its first words (the returned flag is then true).
    pub fn instruction_ids(&self, words: &[u32]) -> (Vec<u32>, bool) {
        let n = self.cfg.max_instruction;
        let keep = words.len().min(n - 1);
        let mut out = vec![ids::BOS];
        out.extend_from_slice(&words[..keep]);
        out.resize(n, ids::PAD);
        (out, keep < words.len())
    }

    fn embed_ids(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        let t = Tensor::from_vec(ids.to_vec(), (batch, ids.len() / batch), &self.device)?;
        self.embed.forward(&t)
    }

    /// Next-token logits of hidden states (…, d_model) (the tied language head).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden.broadcast_matmul(&self.embed.embeddings().t()?)
    }

    // ---- inference, one episode at a time, with the cache ----

    /// Starts an episode: caches the (padded) instruction.
    pub fn start(&mut self, instruction: &[u32]) -> Result<()> {
        if instruction.len() != self.cfg.max_instruction {
            candle_core::bail!("instruction must be padded to {}", self.cfg.max_instruction);
        }
        self.backbone.clear_cache();
        self.backbone.forward(&self.embed_ids(instruction, 1)?, 0)?;
        Ok(())
    }

    /// A new frame (from [`Stem::frame`]): drops everything after the instruction, prefills the image
    /// tokens and `<sub>`, and returns the hidden state (1, d) at `<sub>`.
    pub fn observe(&mut self, frame: &Tensor) -> Result<Tensor> {
        self.backbone.truncate_cache(self.cfg.max_instruction)?;
        let img = self.stem.forward(frame)?;
        let x = Tensor::cat(&[&img, &self.embed_ids(&[ids::SUB], 1)?], 1)?;
        let h = self.backbone.forward(&x, self.cfg.max_instruction)?;
        self.frame_objects = Some((
            h.narrow(1, 0, img.dim(1)?)?,
            Stem::present(frame)?,
            Stem::flat(frame)?,
            Stem::xy(frame)?,
        ));
        h.get(0)?.narrow(0, x.dim(1)? - 1, 1)
    }

    /// The action head's condition for hidden states at `<act>` (n, d) on the frame last
    /// observed — the state plus what the pointers pick out of its objects — and the
    /// anchor offset (n, action_dims) to add to the head's sample. With `place_on_flat`
    /// (the sub-task places on a zone) the last keypose's pointer may only pick objects
    /// flat on the table, if the frame shows any.
    pub fn act_condition(&self, act: &Tensor, place_on_flat: bool) -> Result<(Tensor, Tensor)> {
        let Some((objects, present, flat, xy)) = &self.frame_objects else {
            candle_core::bail!("no frame observed yet");
        };
        let n = act.dim(0)?;
        let k = self.cfg.head.keyposes;
        let mut allowed = vec![present.clone(); k];
        if place_on_flat && flat.sum_all()?.to_scalar::<f32>()? > 0.0 {
            allowed[k - 1] = flat.clone();
        }
        let allowed = Tensor::stack(&allowed, 1)?.repeat((n, 1, 1))?;
        let (c, _, w) = self
            .pointer
            .forward(act, &objects.repeat((n, 1, 1))?, &allowed)?;
        Ok((c, anchor_offset(&w, &xy.repeat((n, 1, 1))?)?))
    }

    /// Feeds one token after the cache and returns its hidden state (1, d).
    pub fn feed(&mut self, id: u32) -> Result<Tensor> {
        if self.backbone.cached() >= self.cfg.subtask_start() + self.cfg.max_subtask {
            candle_core::bail!("sub-task longer than {} tokens", self.cfg.max_subtask);
        }
        let offset = self.backbone.cached();
        self.backbone
            .forward(&self.embed_ids(&[id], 1)?, offset)?
            .get(0)
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
        self.backbone.forward_full(&x)?.get(0)
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
    pub fn forward_train(
        &mut self,
        instructions: &[u32],
        frames: &Tensor,
        subtasks: &[u32],
    ) -> Result<Tensor> {
        let b = frames.dim(0)?;
        let x = self.sequence(instructions, frames, subtasks, b)?;
        self.backbone.forward_train(&x)
    }

    /// Action-head conditions (n, d), pointer logits (n, keyposes, N) and anchor offsets
    /// (n, action_dims; no gradient) at the `<act>` positions `rows` (flat indices into
    /// `hidden` (b, T, d) from [`Loho::forward_train`]).
    pub fn act_train(
        &self,
        hidden: &Tensor,
        frames: &Tensor,
        rows: &[u32],
    ) -> Result<(Tensor, Tensor, Tensor)> {
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
        let xy = Stem::xy(frames)?.contiguous()?.index_select(&which, 0)?;
        let (c, logits, w) = self.pointer.forward(&act, &objects, &present)?;
        Ok((c, logits, anchor_offset(&w, &xy)?.detach()))
    }
}

/// Where the pointers' weights `w` (n, K, N) put each keypose's anchor among objects at
/// `xy` (n, N, 2), as an action offset (n, K × 6): x and y of the weighted centroid, other
/// numbers 0. The head learns the keypose relative to it — about 0 for a pick and a place
/// on a block or zone — so a block's position reaches the action exactly, from its pixels,
/// instead of through the network's features.
fn anchor_offset(w: &Tensor, xy: &Tensor) -> Result<Tensor> {
    let a = w.matmul(xy)?;
    let (n, k, _) = a.dims3()?;
    let rest = Tensor::zeros((n, k, KEYPOSE_DIMS - 2), a.dtype(), a.device())?;
    Tensor::cat(&[&a, &rest], 2)?.reshape((n, k * KEYPOSE_DIMS))
}

/// The dtype of every tensor (f32 on the CPU).
pub const DTYPE: DType = backbone::DTYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_is_the_pointed_objects_centroid_in_the_x_y_slots() {
        let dev = Device::Cpu;
        // Pick points at object 2, place half at objects 0 and 1.
        let w = Tensor::new(&[[[0f32, 0., 1.], [0.5, 0.5, 0.]]], &dev).unwrap();
        let xy = Tensor::new(&[[[0.1f32, -0.2], [0.3, 0.4], [-0.9, 0.8]]], &dev).unwrap();
        let off: Vec<f32> = anchor_offset(&w, &xy)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = [-0.9, 0.8, 0., 0., 0., 0., 0.2, 0.1, 0., 0., 0., 0.];
        for (a, b) in off.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{off:?}");
        }
    }
}
