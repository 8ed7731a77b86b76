//! AdamW with decoupled weight decay; its moments are saved beside the checkpoint.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;

/// AdamW over named variables, with its moments kept so a run can be resumed.
pub(super) struct AdamW {
    /// (name, variable, first moment, second moment, decayed)
    vars: Vec<(String, Var, Tensor, Tensor, bool)>,
    weight_decay: f64,
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
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()?;
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
