//! The pre-norm, decoder-only transformer with a KV cache.
//!
//! Laid out as candle-transformers writes models: a serde [`Config`], `new(cfg, vb)`, and
//! `forward(&mut self, x, offset)` with the cache kept in the struct. Inference prefills
//! once and then feeds one token per step; [`Backbone::truncate_cache`] rolls the cache
//! back to a prefix (the instruction), so it is computed once per episode.
//!
//! Training runs through [`Backbone::forward_train`], which keeps no cache and uses
//! composite softmax and layer norm: candle's fused kernels have no backward and would
//! silently leave most weights without gradient (`../shared/candle-notes.md`, trap 1).

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear, Activation, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

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
}

fn default_eps() -> f64 {
    1e-5
}

fn default_act() -> Activation {
    Activation::Relu
}

/// Fused kernels with the cache, fused kernels over a whole sequence without it, or
/// composite differentiable ops without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Infer,
    Full,
    Train,
}

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

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match mode {
            Mode::Infer | Mode::Full => candle_nn::ops::layer_norm(
                &x.contiguous()?,
                &self.weight,
                &self.bias,
                self.eps as f32,
            ),
            Mode::Train => {
                let mean = x.mean_keepdim(D::Minus1)?;
                let xc = x.broadcast_sub(&mean)?;
                let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
                let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
            }
        }
    }
}

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

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.n_heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let mut k = qkv.get(1)?.contiguous()?;
        let mut v = qkv.get(2)?.contiguous()?;
        if mode == Mode::Infer {
            if let Some((pk, pv)) = &self.cache {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            self.cache = Some((k.clone(), v.clone()));
        }
        let s = k.dim(2)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut att = (q.matmul(&k.t()?)? * scale)?;
        if t > 1 {
            att = att.broadcast_add(&causal_mask(t, s, x.device())?)?;
        }
        let att = match mode {
            Mode::Infer | Mode::Full => candle_nn::ops::softmax_last_dim(&att)?,
            Mode::Train => candle_nn::ops::softmax(&att, D::Minus1)?,
        };
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.out.forward(&y)
    }
}

/// Additive mask for `t` new queries over `s` keys, the last `t` of which are theirs:
/// query i sees keys up to s − t + i.
fn causal_mask(t: usize, s: usize, device: &Device) -> Result<Tensor> {
    let past = s - t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..s).map(move |j| {
                if j <= past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, s), device)
}

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

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x, mode)?, mode)?)?;
        let h = self
            .act
            .forward(&self.up.forward(&self.norm2.forward(&x, mode)?)?)?;
        x + self.down.forward(&h)?
    }
}

/// The transformer: learned positions, blocks, final norm. Inputs are embeddings
/// (image tokens from the stem, word embeddings), outputs hidden states.
pub struct Backbone {
    pos: Embedding,
    blocks: Vec<Block>,
    norm: Norm,
    max_len: usize,
    cached: usize,
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
            cached: 0,
        })
    }

    fn run(&mut self, x: &Tensor, offset: usize, mode: Mode) -> Result<Tensor> {
        let (_, t, _) = x.dims3()?;
        if offset + t > self.max_len {
            candle_core::bail!(
                "sequence of {} tokens exceeds max_len {}",
                offset + t,
                self.max_len
            );
        }
        let idx = Tensor::arange(offset as u32, (offset + t) as u32, x.device())?;
        let mut h = x.broadcast_add(&self.pos.forward(&idx)?)?;
        for b in &mut self.blocks {
            h = b.forward(&h, mode)?;
        }
        self.norm.forward(&h, mode)
    }

    /// Hidden states of `x` (batch, tokens, d_model) at positions `offset..`, appending
    /// its keys and values to the cache. `offset` must equal the tokens already cached.
    pub fn forward(&mut self, x: &Tensor, offset: usize) -> Result<Tensor> {
        if offset != self.cached {
            candle_core::bail!("offset {offset} but {} tokens are cached", self.cached);
        }
        let h = self.run(x, offset, Mode::Infer)?;
        self.cached += x.dim(1)?;
        Ok(h)
    }

    /// Hidden states of whole sequences with the inference kernels, leaving the cache
    /// alone: what decoding would cost without a cache.
    pub fn forward_full(&mut self, x: &Tensor) -> Result<Tensor> {
        self.run(x, 0, Mode::Full)
    }

    /// Hidden states of whole sequences, differentiable, no cache.
    pub fn forward_train(&mut self, x: &Tensor) -> Result<Tensor> {
        self.run(x, 0, Mode::Train)
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
                (Some((k, v)), n) => Some((k.narrow(2, 0, n)?, v.narrow(2, 0, n)?)),
            };
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
    use candle_nn::VarMap;

    use super::*;
    use crate::max_diff;

    fn cfg() -> Config {
        Config {
            d_model: 32,
            n_layers: 2,
            n_heads: 4,
            d_ff: 64,
            max_len: 128,
            norm_eps: 1e-5,
            activation: Activation::Relu,
        }
    }

    /// Two backbones sharing one set of weights.
    fn pair() -> (Backbone, Backbone, VarMap) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DTYPE, &Device::Cpu);
        let a = Backbone::new(&cfg(), vb.clone()).unwrap();
        let b = Backbone::new(&cfg(), vb).unwrap();
        (a, b, vm)
    }

    #[test]
    fn cached_decoding_matches_full_recomputation_at_every_step() {
        let (mut cached, mut full, _vm) = pair();
        let seq = Tensor::randn(0f32, 1.0, (1, 70, 32), &Device::Cpu).unwrap();
        let prefix = 50;
        cached
            .forward(&seq.narrow(1, 0, prefix).unwrap(), 0)
            .unwrap();
        for step in 0..20 {
            let pos = prefix + step;
            let one = cached
                .forward(&seq.narrow(1, pos, 1).unwrap(), pos)
                .unwrap();
            full.clear_cache();
            let all = full
                .forward(&seq.narrow(1, 0, pos + 1).unwrap(), 0)
                .unwrap();
            let d = max_diff(&one, &all.narrow(1, pos, 1).unwrap());
            assert!(d <= 1e-4, "step {step}: cached and full differ by {d}");
            // The training path (composite kernels, no cache) computes the same function.
            let train = full
                .forward_train(&seq.narrow(1, 0, pos + 1).unwrap())
                .unwrap();
            let d = max_diff(&train, &all);
            assert!(
                d <= 1e-4,
                "step {step}: training and inference differ by {d}"
            );
        }
    }

    #[test]
    fn truncating_the_cache_replays_the_same_suffix() {
        let (mut m, _, _vm) = pair();
        let x = Tensor::randn(0f32, 1.0, (1, 12, 32), &Device::Cpu).unwrap();
        m.forward(&x.narrow(1, 0, 8).unwrap(), 0).unwrap();
        let a = m.forward(&x.narrow(1, 8, 4).unwrap(), 8).unwrap();
        m.truncate_cache(8).unwrap();
        let b = m.forward(&x.narrow(1, 8, 4).unwrap(), 8).unwrap();
        assert_eq!(max_diff(&a, &b), 0.0);
        assert!(
            m.forward(&x.narrow(1, 0, 1).unwrap(), 3).is_err(),
            "wrong offset"
        );
        m.clear_cache();
        assert_eq!(m.cached(), 0);
        let long = Tensor::zeros((1, 129, 32), DTYPE, &Device::Cpu).unwrap();
        assert!(m.forward(&long, 0).is_err(), "longer than max_len");
    }

    #[test]
    fn training_pass_gives_every_weight_a_gradient() {
        let (mut m, _, vm) = pair();
        let x = Tensor::randn(0f32, 1.0, (2, 10, 32), &Device::Cpu).unwrap();
        let target = Tensor::randn(0f32, 1.0, (2, 10, 32), &Device::Cpu).unwrap();
        let loss = (m.forward_train(&x).unwrap() - target)
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
