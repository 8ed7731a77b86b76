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

    /// The variables it updates.
    pub(super) fn vars(&self) -> impl Iterator<Item = &Var> {
        self.vars.iter().map(|(_, v, ..)| v)
    }

    /// One update at (1-based) step `t`; returns the gradient norm before clipping.
    pub(super) fn step(
        &mut self,
        grads: &GradStore,
        lr: f64,
        t: usize,
        clip: f64,
    ) -> candle_core::Result<f32> {
        let mut sq = 0f32;
        for (_, v, ..) in &self.vars {
            if let Some(g) = grads.get(v) {
                sq += if ops::fused(g) {
                    ops::with_data(&[g], |d| d[0].iter().map(|x| x * x).sum::<f32>())?
                } else {
                    g.sqr()?.sum_all()?.to_scalar::<f32>()?
                };
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
            let decay = if *decayed { self.weight_decay } else { 0.0 };
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
                v.set(&Tensor::from_vec(nv, v.shape(), dev)?)?;
                continue;
            }
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
            opt.step(&grads, 1e-2, t, 0.5).unwrap();
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
