//! Where the action points: attention from `<act>` to the object tokens, one pointer per
//! keypose, whose pooled object states join the action head's condition.
//!
//! Why: without it the hidden state at `<act>` must carry a block's position to the
//! millimetre through the whole backbone, and a first model trained 66 minutes never
//! learned to (its picks landed 34 cm off, at random). A pointer turns "which object" into
//! a classification over a handful of tokens, trained directly on the object the oracle
//! picked or placed on; the head then only refines the pose from that object's state.

use candle_core::{Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ops;

#[derive(Clone)]
pub struct Pointer {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    keyposes: usize,
    d: usize,
}

impl Pointer {
    pub fn new(keyposes: usize, d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: linear(d, keyposes * d, vb.pp("query"))?,
            key: linear(d, d, vb.pp("key"))?,
            value: linear(d, d, vb.pp("value"))?,
            out: linear(keyposes * d, d, vb.pp("out"))?,
            keyposes,
            d,
        })
    }

    /// For hidden states at `<act>` (n, d), the object tokens' states (n, N, d) and which of
    /// them each pointer may pick (n, N, or per keypose n, keyposes, N; 1 or 0: padding
    /// never): the pointer logits (n, keyposes, N), the others at −1e9, and their softmax.
    pub fn weights(
        &self,
        act: &Tensor,
        objects: &Tensor,
        present: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (n, d, k) = (act.dim(0)?, self.d, self.keyposes);
        let q = ops::apply(&self.query, act)?.reshape((n, k, d))?;
        let keys = ops::apply(&self.key, objects)?;
        let logits = (q.matmul(&keys.transpose(1, 2)?.contiguous()?)? / (d as f64).sqrt())?;
        let allowed = match present.rank() {
            2 => present.unsqueeze(1)?,
            _ => present.clone(),
        };
        let mask = ((allowed - 1.0)? * 1e9)?;
        let logits = logits.broadcast_add(&mask)?;
        // The composite softmax: the fused one has no backward (candle-notes trap 1).
        let w = candle_nn::ops::softmax(&logits, D::Minus1)?;
        Ok((logits, w))
    }

    /// The action head's condition (n, d) for pointer weights `w` (n, keyposes, N): the
    /// state plus the objects' values pooled by `w`.
    pub fn condition(&self, act: &Tensor, objects: &Tensor, w: &Tensor) -> Result<Tensor> {
        let n = act.dim(0)?;
        let pooled = w
            .matmul(&ops::apply(&self.value, objects)?)?
            .reshape((n, self.keyposes * self.d))?;
        act + ops::apply(&self.out, &pooled)?
    }
}

/// How a decision turns the pointer's softmax into the object each keypose acts on.
///
/// Training pools by the softmax (`soft`), which is right when one object fits. When
/// several do — "pick up the pink block" with two pink blocks — the softmax splits between
/// them, and a soft anchor is their mean: a pick in the empty table between them. `argmax`
/// and `sample` commit to one object; `sample` draws it from the softmax, so a retry after
/// a failed step may try another. Chosen on the val split, like the head's sampling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pointing {
    #[default]
    Soft,
    Argmax,
    Sample,
}

impl Pointing {
    /// The weights (n, keyposes, N) a decision uses: `w` itself, or one-hot rows. Keyposes
    /// marked `open` (a spot on bare table, which no object marks) keep the softmax: with no
    /// pointer label there, training conditioned and anchored them on it.
    pub fn choose(self, w: &Tensor, open: &[bool], rng: &mut impl Rng) -> Result<Tensor> {
        if self == Pointing::Soft {
            return Ok(w.clone());
        }
        let (n, k, objects) = w.dims3()?;
        let rows: Vec<Vec<f32>> = w.reshape((n * k, objects))?.to_vec2()?;
        let mut hot = vec![0f32; n * k * objects];
        for (r, (row, out)) in rows.iter().zip(hot.chunks_mut(objects)).enumerate() {
            if open.get(r % k) == Some(&true) {
                out.copy_from_slice(row);
                continue;
            }
            let i = match self {
                Pointing::Sample => {
                    let u: f32 = rng.gen();
                    let mut acc = 0.0;
                    row.iter()
                        .position(|&p| {
                            acc += p;
                            acc > u
                        })
                        .unwrap_or_else(|| argmax(row))
                }
                _ => argmax(row),
            };
            out[i] = 1.0;
        }
        Tensor::from_vec(hot, (n, k, objects), w.device())
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;

    #[test]
    fn padding_gets_no_weight_and_the_condition_depends_on_the_objects() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let p = Pointer::new(2, 8, vb).unwrap();
        let dev = Device::Cpu;
        let act = Tensor::randn(0f32, 1.0, (1, 8), &dev).unwrap();
        let objects = Tensor::randn(0f32, 1.0, (1, 3, 8), &dev).unwrap();
        let present = Tensor::new(&[[1f32, 1., 0.]], &dev).unwrap();
        let forward = |objects: &Tensor| {
            let (logits, w) = p.weights(&act, objects, &present).unwrap();
            (p.condition(&act, objects, &w).unwrap(), logits)
        };
        let (c, logits) = forward(&objects);
        assert_eq!(c.dims(), &[1, 8]);
        assert_eq!(logits.dims(), &[1, 2, 3]);
        let l: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
        assert!(
            l.iter().all(|row| row[2] < -1e8),
            "padding is masked: {l:?}"
        );
        // Changing the padded object changes nothing; changing a real one does.
        let pad_changed = Tensor::cat(
            &[
                &objects.narrow(1, 0, 2).unwrap(),
                &Tensor::ones((1, 1, 8), DType::F32, &dev).unwrap(),
            ],
            1,
        )
        .unwrap();
        let (c2, _) = forward(&pad_changed);
        let same = crate::max_diff(&c, &c2);
        assert!(same < 1e-6);
        let real_changed = (objects.clone() * 2.0).unwrap();
        let (c3, _) = forward(&real_changed);
        let diff = crate::max_diff(&c, &c3);
        assert!(diff > 1e-4);
    }

    #[test]
    fn pointing_commits_to_one_object_drawn_by_the_softmax() {
        use rand::SeedableRng;
        let dev = Device::Cpu;
        // Pick split 0.6 / 0.4 between two objects (two pink blocks), place sure of the third.
        let w = Tensor::new(&[[[0.6f32, 0.4, 0.], [0., 0., 1.]]], &dev).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let rows = |p: Pointing, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<Vec<f32>> {
            p.choose(&w, &[false, false], rng)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2()
                .unwrap()
        };
        assert_eq!(
            rows(Pointing::Soft, &mut rng),
            [[0.6, 0.4, 0.], [0., 0., 1.]]
        );
        assert_eq!(
            rows(Pointing::Argmax, &mut rng),
            [[1., 0., 0.], [0., 0., 1.]]
        );
        let mut first = 0;
        for _ in 0..1000 {
            let r = rows(Pointing::Sample, &mut rng);
            assert_eq!(r[1], [0., 0., 1.]);
            assert_eq!(r[0].iter().sum::<f32>(), 1.0, "one-hot: {r:?}");
            assert_eq!(r[0][2], 0.0, "never an object of weight 0");
            first += usize::from(r[0][0] == 1.0);
        }
        assert!(
            (540..660).contains(&first),
            "drawn 0.6 of the time: {first}/1000"
        );
        // A place on bare table keeps its softmax; the pick still commits.
        let w = Tensor::new(&[[[0.6f32, 0.4, 0.], [0.5, 0.2, 0.3]]], &dev).unwrap();
        let r: Vec<Vec<f32>> = Pointing::Argmax
            .choose(&w, &[false, true], &mut rng)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(r, [[1., 0., 0.], [0.5, 0.2, 0.3]]);
    }
}
