//! Fused CPU kernels with a backward pass for the ops a training step repeats most:
//! layer norm, the masked attention softmax, adding a bias or positions, ReLU, splitting
//! rows into attention heads and back, and a linear layer built from them.
//!
//! Why they exist: candle's fused `layer_norm` and `softmax_last_dim` have no backward,
//! its composite versions cost a dozen passes each, and the backward of every broadcast
//! (a bias, a norm's weight, the positions) sums over leading dimensions, which candle's
//! CPU backend does one element at a time with two divisions each. Profiled on this CPU
//! (`perf`, `loho bench train`) those reductions alone were 45 % of a step's backward.
//! Each op here is one pass forward and one backward over plain slices; the backbone
//! tests check them against the composite maths.
//!
//! On a device other than the CPU every function falls back to candle's composite ops
//! (the same maths, differentiable everywhere), and so does the CPU after
//! [`set_fused`]`(false)`: the baseline `loho bench train` measures against.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor, D};

mod kernels;

use kernels::{Add, AddRows, Attention, Heads, LayerNorm, Linear, Relu};

static FUSED: AtomicBool = AtomicBool::new(true);

/// Whether the CPU runs the fused kernels (the default) or candle's composite ops, for
/// the whole process.
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// Whether `t`'s ops run fused here.
pub(crate) fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && FUSED.load(Ordering::Relaxed)
}

/// `x · wᵀ + b` over the last dimension of `x` (…, in), with `w` (out, in): what
/// `candle_nn::Linear` computes, with the bias added by [`add_rows`].
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    affine(x, w, b, false)
}

/// `max(x · wᵀ + b, 0)`, as [`linear`] then [`relu`] but one node of the graph.
pub fn linear_relu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    affine(x, w, Some(b), true)
}

fn affine(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu_after: bool) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = dims[dims.len() - 1];
    // Rows as they are when `x` is already 2-D: every reshape is one more node, and
    // candle's backward zeroes and adds a gradient of its size.
    let rows = if dims.len() == 2 {
        x.contiguous()?
    } else {
        x.contiguous()?.reshape((x.elem_count() / k, k))?
    };
    let y = match b {
        Some(b) if fused(x) => rows.apply_op3(
            &w.contiguous()?,
            &b.contiguous()?,
            Linear { relu: relu_after },
        )?,
        _ => {
            let mut y = rows.matmul(&w.t()?)?;
            if let Some(b) = b {
                y = add_rows(&y, b)?;
            }
            if relu_after {
                y = relu(&y)?;
            }
            y
        }
    };
    if dims.len() == 2 {
        return Ok(y);
    }
    let mut out = dims;
    *out.last_mut().expect("a tensor with dimensions") = w.dim(0)?;
    y.reshape(out)
}

/// [`linear`] with a `candle_nn::Linear`'s weights.
pub fn apply(l: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    linear(x, l.weight(), l.bias())
}

/// [`linear_relu`] with a `candle_nn::Linear`'s weights.
pub fn apply_relu(l: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    match l.bias() {
        Some(b) => linear_relu(x, l.weight(), b),
        None => relu(&linear(x, l.weight(), None)?),
    }
}

/// `a + b` of one shape. Fused, it runs on the calling thread: candle splits adds of 64 k
/// elements or more over its thread pool, whose workers wait behind the thread that draws
/// the next batch on this 2-core machine.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !fused(a) || a.shape() != b.shape() {
        return a + b;
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, Add)
}

/// `x + b` where `b`'s elements repeat along `x`'s leading dimensions (a bias (d) on
/// (…, d), positions (t, d) on (b, t, d)).
pub fn add_rows(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if b.elem_count() == 0 || !x.elem_count().is_multiple_of(b.elem_count()) {
        candle_core::bail!(
            "add_rows: {:?} does not repeat over {:?}",
            b.shape(),
            x.shape()
        );
    }
    if !fused(x) {
        let mut repeated = vec![x.elem_count() / b.elem_count()];
        repeated.extend(b.dims());
        return x.reshape(repeated)?.broadcast_add(b)?.reshape(x.shape());
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, AddRows)
}

/// Layer norm over the last dimension, with weight and bias (d).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if !fused(x) {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        return xn.broadcast_mul(w)?.broadcast_add(b);
    }
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

/// `max(x, 0)`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

/// Token rows (b·t, heads·hd) as heads (b, heads, t, hd): the layout attention multiplies;
/// `transposed`, as (b, heads, hd, t), the keys' layout in `q · kᵀ` (a transposed view
/// would reach the backward as a strided gradient, which candle adds one element at a
/// time). With `packed`, the rows are only the real tokens of `t` slots per sequence
/// ([`Packed`]) and padding's heads are zero.
pub fn split_heads(
    x: &Tensor,
    batch: usize,
    heads: usize,
    transposed: bool,
    packed: Option<&Packed>,
) -> Result<Tensor> {
    let (rows, d) = x.dims2()?;
    let hd = d / heads;
    let t = match packed {
        Some(p) => p.slots.len() / batch,
        None => rows / batch,
    };
    if packed.is_none() && !fused(x) {
        let h = x.reshape((batch, t, heads, hd))?;
        let h = if transposed {
            h.permute((0, 2, 3, 1))?
        } else {
            h.transpose(1, 2)?
        };
        return h.contiguous();
    }
    x.contiguous()?.apply_op1(Heads {
        batch,
        heads,
        tokens: t,
        split: true,
        transposed,
        packed: packed.cloned(),
    })
}

/// The real tokens of padded sequences as consecutive rows, padding left out. A training
/// batch is 43 % padding (instructions padded to 24 words, scenes to 32 objects, sub-tasks
/// to the longest): packed, the linear layers, norms and residuals of the backbone only
/// multiply the real tokens; attention puts them back in their sequences (the same maths:
/// no token ever attends to padding). Packed rows always run the CPU kernels (the backbone
/// packs only where the fused kernels are on, and a kernel on another device fails with candle's
/// "no cuda implementation" error).
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// Per (batch, token) slot, its row among the real tokens; [`Packed::PAD`] for padding.
    slots: Arc<Vec<u32>>,
    rows: usize,
}

impl Packed {
    const PAD: u32 = u32::MAX;

    /// From the flags of which slots (batch × tokens, in order) are real tokens.
    pub fn new(real: &[bool]) -> Self {
        let mut rows = 0;
        let slots = real
            .iter()
            .map(|&r| {
                if !r {
                    return Self::PAD;
                }
                rows += 1;
                rows as u32 - 1
            })
            .collect();
        Self {
            slots: Arc::new(slots),
            rows,
        }
    }

    /// Real tokens: the packed rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The packed row of slot `slot`, `None` for padding.
    fn row(&self, slot: usize) -> Option<usize> {
        let r = self.slots[slot];
        (r != Self::PAD).then_some(r as usize)
    }

    /// Token rows (batch·tokens, d) of padded sequences as the real tokens' rows (n, d).
    pub fn pack(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.one_head(x, batch, false)
    }

    /// The real tokens' rows (n, d) back in padded sequences (batch·tokens, d), padding
    /// zero.
    pub fn unpack(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        let d = x.dim(1)?;
        self.one_head(x, batch, true)?
            .reshape((self.slots.len(), d))
    }

    /// Packing is splitting into (unpack) or merging from (pack) a single head.
    fn one_head(&self, x: &Tensor, batch: usize, split: bool) -> Result<Tensor> {
        x.contiguous()?.apply_op1(Heads {
            batch,
            heads: 1,
            tokens: self.slots.len() / batch,
            split,
            transposed: false,
            packed: Some(self.clone()),
        })
    }
}

/// Which keys each query of an attention may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mask {
    /// Tokens `0..prefix` see each other both ways; every later token sees the tokens up
    /// to itself (0: causal everywhere).
    pub prefix: usize,
    /// Absolute position of the first query: the tokens already in a cache.
    pub past: usize,
    /// Per batch row, positions that see each other both ways: a block of sub-task tokens
    /// filled in together (parallel decoding, and its training sequences). `None`: causal
    /// after the prefix.
    pub blocks: Option<Arc<Vec<Range<usize>>>>,
    /// Per batch row and key (b × keys), false for padding no query may see. `None`:
    /// every key is a real token.
    pub keys: Option<Arc<Vec<bool>>>,
}

impl Mask {
    /// The last key query `q` (counted from the first new one) of batch row `row` may see,
    /// padding aside.
    fn last_key(&self, row: usize, q: usize) -> usize {
        let p = self.past + q;
        let block = self.blocks.as_ref().and_then(|b| b.get(row));
        if p < self.prefix {
            self.prefix - 1
        } else if let Some(b) = block.filter(|b| b.contains(&p)) {
            b.end - 1
        } else {
            p
        }
    }

    /// Whether key `k` of `keys` is a real token in batch row `row`.
    fn real(&self, row: usize, keys: usize, k: usize) -> bool {
        self.keys.as_ref().is_none_or(|v| v[row * keys + k])
    }

    /// Whether query `q` of batch row `row` sees key `k` of `keys`.
    fn allows(&self, row: usize, keys: usize, q: usize, k: usize) -> bool {
        k <= self.last_key(row, q) && self.real(row, keys, k)
    }

    /// The additive mask (b, 1, t, s) for candle's composite softmax.
    fn additive(&self, b: usize, t: usize, s: usize, dev: &candle_core::Device) -> Result<Tensor> {
        let mut m = Vec::with_capacity(b * t * s);
        for row in 0..b {
            for q in 0..t {
                for k in 0..s {
                    let ok = self.allows(row, s, q, k);
                    m.push(if ok { 0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
        Tensor::from_vec(m, (b, 1, t, s), dev)
    }
}

/// Attention of queries `q` (b, heads, t, hd) over keys `kt` (b, heads, hd, s) and values
/// `v` (b, heads, s, hd): `softmax(scale · q · kt)` with the keys `mask` hides at weight 0,
/// times `v`, as token rows (b·t, heads·hd), or the real tokens' rows with `packed`.
/// Fused, scores and weights stay inside one node (the backward reuses the weights)
/// instead of four the size of the scores.
pub fn attention(
    q: &Tensor,
    kt: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: &Mask,
    packed: Option<&Packed>,
) -> Result<Tensor> {
    let b = q.dim(0)?;
    let s = kt.dim(3)?;
    if let Some(k) = &mask.keys {
        if k.len() != b * s {
            candle_core::bail!("key mask of {} for {b} rows of {s} keys", k.len());
        }
    }
    if packed.is_none() && !fused(q) {
        return composite_attention(q, kt, v, scale, mask);
    }
    q.contiguous()?.apply_op3(
        &kt.contiguous()?,
        &v.contiguous()?,
        Attention {
            scale: scale as f32,
            mask: mask.clone(),
            packed: packed.cloned(),
            kept: Default::default(),
        },
    )
}

fn composite_attention(
    q: &Tensor,
    kt: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: &Mask,
) -> Result<Tensor> {
    let (b, h, t, hd) = q.dims4()?;
    let s = kt.dim(3)?;
    let scores = (q.matmul(kt)? * scale)?.broadcast_add(&mask.additive(b, t, s, q.device())?)?;
    let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
    att.matmul(v)?.transpose(1, 2)?.reshape((b * t, h * hd))
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let v = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("fused op on a strided tensor"),
    }
}

/// Runs `f` on the f32 data of CPU tensors (made contiguous first).
pub(crate) fn with_data<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
    let cs = ts
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let held: Vec<_> = cs.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(held.len());
    for (s, l) in &held {
        match &**s {
            Storage::Cpu(c) => slices.push(slice(c, l)?),
            _ => candle_core::bail!("fused op on a tensor outside the CPU"),
        }
    }
    Ok(f(&slices))
}

fn tensor_like(v: Vec<f32>, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(v, like.shape(), like.device())
}

#[cfg(test)]
mod tests;
