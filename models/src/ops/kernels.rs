//! The kernels behind [`super`]'s functions: candle custom ops with a forward over plain
//! slices and a backward.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{slice, tensor_like, with_data, Mask, Packed};

/// Sums of the `n` columns of row-major rows: a repeated bias's gradient.
fn column_sums(rows: &[f32], n: usize) -> Vec<f32> {
    let mut sums = vec![0f32; n];
    for row in rows.chunks_exact(n) {
        sums.iter_mut().zip(row).for_each(|(s, g)| *s += g);
    }
    sums
}

pub(super) struct AddRows;

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
        let db = with_data(&[g], |s| column_sums(s[0], n))?;
        Ok((Some(g.clone()), Some(tensor_like(db, b)?)))
    }
}

/// `x · wᵀ + b` (then ReLU if `relu`) as one node: the bias and the activation add no
/// gradient of their own to zero and accumulate.
pub(super) struct Linear {
    pub(super) relu: bool,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "loho-linear"
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
        use candle_core::backend::BackendStorage;
        let ((m, k), (n, k2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 {
            candle_core::bail!("linear: rows of {k} against a weight of {n} × {k2}");
        }
        let y = s1.matmul(s2, (1, m, n, k), l1, &l2.transpose(0, 1)?)?;
        let CpuStorage::F32(mut y) = y else {
            candle_core::bail!("linear: f32 only");
        };
        let b = slice(s3, l3)?;
        for row in y.chunks_exact_mut(n) {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
            if self.relu {
                row.iter_mut().for_each(|y| *y = y.max(0.0));
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = b.elem_count();
        let (g, db) = with_data(&[res, g], |s| {
            let mut g = s[1].to_vec();
            if self.relu {
                g.iter_mut()
                    .zip(s[0])
                    .for_each(|(g, y)| *g = if *y > 0.0 { *g } else { 0.0 });
            }
            let db = column_sums(&g, n);
            (g, db)
        })?;
        let g = tensor_like(g, res)?;
        let dx = g.matmul(&w.detach())?;
        let dw = g.t()?.matmul(&x.detach())?;
        Ok((Some(dx), Some(dw), Some(tensor_like(db, b)?)))
    }
}

/// The permutation between token rows (b·t, heads·hd) and heads (b, heads, t, hd), or
/// (b, heads, hd, t) when `transposed`. With `packed`, the rows are only the real tokens
/// ([`Packed`]) and the heads hold zeros for padding.
pub(super) struct Heads {
    pub(super) batch: usize,
    pub(super) heads: usize,
    pub(super) tokens: usize,
    /// Rows to heads; false: heads to rows.
    pub(super) split: bool,
    pub(super) transposed: bool,
    pub(super) packed: Option<Packed>,
}

impl Heads {
    /// Token rows on the row side.
    fn rows(&self) -> usize {
        self.packed
            .as_ref()
            .map_or(self.batch * self.tokens, Packed::len)
    }

    /// Width of a head, from the length of `src` (rows if `split`, else heads).
    fn head_dim(&self, len: usize, split: bool) -> usize {
        let slots = if split {
            self.rows()
        } else {
            self.batch * self.tokens
        };
        len / (slots * self.heads)
    }

    fn permute(&self, src: &[f32], split: bool) -> Vec<f32> {
        let (b, h, t) = (self.batch, self.heads, self.tokens);
        let hd = self.head_dim(src.len(), split);
        let len = if split { b * t } else { self.rows() } * h * hd;
        let mut out = vec![0f32; len];
        for bi in 0..b {
            for ti in 0..t {
                let r = match &self.packed {
                    Some(p) => match p.row(bi * t + ti) {
                        Some(r) => r,
                        None => continue, // padding: zero heads, no row
                    },
                    None => bi * t + ti,
                };
                for hi in 0..h {
                    let row = (r * h + hi) * hd;
                    if self.transposed {
                        // Element j of the head sits at ((bi·h + hi)·hd + j)·t + ti.
                        let base = (bi * h + hi) * hd * t + ti;
                        for j in 0..hd {
                            let head = base + j * t;
                            if split {
                                out[head] = src[row + j];
                            } else {
                                out[row + j] = src[head];
                            }
                        }
                        continue;
                    }
                    let head = ((bi * h + hi) * t + ti) * hd;
                    let (from, to) = if split { (row, head) } else { (head, row) };
                    out[to..to + hd].copy_from_slice(&src[from..from + hd]);
                }
            }
        }
        out
    }

    fn shape(&self, n: usize, split: bool) -> Shape {
        let (b, h, t) = (self.batch, self.heads, self.tokens);
        let hd = self.head_dim(n, split);
        match (split, self.transposed) {
            (true, false) => Shape::from((b, h, t, hd)),
            (true, true) => Shape::from((b, h, hd, t)),
            (false, _) => Shape::from((self.rows(), h * hd)),
        }
    }
}

impl CustomOp1 for Heads {
    fn name(&self) -> &'static str {
        "loho-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let y = self.permute(x, self.split);
        Ok((CpuStorage::F32(y), self.shape(x.len(), self.split)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_data(&[g], |s| self.permute(s[0], !self.split))?;
        Ok(Some(tensor_like(dx, x)?))
    }
}

pub(super) struct Add;

impl CustomOp2 for Add {
    fn name(&self) -> &'static str {
        "loho-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let y = a.iter().zip(b).map(|(a, b)| a + b).collect();
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(g.clone()), Some(g.clone())))
    }
}

pub(super) struct Relu;

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

pub(super) struct LayerNorm {
    pub(super) eps: f32,
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

pub(super) struct Attention {
    pub(super) scale: f32,
    pub(super) mask: Mask,
    /// The output as the real tokens' rows only.
    pub(super) packed: Option<Packed>,
    /// The forward's weights, which the backward takes instead of computing them again.
    pub(super) kept: Mutex<Option<Vec<f32>>>,
}

impl Attention {
    /// The attention weights of scores (b, heads, t, keys), in place.
    fn softmax(&self, x: &mut [f32], heads: usize, t: usize, keys: usize) {
        for (r, row) in x.chunks_exact_mut(keys).enumerate() {
            let (b, q) = (r / (heads * t), r % t);
            // A padding query of packed rows has no output row: nothing to weigh.
            if let Some(p) = &self.packed {
                if p.row(b * t + q).is_none() {
                    row.fill(0.0);
                    continue;
                }
            }
            let seen = (self.mask.last_key(b, q) + 1).min(keys);
            let real = |k: usize| self.mask.real(b, keys, k);
            let max = (0..seen)
                .filter(|&k| real(k))
                .fold(f32::NEG_INFINITY, |m, k| m.max(row[k]));
            if max == f32::NEG_INFINITY {
                row.fill(0.0); // no key to see
                continue;
            }
            for v in &mut row[..seen] {
                *v = ((*v - max) * self.scale).exp();
            }
            row[seen..].fill(0.0);
            if self.mask.keys.is_some() {
                (0..seen).filter(|&k| !real(k)).for_each(|k| row[k] = 0.0);
            }
            let inv = 1.0 / row[..seen].iter().sum::<f32>();
            row[..seen].iter_mut().for_each(|v| *v *= inv);
        }
    }

    /// Weights (b, heads, t, keys) of queries and transposed keys, outside the graph.
    pub(super) fn weights(&self, q: &Tensor, kt: &Tensor) -> Result<Tensor> {
        let scores = q.detach().matmul(&kt.detach())?;
        let (_, h, t, keys) = scores.dims4()?;
        let mut w = scores.flatten_all()?.to_vec1::<f32>()?;
        self.softmax(&mut w, h, t, keys);
        Tensor::from_vec(w, scores.shape(), scores.device())
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "loho-attention"
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
        use candle_core::backend::BackendStorage;
        let (b, h, t, hd) = l1.shape().dims4()?;
        let keys = l2.shape().dims4()?.3;
        let scores = s1.matmul(s2, (b * h, t, keys, hd), l1, l2)?;
        let CpuStorage::F32(mut w) = scores else {
            candle_core::bail!("attention: f32 only");
        };
        self.softmax(&mut w, h, t, keys);
        let wl = Layout::contiguous((b, h, t, keys));
        let w = CpuStorage::F32(w);
        let y = w.matmul(s3, (b * h, t, hd, keys), &wl, l3)?;
        if let (CpuStorage::F32(w), Ok(mut kept)) = (w, self.kept.lock()) {
            *kept = Some(w);
        }
        let merge = Heads {
            batch: b,
            heads: h,
            tokens: t,
            split: false,
            transposed: false,
            packed: self.packed.clone(),
        };
        let y = merge.permute(y.as_slice::<f32>()?, false);
        Ok((CpuStorage::F32(y), Shape::from((merge.rows(), h * hd))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        kt: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, h, t, _) = q.dims4()?;
        let keys = kt.dim(3)?;
        let kept = self.kept.lock().ok().and_then(|mut k| k.take());
        let w = match kept {
            Some(w) => Tensor::from_vec(w, (b, h, t, keys), q.device())?,
            None => self.weights(q, kt)?,
        };
        let split = Heads {
            batch: b,
            heads: h,
            tokens: t,
            split: true,
            transposed: false,
            packed: self.packed.clone(),
        };
        let g = tensor_like(with_data(&[g], |s| split.permute(s[0], true))?, q)?;
        let dv = w.t()?.matmul(&g)?;
        let dw = g.matmul(&v.detach().t()?)?;
        // Through the softmax: scale · w · (dw − Σ w · dw) per row.
        let ds = with_data(&[&w, &dw], |s| {
            let mut ds = vec![0f32; s[0].len()];
            let rows = s[0].chunks_exact(keys).zip(s[1].chunks_exact(keys));
            for ((w, g), d) in rows.zip(ds.chunks_exact_mut(keys)) {
                let dot: f32 = w.iter().zip(g).map(|(w, g)| w * g).sum();
                for k in 0..keys {
                    d[k] = self.scale * w[k] * (g[k] - dot);
                }
            }
            ds
        })?;
        let ds = tensor_like(ds, &w)?;
        let dq = ds.matmul(&kt.detach().t()?)?;
        let dkt = q.detach().t()?.matmul(&ds)?;
        Ok((Some(dq), Some(dkt), Some(dv)))
    }
}
