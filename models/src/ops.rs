//! Fused CPU kernels with a backward pass for the ops a training step repeats most:
//! layer norm, the masked attention softmax, adding a bias or positions, ReLU, and a
//! linear layer built from them.
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
//! (the same maths, differentiable everywhere).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Storage};
use candle_core::{Tensor, D};

/// `x · wᵀ + b` over the last dimension of `x` (…, in), with `w` (out, in): what
/// `candle_nn::Linear` computes, with the bias added by [`add_rows`].
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (rows, k) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
    let mut y = x.contiguous()?.reshape((rows, k))?.matmul(&w.t()?)?;
    if let Some(b) = b {
        y = add_rows(&y, b)?;
    }
    let mut out = dims;
    *out.last_mut().expect("a tensor with dimensions") = w.dim(0)?;
    y.reshape(out)
}

/// [`linear`] with a `candle_nn::Linear`'s weights.
pub fn apply(l: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    linear(x, l.weight(), l.bias())
}

/// `x + b` where `b`'s elements repeat along `x`'s leading dimensions (a bias (d) on
/// (…, d), positions (t, d) on (b, t, d)).
pub fn add_rows(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.broadcast_add(b);
    }
    if b.elem_count() == 0 || !x.elem_count().is_multiple_of(b.elem_count()) {
        candle_core::bail!(
            "add_rows: {:?} does not repeat over {:?}",
            b.shape(),
            x.shape()
        );
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, AddRows)
}

/// Layer norm over the last dimension, with weight and bias (d).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if !x.device().is_cpu() {
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
    if !x.device().is_cpu() {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

/// Which keys each query of an attention may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mask {
    /// Tokens `0..prefix` see each other both ways; every later token sees the tokens up
    /// to itself (0: causal everywhere).
    pub prefix: usize,
    /// Absolute position of the first query: the tokens already in a cache.
    pub past: usize,
    /// Per batch row and key (b × keys), false for padding no query may see. `None`:
    /// every key is a real token.
    pub keys: Option<Arc<Vec<bool>>>,
}

impl Mask {
    /// Whether query `q` (counted from the first new one) of batch row `row` sees key `k`
    /// of `keys`.
    fn allows(&self, row: usize, keys: usize, q: usize, k: usize) -> bool {
        let p = self.past + q;
        let real = self.keys.as_ref().is_none_or(|v| v[row * keys + k]);
        real && (k <= p || (p < self.prefix && k < self.prefix))
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

/// Softmax over the last dimension of attention scores (b, heads, queries, keys), scaled by
/// `scale`, where keys the mask hides get weight 0.
pub fn masked_softmax(scores: &Tensor, scale: f64, mask: &Mask) -> Result<Tensor> {
    let (b, _, t, s) = scores.dims4()?;
    if let Some(k) = &mask.keys {
        if k.len() != b * s {
            candle_core::bail!("key mask of {} for {b} rows of {s} keys", k.len());
        }
    }
    if !scores.device().is_cpu() {
        let x = (scores * scale)?.broadcast_add(&mask.additive(b, t, s, scores.device())?)?;
        return candle_nn::ops::softmax(&x, D::Minus1);
    }
    scores.contiguous()?.apply_op1(MaskedSoftmax {
        scale: scale as f32,
        mask: mask.clone(),
    })
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let v = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("fused op on a strided tensor"),
    }
}

/// Runs `f` on the f32 data of CPU tensors (made contiguous first).
fn with_data<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
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

struct AddRows;

impl CustomOp2 for AddRows {
    fn name(&self) -> &'static str {
        "loho-add-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut y = x.to_vec();
        for row in y.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = b.elem_count();
        let db = with_data(&[g], |s| {
            let mut db = vec![0f32; n];
            for row in s[0].chunks_exact(n) {
                db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
            }
            db
        })?;
        Ok((Some(g.clone()), Some(tensor_like(db, b)?)))
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "loho-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = slice(s, l)?.iter().map(|v| v.max(0.0)).collect();
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_data(&[res, g], |s| {
            s[0].iter()
                .zip(s[1])
                .map(|(y, g)| if *y > 0.0 { *g } else { 0.0 })
                .collect()
        })?;
        Ok(Some(tensor_like(dx, x)?))
    }
}

struct LayerNorm {
    eps: f32,
}

/// Mean and 1/σ of a row.
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "loho-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let (mean, rstd) = moments(xr, self.eps);
            for i in 0..d {
                yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let (dx, dw, db) = with_data(&[x, w, g], |s| {
            let (x, w, g) = (s[0], s[1], s[2]);
            let (mut dx, mut dw, mut db) = (vec![0f32; x.len()], vec![0f32; d], vec![0f32; d]);
            let mut xhat = vec![0f32; d];
            for ((xr, gr), dxr) in x
                .chunks_exact(d)
                .zip(g.chunks_exact(d))
                .zip(dx.chunks_exact_mut(d))
            {
                let (mean, rstd) = moments(xr, self.eps);
                let (mut sum_gw, mut sum_gwx) = (0f32, 0f32);
                for i in 0..d {
                    xhat[i] = (xr[i] - mean) * rstd;
                    dw[i] += gr[i] * xhat[i];
                    db[i] += gr[i];
                    let gw = gr[i] * w[i];
                    sum_gw += gw;
                    sum_gwx += gw * xhat[i];
                }
                let (m1, m2) = (sum_gw / d as f32, sum_gwx / d as f32);
                for i in 0..d {
                    dxr[i] = rstd * (gr[i] * w[i] - m1 - xhat[i] * m2);
                }
            }
            (dx, dw, db)
        })?;
        Ok((
            Some(tensor_like(dx, x)?),
            Some(tensor_like(dw, w)?),
            Some(tensor_like(db, b)?),
        ))
    }
}

struct MaskedSoftmax {
    scale: f32,
    mask: Mask,
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "loho-masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let (b, h, t, keys) = l.shape().dims4()?;
        let mut y = vec![0f32; x.len()];
        let rows = x.chunks_exact(keys).zip(y.chunks_exact_mut(keys));
        for (r, (xr, yr)) in rows.enumerate() {
            let (row, q) = (r / (h * t), r % t);
            debug_assert!(row < b);
            let mut max = f32::NEG_INFINITY;
            for (k, v) in xr.iter().enumerate() {
                if self.mask.allows(row, keys, q, k) {
                    max = max.max(v * self.scale);
                }
            }
            if max == f32::NEG_INFINITY {
                continue; // no key to see: all weights stay 0
            }
            let mut sum = 0f32;
            for (k, (v, out)) in xr.iter().zip(yr.iter_mut()).enumerate() {
                if self.mask.allows(row, keys, q, k) {
                    *out = (v * self.scale - max).exp();
                    sum += *out;
                }
            }
            yr.iter_mut().for_each(|v| *v /= sum);
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let keys = x.dim(D::Minus1)?;
        let dx = with_data(&[res, g], |s| {
            let mut dx = vec![0f32; s[0].len()];
            let rows = s[0].chunks_exact(keys).zip(s[1].chunks_exact(keys));
            for ((y, g), d) in rows.zip(dx.chunks_exact_mut(keys)) {
                let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                for k in 0..keys {
                    d[k] = self.scale * y[k] * (g[k] - dot);
                }
            }
            dx
        })?;
        Ok(Some(tensor_like(dx, x)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};
    use candle_nn::Module;

    use super::*;
    use crate::max_diff;

    fn randn(shape: &[usize], seed: u64) -> Var {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| crate::normal(&mut rng)).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// The fused op and candle's composite ops give the same values and gradients for a
    /// random weighting of the output.
    fn check(
        vars: &[&Var],
        fused: impl Fn(&[&Tensor]) -> Result<Tensor>,
        composite: impl Fn(&[&Tensor]) -> Result<Tensor>,
    ) {
        let ts: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
        let (a, b) = (fused(&ts).unwrap(), composite(&ts).unwrap());
        assert!(
            max_diff(&a, &b) <= 1e-5,
            "values differ by {}",
            max_diff(&a, &b)
        );
        let w = randn(a.dims(), 99);
        let ga = (a * w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (b * w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in vars {
            let (x, y) = (ga.get(v).unwrap(), gb.get(v).unwrap());
            let d = max_diff(x, y);
            assert!(
                d <= 1e-4,
                "gradients of a {:?} input differ by {d}",
                v.shape()
            );
        }
    }

    #[test]
    fn layer_norm_bias_relu_and_linear_match_candles_composite_ops() {
        let (x, w, b) = (randn(&[3, 5, 8], 1), randn(&[8], 2), randn(&[8], 3));
        check(
            &[&x, &w, &b],
            |t| layer_norm(t[0], t[1], t[2], 1e-5),
            |t| {
                let mean = t[0].mean_keepdim(D::Minus1)?;
                let xc = t[0].broadcast_sub(&mean)?;
                let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
                let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
                xn.broadcast_mul(t[1])?.broadcast_add(t[2])
            },
        );
        let pos = randn(&[5, 8], 4);
        check(
            &[&x, &pos],
            |t| add_rows(t[0], t[1]),
            |t| t[0].broadcast_add(t[1]),
        );
        check(&[&x], |t| relu(t[0]), |t| t[0].relu());
        let (lw, lb) = (randn(&[6, 8], 5), randn(&[6], 6));
        check(
            &[&x, &lw, &lb],
            |t| linear(t[0], t[1], Some(t[2])),
            |t| candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(t[0]),
        );
    }

    #[test]
    fn masked_softmax_matches_an_additive_mask_and_hides_padding() {
        let x = randn(&[2, 3, 4, 7], 7);
        let keys: Vec<bool> = (0..14).map(|i| i % 7 != 2 && i != 12).collect();
        let mask = Mask {
            prefix: 4,
            past: 3,
            keys: Some(Arc::new(keys)),
        };
        let dev = Device::Cpu;
        check(
            &[&x],
            |t| masked_softmax(t[0], 0.5, &mask),
            |t| {
                let add = mask.additive(2, 4, 7, &dev)?;
                candle_nn::ops::softmax(&(t[0] * 0.5)?.broadcast_add(&add)?, D::Minus1)
            },
        );
        let y = masked_softmax(x.as_tensor(), 0.5, &mask).unwrap();
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        // Row 0, head 0, query 0 sits at position 3 < prefix 4: it sees keys 0, 1, 3 (2 is
        // padding) and nothing after the prefix.
        let first = &y[..7];
        assert!(
            first[2] == 0.0 && first[4..].iter().all(|&v| v == 0.0),
            "{first:?}"
        );
        assert!((first.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
