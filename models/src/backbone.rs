//! The pre-norm, decoder-only transformer with a KV cache.
//!
//! Laid out as candle-transformers writes models: a serde [`Config`], `new(cfg, vb)`, and
//! `forward(&mut self, x, offset, real)` with the cache kept in the struct. Inference
//! prefills once and then feeds one token per step; [`Backbone::truncate_cache`] rolls the
//! cache back to a prefix, so it is computed once per decision (once per episode for the
//! instruction of a causal model).
//!
//! Attention is causal after [`Config::prefix`] tokens that see each other both ways (an
//! object token can then see the bowl that comes after it in the image), and padding flagged
//! in `real` is hidden from every token. Training ([`Backbone::forward_train`]) keeps no
//! cache. Norm, softmax, biases and ReLU are the fused kernels of [`crate::ops`], which
//! have a backward: candle's own fused kernels have none and would silently leave most
//! weights without gradient (docs/model.md).

use std::ops::Range;
use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{linear, Activation, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops::{self, Mask, Packed};

/// Shape of the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Longest sequence (image tokens, instruction, sub-task) the positions cover.
    pub max_len: usize,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    /// ReLU by default: on this CPU its backward is the cheapest (candle-notes).
    #[serde(default = "default_act")]
    pub activation: Activation,
    /// Tokens `0..prefix` (instruction and image) see each other both ways, and later
    /// tokens see every earlier one; 0 makes every token causal (checkpoints before the
    /// bidirectional prefix).
    #[serde(default)]
    pub prefix: usize,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_act() -> Activation {
    Activation::Relu
}

#[derive(Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    fn new(d: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", candle_nn::Init::Const(0.0))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// How the blocks' token rows are laid out: `batch` sequences, which keys each token may
/// see, whether keys and values go to the cache, and whether the rows are the real tokens
/// only (`packed`, training) or every token of every sequence (batch · tokens).
#[derive(Clone, Copy)]
struct Rows<'a> {
    batch: usize,
    mask: &'a Mask,
    cache: bool,
    packed: Option<&'a Packed>,
}

#[derive(Clone)]
struct Attention {
    qkv: Linear,
    out: Linear,
    n_heads: usize,
    head_dim: usize,
    cache: Option<(Tensor, Tensor)>,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Self {
            qkv: linear(d, 3 * d, vb.pp("qkv"))?,
            out: linear(d, d, vb.pp("out"))?,
            n_heads: cfg.n_heads,
            head_dim: d / cfg.n_heads,
            cache: None,
        })
    }

    /// Attention over token rows `x` laid out as `rows` says.
    fn forward(&mut self, x: &Tensor, rows: &Rows) -> Result<Tensor> {
        let Rows {
            batch,
            mask,
            cache,
            packed,
        } = *rows;
        let d = x.dim(1)?;
        let (w, bias) = (self.qkv.weight(), self.qkv.bias());
        // Three products on row blocks of the one qkv weight: splitting its output instead
        // would give each part a backward the size of all three.
        let heads = |i: usize| -> Result<Tensor> {
            let bias = bias.map(|b| b.narrow(0, i * d, d)).transpose()?;
            let y = ops::linear(x, &w.narrow(0, i * d, d)?, bias.as_ref())?;
            ops::split_heads(&y, batch, self.n_heads, i == 1, packed)
        };
        // Keys come transposed (b, heads, hd, t), ready for q · kᵀ.
        let (q, mut kt, mut v) = (heads(0)?, heads(1)?, heads(2)?);
        if cache {
            if let Some((pk, pv)) = &self.cache {
                kt = Tensor::cat(&[pk, &kt], 3)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            self.cache = Some((kt.clone(), v.clone()));
        }
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        ops::apply(
            &self.out,
            &ops::attention(&q, &kt, &v, scale, mask, packed)?,
        )
    }
}

#[derive(Clone)]
struct Block {
    norm1: Norm,
    attn: Attention,
    norm2: Norm,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl Block {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: Norm::new(cfg.d_model, cfg.norm_eps, vb.pp("norm1"))?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            norm2: Norm::new(cfg.d_model, cfg.norm_eps, vb.pp("norm2"))?,
            up: linear(cfg.d_model, cfg.d_ff, vb.pp("up"))?,
            down: linear(cfg.d_ff, cfg.d_model, vb.pp("down"))?,
            act: cfg.activation,
        })
    }

    /// A block over token rows `x` laid out as `rows` says.
    fn forward(&mut self, x: &Tensor, rows: &Rows) -> Result<Tensor> {
        let a = self.attn.forward(&self.norm1.forward(x)?, rows)?;
        let x = ops::add(x, &a)?;
        let x2 = self.norm2.forward(&x)?;
        let h = match self.act {
            Activation::Relu => ops::apply_relu(&self.up, &x2)?,
            act => act.forward(&ops::apply(&self.up, &x2)?)?,
        };
        ops::add(&x, &ops::apply(&self.down, &h)?)
    }
}

/// The transformer: learned positions, blocks, final norm. Inputs are embeddings
/// (image tokens from the stem, word embeddings), outputs hidden states.
#[derive(Clone)]
pub struct Backbone {
    pos: Embedding,
    blocks: Vec<Block>,
    norm: Norm,
    max_len: usize,
    prefix: usize,
    cached: usize,
    /// Which cached tokens are real, per batch row.
    real: Vec<Vec<bool>>,
}

impl Backbone {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.n_heads == 0 || !cfg.d_model.is_multiple_of(cfg.n_heads) {
            candle_core::bail!(
                "d_model {} is not a multiple of n_heads {}",
                cfg.d_model,
                cfg.n_heads
            );
        }
        Ok(Self {
            pos: embedding(cfg.max_len, cfg.d_model, vb.pp("pos"))?,
            blocks: (0..cfg.n_layers)
                .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<_>>()?,
            norm: Norm::new(cfg.d_model, cfg.norm_eps, vb.pp("norm"))?,
            max_len: cfg.max_len,
            prefix: cfg.prefix,
            cached: 0,
            real: Vec::new(),
        })
    }

    /// `real`: per batch row and new token (b × t), false for padding that no token may
    /// attend to; `None` when every token is real.
    fn run(
        &mut self,
        x: &Tensor,
        offset: usize,
        real: Option<&[bool]>,
        cache: bool,
        blocks: Option<Vec<Range<usize>>>,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        if offset + t > self.max_len {
            candle_core::bail!(
                "sequence of {} tokens exceeds max_len {}",
                offset + t,
                self.max_len
            );
        }
        let new = match real {
            Some(r) if r.len() != b * t => {
                candle_core::bail!("{} padding flags for {b} × {t} tokens", r.len())
            }
            Some(r) => r.to_vec(),
            None => vec![true; b * t],
        };
        let keys: Vec<bool> = if cache {
            self.real.resize(b, vec![true; offset]);
            for (row, past) in self.real.iter_mut().enumerate() {
                past.extend_from_slice(&new[row * t..(row + 1) * t]);
            }
            self.real.concat()
        } else {
            new
        };
        let mask = Mask {
            prefix: self.prefix,
            past: offset,
            blocks: blocks.map(Arc::new),
            keys: keys.contains(&false).then(|| Arc::new(keys)),
        };
        // Token rows (b · t, d) from here on: the fewer views, the fewer gradients candle
        // zeroes and adds in the backward pass.
        let pos = self.pos.embeddings().narrow(0, offset, t)?;
        let mut h = ops::add_rows(&x.reshape((b * t, d))?, &pos)?;
        // Whole padded sequences (training) go through the blocks as their real tokens.
        let packed = match &mask.keys {
            Some(real) if !cache && ops::fused(&h) => Some(Packed::new(real)),
            _ => None,
        };
        if let Some(p) = &packed {
            h = p.pack(&h, b)?;
        }
        let rows = Rows {
            batch: b,
            mask: &mask,
            cache,
            packed: packed.as_ref(),
        };
        for block in &mut self.blocks {
            h = block.forward(&h, &rows)?;
        }
        h = self.norm.forward(&h)?;
        if let Some(p) = &packed {
            h = p.unpack(&h, b)?;
        }
        h.reshape((b, t, d))
    }

    /// Hidden states of `x` (batch, tokens, d_model) at positions `offset..`, appending
    /// its keys and values to the cache. `offset` must equal the tokens already cached.
    /// `real` flags padding as in [`Backbone::forward_train`]; cached padding stays hidden.
    pub fn forward(&mut self, x: &Tensor, offset: usize, real: Option<&[bool]>) -> Result<Tensor> {
        self.append(x, offset, real, None)
    }

    /// As [`Backbone::forward`], the new tokens from the `causal`-th on seeing each other
    /// both ways: a block of sub-task tokens filled in together (parallel decoding), after
    /// the words committed before it.
    pub fn forward_block(&mut self, x: &Tensor, offset: usize, causal: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        self.append(x, offset, None, Some(vec![offset + causal..offset + t; b]))
    }

    fn append(
        &mut self,
        x: &Tensor,
        offset: usize,
        real: Option<&[bool]>,
        blocks: Option<Vec<Range<usize>>>,
    ) -> Result<Tensor> {
        if offset != self.cached {
            candle_core::bail!("offset {offset} but {} tokens are cached", self.cached);
        }
        let h = self.run(x, offset, real, true, blocks)?;
        self.cached += x.dim(1)?;
        Ok(h)
    }

    /// Hidden states of whole sequences, leaving the cache alone: what decoding would
    /// cost without a cache.
    pub fn forward_full(&mut self, x: &Tensor, real: Option<&[bool]>) -> Result<Tensor> {
        self.run(x, 0, real, false, None)
    }

    /// Hidden states of whole sequences, differentiable, no cache. `real` (batch × tokens)
    /// is false for padding, which no token attends to; `blocks` gives each sequence the
    /// positions that see each other both ways (a masked block of parallel decoding).
    pub fn forward_train(
        &mut self,
        x: &Tensor,
        real: Option<&[bool]>,
        blocks: Option<Vec<Range<usize>>>,
    ) -> Result<Tensor> {
        self.run(x, 0, real, false, blocks)
    }

    /// Tokens now in the cache.
    pub fn cached(&self) -> usize {
        self.cached
    }

    pub fn clear_cache(&mut self) {
        self.truncate_cache(0).expect("truncating to 0 cannot fail");
    }

    /// Keeps only the first `len` cached tokens (for example the instruction prefix).
    pub fn truncate_cache(&mut self, len: usize) -> Result<()> {
        if len > self.cached {
            candle_core::bail!("cannot keep {len} of {} cached tokens", self.cached);
        }
        for b in &mut self.blocks {
            b.attn.cache = match (&b.attn.cache, len) {
                (_, 0) | (None, _) => None,
                (Some((kt, v)), n) => Some((kt.narrow(3, 0, n)?, v.narrow(2, 0, n)?)),
            };
        }
        self.real.iter_mut().for_each(|r| r.truncate(len));
        if len == 0 {
            self.real.clear();
        }
        self.cached = len;
        Ok(())
    }
}

/// An embedding table drawn with σ 0.02 (GPT-2's), not candle's default σ 1: unit
/// embeddings make the residual stream start far larger than what a block adds to it, and
/// a run with them had learned neither copying nor grounding after 1000 steps.
pub fn embedding(n: usize, d: usize, vb: VarBuilder) -> Result<Embedding> {
    let init = candle_nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    Ok(Embedding::new(
        vb.get_with_hints((n, d), "weight", init)?,
        d,
    ))
}

/// The dtype models run in on the CPU (BF16 matmul is unsupported there).
pub const DTYPE: DType = DType::F32;

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarMap;

    use super::*;
    use crate::max_diff;

    fn cfg(prefix: usize) -> Config {
        Config {
            d_model: 32,
            n_layers: 2,
            n_heads: 4,
            d_ff: 64,
            max_len: 128,
            norm_eps: 1e-5,
            activation: Activation::Relu,
            prefix,
        }
    }

    /// Two backbones sharing one set of weights.
    fn pair(prefix: usize) -> (Backbone, Backbone, VarMap) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DTYPE, &Device::Cpu);
        let a = Backbone::new(&cfg(prefix), vb.clone()).unwrap();
        let b = Backbone::new(&cfg(prefix), vb).unwrap();
        (a, b, vm)
    }

    fn randn(shape: (usize, usize, usize)) -> Tensor {
        Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn cached_decoding_matches_full_recomputation_at_every_step() {
        let (mut cached, mut full, _vm) = pair(0);
        let seq = randn((1, 70, 32));
        let prefix = 50;
        cached
            .forward(&seq.narrow(1, 0, prefix).unwrap(), 0, None)
            .unwrap();
        for step in 0..20 {
            let pos = prefix + step;
            let one = cached
                .forward(&seq.narrow(1, pos, 1).unwrap(), pos, None)
                .unwrap();
            full.clear_cache();
            let all = full
                .forward(&seq.narrow(1, 0, pos + 1).unwrap(), 0, None)
                .unwrap();
            let d = max_diff(&one, &all.narrow(1, pos, 1).unwrap());
            assert!(d <= 1e-4, "step {step}: cached and full differ by {d}");
            // The training path (no cache) computes the same function.
            let train = full
                .forward_train(&seq.narrow(1, 0, pos + 1).unwrap(), None, None)
                .unwrap();
            let d = max_diff(&train, &all);
            assert!(
                d <= 1e-4,
                "step {step}: training and inference differ by {d}"
            );
        }
    }

    #[test]
    fn a_bidirectional_prefix_decodes_with_the_cache_as_training_computes_it() {
        // 12 prefix tokens of which 3 are padding, then 8 causal ones, the last 2 padding.
        let (prefix, total) = (12, 20);
        let (mut cached, mut train, _vm) = pair(prefix);
        let real: Vec<bool> = (0..total)
            .map(|i| ![3, 4, 9, 18, 19].contains(&i))
            .collect();
        let seq = randn((1, total, 32));
        let all = train.forward_train(&seq, Some(&real), None).unwrap();
        let head = cached
            .forward(&seq.narrow(1, 0, prefix).unwrap(), 0, Some(&real[..prefix]))
            .unwrap();
        // Padding's states mean nothing (training leaves them zero); the real tokens agree.
        let real_of = |t: &Tensor| {
            let rows: Vec<u32> = (0..t.dim(1).unwrap() as u32)
                .filter(|&i| real[i as usize])
                .collect();
            let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
            t.index_select(&idx, 1).unwrap()
        };
        let d = max_diff(
            &real_of(&head),
            &real_of(&all.narrow(1, 0, prefix).unwrap()),
        );
        assert!(d <= 1e-4, "prefix differs by {d}");
        for pos in prefix..18 {
            let one = cached
                .forward(&seq.narrow(1, pos, 1).unwrap(), pos, None)
                .unwrap();
            let d = max_diff(&one, &all.narrow(1, pos, 1).unwrap());
            assert!(d <= 1e-4, "token {pos}: cached and training differ by {d}");
        }

        // The first token sees a later prefix token, but no token after the prefix and no
        // padding anywhere.
        let mut changed = |pos: usize| {
            let mut s = seq.to_vec3::<f32>().unwrap();
            // Not a constant shift, which layer norm would remove.
            for (i, v) in s[0][pos].iter_mut().enumerate() {
                *v += (i as f32).sin();
            }
            let s = Tensor::new(s, &Device::Cpu).unwrap();
            let out = train.forward_train(&s, Some(&real), None).unwrap();
            let first = |t: &Tensor| t.narrow(1, 0, 1).unwrap();
            (
                max_diff(&first(&out), &first(&all)),
                max_diff(&real_of(&out), &real_of(&all)),
            )
        };
        assert!(changed(10).0 > 1e-3, "a later prefix token is seen");
        assert_eq!(changed(14).0, 0.0, "a sub-task token is not");
        assert_eq!(changed(4).1, 0.0, "padding is seen by no real token");
    }

    #[test]
    fn truncating_the_cache_replays_the_same_suffix() {
        let (mut m, _, _vm) = pair(0);
        let x = randn((1, 12, 32));
        m.forward(&x.narrow(1, 0, 8).unwrap(), 0, None).unwrap();
        let a = m.forward(&x.narrow(1, 8, 4).unwrap(), 8, None).unwrap();
        m.truncate_cache(8).unwrap();
        let b = m.forward(&x.narrow(1, 8, 4).unwrap(), 8, None).unwrap();
        assert_eq!(max_diff(&a, &b), 0.0);
        assert!(
            m.forward(&x.narrow(1, 0, 1).unwrap(), 3, None).is_err(),
            "wrong offset"
        );
        assert!(
            m.forward(&x.narrow(1, 0, 1).unwrap(), 12, Some(&[true, false]))
                .is_err(),
            "padding flags of the wrong length"
        );
        m.clear_cache();
        assert_eq!(m.cached(), 0);
        let long = Tensor::zeros((1, 129, 32), DTYPE, &Device::Cpu).unwrap();
        assert!(m.forward(&long, 0, None).is_err(), "longer than max_len");
    }

    #[test]
    fn training_pass_gives_every_weight_a_gradient() {
        let (mut m, _, vm) = pair(4);
        let x = randn((2, 10, 32));
        let target = randn((2, 10, 32));
        let loss = (m.forward_train(&x, None, None).unwrap() - target)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let vars = vm.all_vars();
        assert_eq!(
            vars.len(),
            1 + 2 * 12 + 2,
            "pos, 2 blocks of 12 tensors, final norm"
        );
        for v in &vars {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("no gradient for a {:?} tensor", v.shape()));
            let n: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(n > 0.0, "zero gradient for a {:?} tensor", v.shape());
        }
    }
}
