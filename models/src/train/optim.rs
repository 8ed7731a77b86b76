//! AdamW with decoupled weight decay; its moments are saved beside the checkpoint.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;

use crate::ops;

/// AdamW over named variables, with its moments kept so a run can be resumed.
pub(super) struct AdamW {
    /// (name, variable, first moment, second moment, decayed)
    vars: Vec<(String, Var, Tensor, Tensor, bool)>,
    weight_decay: f64,
}

/// One update's constants, applied to a variable in one pass on the CPU (the composite
/// version runs 15 ops over every parameter).
#[derive(Clone, Copy)]
struct Step {
    /// Gradient clipping factor.
    scale: f32,
    lr: f32,
    /// Bias corrections of the two moments.
    c1: f32,
    c2: f32,
    decay: f32,
}

impl Step {
    /// New (variable, first moment, second moment).
    fn apply(&self, v: &[f32], g: &[f32], m: &[f32], s: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (b1, b2, eps) = (BETA1 as f32, BETA2 as f32, EPS as f32);
        let (mut nv, mut nm, mut ns) = (v.to_vec(), m.to_vec(), s.to_vec());
        // Zipped slices of one length, so that the loop vectorises.
        for (((v, m), s), g) in nv.iter_mut().zip(&mut nm).zip(&mut ns).zip(g) {
            let g = g * self.scale;
            *m = b1 * *m + (1.0 - b1) * g;
            *s = b2 * *s + (1.0 - b2) * g * g;
            let update = (*m / self.c1) / ((*s / self.c2).sqrt() + eps) + self.decay * *v;
            *v -= self.lr * update;
        }
        (nv, nm, ns)
    }
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    pub(super) fn new(map: &VarMap, weight_decay: f64) -> candle_core::Result<Self> {
        let data = map.data().lock().expect("var map lock");
        // Frozen tables (an open vocabulary's pieces) are not trained.
        let mut names: Vec<&String> = data
            .keys()
            .filter(|n| !crate::checkpoint::frozen(n))
            .collect();
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

    /// One update at (1-based) step `t` with the sum of the shards' gradients `grads`, on
    /// `threads` threads, each updating a share of the variables (the step's shards are
    /// done, so their cores are free); returns the gradient norm before clipping.
    pub(super) fn step(
        &mut self,
        grads: &[GradStore],
        lr: f64,
        t: usize,
        clip: f64,
        threads: usize,
    ) -> candle_core::Result<f32> {
        let sizes: Vec<usize> = self.vars.iter().map(|(_, v, ..)| v.elem_count()).collect();
        let summed = in_parallel(&mut self.vars, &sizes, threads, |(_, v, ..)| {
            summed(grads, v)
        })
        .into_iter()
        .collect::<candle_core::Result<Vec<_>>>()?;
        let norm = summed
            .iter()
            .flatten()
            .map(|(_, sq)| sq)
            .sum::<f32>()
            .sqrt();
        let scale = if norm as f64 > clip {
            clip / norm as f64
        } else {
            1.0
        };
        let (c1, c2) = (1.0 - BETA1.powi(t as i32), 1.0 - BETA2.powi(t as i32));
        let weight_decay = self.weight_decay;
        let mut work: Vec<_> = self.vars.iter_mut().zip(summed).collect();
        in_parallel(&mut work, &sizes, threads, |((_, v, m, s, decayed), g)| {
            let Some((g, _)) = g else { return Ok(()) };
            let decay = if *decayed { weight_decay } else { 0.0 };
            if ops::fused(g) {
                let step = Step {
                    scale: scale as f32,
                    lr: lr as f32,
                    c1: c1 as f32,
                    c2: c2 as f32,
                    decay: decay as f32,
                };
                let (nv, nm, ns) = ops::with_data(&[v.as_tensor(), g, m, s], |d| {
                    step.apply(d[0], d[1], d[2], d[3])
                })?;
                let dev = g.device();
                *m = Tensor::from_vec(nm, m.shape(), dev)?;
                *s = Tensor::from_vec(ns, s.shape(), dev)?;
                return v.set(&Tensor::from_vec(nv, v.shape(), dev)?);
            }
            let g = (&*g * scale)?;
            *m = ((&*m * BETA1)? + (&g * (1.0 - BETA1))?)?;
            *s = ((&*s * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let mut update = ((&*m / c1)? / ((&*s / c2)?.sqrt()? + EPS)?)?;
            if *decayed {
                update = (update + (v.as_tensor() * weight_decay)?)?;
            }
            v.set(&(v.as_tensor() - (update * lr)?)?)
        })
        .into_iter()
        .collect::<candle_core::Result<()>>()?;
        Ok(norm)
    }

    pub(super) fn save(&self, path: &Path) -> candle_core::Result<()> {
        let mut out = HashMap::new();
        for (n, _, m, s, _) in &self.vars {
            out.insert(format!("m.{n}"), m.clone());
            out.insert(format!("v.{n}"), s.clone());
        }
        candle_core::safetensors::save(&out, path)
    }

    pub(super) fn load(&mut self, path: &Path, device: &Device) -> candle_core::Result<()> {
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

/// The sum of a variable's gradients in `grads` and its squared norm; `None` if it has none.
fn summed(grads: &[GradStore], v: &Var) -> candle_core::Result<Option<(Tensor, f32)>> {
    let gs: Vec<&Tensor> = grads.iter().filter_map(|g| g.get(v)).collect();
    let Some(&first) = gs.first() else {
        return Ok(None);
    };
    if !ops::fused(first) {
        let mut g = first.clone();
        for other in &gs[1..] {
            g = (g + *other)?;
        }
        let sq = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        return Ok(Some((g, sq)));
    }
    let (sum, sq) = ops::with_data(&gs, |d| {
        let mut sum = d[0].to_vec();
        for other in &d[1..] {
            sum.iter_mut().zip(*other).for_each(|(s, g)| *s += g);
        }
        let sq = sum.iter().map(|g| g * g).sum::<f32>();
        (sum, sq)
    })?;
    Ok(Some((
        Tensor::from_vec(sum, first.shape(), first.device())?,
        sq,
    )))
}

/// `f` on every item, the items split over up to `threads` threads into runs of about
/// equal total `sizes`; the results in the items' order.
fn in_parallel<T: Send, R: Send>(
    items: &mut [T],
    sizes: &[usize],
    threads: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let share = sizes.iter().sum::<usize>().div_ceil(threads.max(1)).max(1);
    let mut runs: Vec<&mut [T]> = Vec::new();
    let (mut rest, mut start, mut filled) = (items, 0, 0);
    for (i, size) in sizes.iter().enumerate() {
        filled += size;
        if filled >= share || i + 1 == sizes.len() {
            let (run, tail) = std::mem::take(&mut rest).split_at_mut(i + 1 - start);
            runs.push(run);
            (rest, start, filled) = (tail, i + 1, 0);
        }
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| s.spawn(move || run.iter_mut().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("update thread"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::Init;

    use super::*;

    /// Three updates of one run in one pass per variable and in composite ops.
    fn run(fused: bool) -> Vec<f32> {
        let (map, vb) = crate::train::seeded_var_builder(3, &Device::Cpu);
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let w = vb.get_with_hints((3, 4), "w", init).unwrap();
        let b = vb.get_with_hints(4, "b", Init::Const(0.5)).unwrap();
        ops::set_fused(fused);
        let mut opt = AdamW::new(&map, 0.1).unwrap();
        for t in 1..=3 {
            let loss = (w.matmul(&Tensor::ones((4, 1), DType::F32, &Device::Cpu).unwrap()))
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                + b.sqr().unwrap().sum_all().unwrap();
            let grads = loss.unwrap().backward().unwrap();
            opt.step(&[grads], 1e-2, t, 0.5, 2).unwrap();
        }
        ops::set_fused(true);
        let mut out: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        out.extend(b.to_vec1::<f32>().unwrap());
        out
    }

    #[test]
    fn the_one_pass_update_is_adamw() {
        let (a, b) = (run(true), run(false));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }
}
