//! The continuous action head: a residual MLP with adaLN (the Orthus/MAR shape), trained by
//! flow matching and sampled with a few Euler steps.
//!
//! It maps Gaussian noise to an action vector (K keyposes × 6 numbers, normalised to
//! [−1, 1]) along a velocity field conditioned on the backbone's hidden state at `<act>`
//! and the flow time. Flow matching keeps several valid answers apart (which of two red
//! blocks to take) where a regression head would average them into an empty spot.

use candle_core::{Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops;
use crate::pointer::Pointing;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Width of the residual stream.
    pub hidden: usize,
    pub blocks: usize,
    /// Keyposes per action (2: pick, place).
    pub keyposes: usize,
    /// Euler steps when sampling.
    pub flow_steps: usize,
    /// Actions sampled per decision (in one batch); the medoid is taken, so a stray
    /// sample does not become a stray motion. Chosen on the val split, not trained.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Scale of the flow's starting noise (1 = as trained; below 1 leans to the mode).
    #[serde(default = "default_noise_scale")]
    pub noise_scale: f32,
    /// How a decision commits to the objects the pointers pick (default: as trained).
    #[serde(default)]
    pub pointing: Pointing,
    /// How the sub-task text is written ([`crate::decode`]).
    #[serde(default)]
    pub decoding: Decoding,
    /// Parallel decoding: tokens filled in together, and the passes that fill a block.
    #[serde(default = "default_block")]
    pub block: usize,
    /// Passes at most; each fixes its share of the block's open tokens.
    #[serde(default = "default_refine_steps")]
    pub refine_steps: usize,
    /// A pass also fixes every open token the model gives at least this probability
    /// (1: only the share; lower takes fewer passes where the model is sure).
    #[serde(default = "default_confidence")]
    pub confidence: f32,
}

// What a config written before a field existed gets for it.
fn default_samples() -> usize {
    1
}
fn default_noise_scale() -> f32 {
    1.0
}
fn default_block() -> usize {
    4
}
fn default_refine_steps() -> usize {
    2
}
fn default_confidence() -> f32 {
    1.0
}

/// How the sub-task text is written: a token per forward pass, or blocks of tokens filled
/// in together (docs/model.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decoding {
    #[default]
    Ar,
    Parallel,
}

impl std::str::FromStr for Decoding {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ar" => Ok(Self::Ar),
            "parallel" => Ok(Self::Parallel),
            other => Err(format!("unknown decoding {other:?}: use ar or parallel")),
        }
    }
}

impl std::fmt::Display for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ar => "ar",
            Self::Parallel => "parallel",
        })
    }
}

/// Numbers per keypose: x, y, z, sin yaw, cos yaw, suction.
pub const KEYPOSE_DIMS: usize = 6;

impl HeadConfig {
    pub fn action_dims(&self) -> usize {
        self.keyposes * KEYPOSE_DIMS
    }

    /// Why the decoding settings cannot run, if they cannot.
    pub fn check_decoding(&self) -> std::result::Result<(), String> {
        let (b, s) = (self.block, self.refine_steps);
        if b == 0 {
            return Err("head.block is 0: a block holds at least one token".into());
        }
        if s == 0 {
            return Err("head.refine_steps is 0: a block takes at least one pass".into());
        }
        if s > b {
            return Err(format!(
                "head.refine_steps {s} > head.block {b}: each pass fixes at least one token"
            ));
        }
        if !(self.confidence > 0.0 && self.confidence <= 1.0) {
            return Err(format!(
                "head.confidence {} is not a probability in (0, 1]",
                self.confidence
            ));
        }
        Ok(())
    }
}

/// Layer norm without affine parameters (adaLN supplies scale and shift), written with
/// differentiable ops: the head is small, so one path serves training and inference.
fn plain_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + 1e-6)?.sqrt()?)
}

/// `norm(x) · (1 + scale) + shift`.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    plain_norm(x)?.mul(&(scale + 1.0)?)?.add(shift)
}

#[derive(Clone)]
struct ResBlock {
    ada: Linear,
    up: Linear,
    down: Linear,
}

impl ResBlock {
    fn new(h: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ada: linear(h, 3 * h, vb.pp("ada"))?,
            up: linear(h, 2 * h, vb.pp("up"))?,
            down: linear(2 * h, h, vb.pp("down"))?,
        })
    }

    /// `m`: this block's shift, scale and gate ([`Conditioning`]).
    fn forward(&self, x: &Tensor, m: &[Tensor]) -> Result<Tensor> {
        let h = modulate(x, &m[0], &m[1])?;
        let h = ops::apply(&self.down, &ops::apply(&self.up, &h)?.silu()?)?;
        x + h.mul(&m[2])?
    }
}

/// What a velocity needs besides `x`: every block's shift, scale and gate and the output's
/// shift and scale, which depend on the flow time and the condition only — so sampling
/// computes them for all its steps in one batch.
struct Conditioning {
    blocks: Vec<Vec<Tensor>>,
    out: Vec<Tensor>,
}

impl Conditioning {
    /// Rows `start..start + n` of every tensor.
    fn rows(&self, start: usize, n: usize) -> Result<Self> {
        let cut = |v: &Vec<Tensor>| v.iter().map(|t| t.narrow(0, start, n)).collect();
        Ok(Self {
            blocks: self.blocks.iter().map(cut).collect::<Result<_>>()?,
            out: cut(&self.out)?,
        })
    }
}

#[derive(Clone)]
pub struct ActionHead {
    input: Linear,
    time: Linear,
    cond: Linear,
    blocks: Vec<ResBlock>,
    final_ada: Linear,
    output: Linear,
    cfg: HeadConfig,
}

impl ActionHead {
    pub fn new(cfg: &HeadConfig, d_model: usize, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden;
        Ok(Self {
            input: linear(cfg.action_dims(), h, vb.pp("input"))?,
            time: linear(TIME_FEATURES, h, vb.pp("time"))?,
            cond: linear(d_model, h, vb.pp("cond"))?,
            blocks: (0..cfg.blocks)
                .map(|i| ResBlock::new(h, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<_>>()?,
            final_ada: linear(h, 2 * h, vb.pp("final_ada"))?,
            output: linear(h, cfg.action_dims(), vb.pp("output"))?,
            cfg: cfg.clone(),
        })
    }

    /// Velocity at `x` (n, action_dims) and flow times `t` (n,), for conditions `c` (n, d_model).
    pub fn velocity(&self, x: &Tensor, t: &Tensor, c: &Tensor) -> Result<Tensor> {
        self.velocity_given(x, &self.conditioning(t, c)?)
    }

    fn conditioning(&self, t: &Tensor, c: &Tensor) -> Result<Conditioning> {
        let cond =
            (ops::apply(&self.time, &time_features(t)?)? + ops::apply(&self.cond, c)?)?.silu()?;
        Ok(Conditioning {
            blocks: (self.blocks.iter())
                .map(|b| ops::apply(&b.ada, &cond)?.chunk(3, D::Minus1))
                .collect::<Result<_>>()?,
            out: ops::apply(&self.final_ada, &cond)?.chunk(2, D::Minus1)?,
        })
    }

    fn velocity_given(&self, x: &Tensor, k: &Conditioning) -> Result<Tensor> {
        let mut h = ops::apply(&self.input, x)?;
        for (b, m) in self.blocks.iter().zip(&k.blocks) {
            h = b.forward(&h, m)?;
        }
        ops::apply(&self.output, &modulate(&h, &k.out[0], &k.out[1])?)
    }

    /// Flow-matching loss: mean squared error of the predicted velocity on the straight path
    /// from `noise` to `target` at times `t` (all batched alike, n rows).
    pub fn loss(&self, c: &Tensor, target: &Tensor, noise: &Tensor, t: &Tensor) -> Result<Tensor> {
        let tt = t.unsqueeze(1)?;
        let xt = (noise.broadcast_mul(&(1.0 - &tt)?)? + target.broadcast_mul(&tt)?)?;
        let v = self.velocity(&xt, t, c)?;
        (v - (target - noise)?)?.sqr()?.mean_all()
    }

    /// Actions (n, action_dims) integrated from `noise` with `flow_steps` Euler steps.
    pub fn sample(&self, c: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let n = noise.dim(0)?;
        let steps = self.cfg.flow_steps.max(1);
        let dt = 1.0 / steps as f64;
        let times = (0..steps).flat_map(|i| std::iter::repeat_n((i as f64 * dt) as f32, n));
        let times = Tensor::from_iter(times, noise.device())?;
        let all = self.conditioning(&times, &c.repeat((steps, 1))?)?;
        let mut x = noise.clone();
        for i in 0..steps {
            x = (&x + (self.velocity_given(&x, &all.rows(i * n, n)?)? * dt)?)?;
        }
        Ok(x)
    }
}

const TIME_FEATURES: usize = 32;

/// Sinusoidal features of the flow time in [0, 1].
fn time_features(t: &Tensor) -> Result<Tensor> {
    let half = TIME_FEATURES / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (1000f32).powf(i as f32 / half as f32))
        .collect();
    let f = Tensor::from_vec(freqs, (1, half), t.device())?;
    let a = t.unsqueeze(1)?.broadcast_mul(&f)?;
    Tensor::cat(&[a.sin()?, a.cos()?], 1)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::Optimizer;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn cfg() -> HeadConfig {
        HeadConfig {
            samples: 1,
            noise_scale: 1.0,
            pointing: Pointing::Soft,
            hidden: 32,
            blocks: 2,
            keyposes: 2,
            flow_steps: 10,
            decoding: Decoding::Ar,
            block: 4,
            refine_steps: 2,
            confidence: 1.0,
        }
    }

    #[test]
    fn sampling_with_its_steps_conditioned_at_once_is_euler_on_the_velocity() {
        let dev = Device::Cpu;
        let (_, vb) = crate::train::seeded_var_builder(3, &dev);
        let head = ActionHead::new(&cfg(), 8, vb).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut draw = |n| {
            let v: Vec<f32> = (0..n).map(|_| crate::normal(&mut rng)).collect();
            v
        };
        let c = Tensor::from_vec(draw(3 * 8), (3, 8), &dev).unwrap();
        let noise = Tensor::from_vec(draw(3 * 12), (3, 12), &dev).unwrap();
        let mut x = noise.clone();
        for i in 0..10 {
            let t = Tensor::full(i as f32 / 10.0, 3, &dev).unwrap();
            x = (&x + (head.velocity(&x, &t, &c).unwrap() * 0.1).unwrap()).unwrap();
        }
        let d = crate::max_diff(&head.sample(&c, &noise).unwrap(), &x);
        assert!(d < 1e-5, "batched and stepwise sampling differ by {d}");
    }

    #[test]
    fn learns_to_move_noise_onto_the_conditioned_target() {
        // Two conditions, two targets: after training, samples land near their target.
        // Weights, noise and times come from fixed seeds so the test is the same on every run.
        let dev = Device::Cpu;
        let (vm, vb) = crate::train::seeded_var_builder(7, &dev);
        let head = ActionHead::new(&cfg(), 8, vb).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut draw = |shape: (usize, usize), f: &mut dyn FnMut(&mut ChaCha8Rng) -> f32| {
            let v = (0..shape.0 * shape.1).map(|_| f(&mut rng)).collect();
            Tensor::from_vec(v, shape, &dev).unwrap()
        };
        let c = Tensor::from_vec(
            vec![
                1f32, 0., 0., 0., 0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 0.,
            ],
            (2, 8),
            &dev,
        )
        .unwrap();
        let target = Tensor::from_vec(
            (0..24)
                .map(|i| if i < 12 { 0.5f32 } else { -0.3 })
                .collect(),
            (2, 12),
            &dev,
        )
        .unwrap();
        let mut opt = candle_nn::AdamW::new_lr(vm.all_vars(), 3e-3).unwrap();
        let reps = 32;
        let c_rep = c.repeat((reps, 1)).unwrap();
        let target_rep = target.repeat((reps, 1)).unwrap();
        for step in 0..1500 {
            // A lower rate at the end averages out the noise of single flow-matching draws.
            if step == 1000 {
                opt.set_learning_rate(3e-4);
            }
            let noise = draw((2 * reps, 12), &mut |r| crate::normal(r));
            let t = draw((2 * reps, 1), &mut |r| r.gen::<f32>())
                .flatten_all()
                .unwrap();
            let loss = head.loss(&c_rep, &target_rep, &noise, &t).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let noise = draw((2, 12), &mut |r| crate::normal(r));
        let out = head.sample(&c, &noise).unwrap();
        let err = crate::max_diff(&out, &target);
        assert!(err < 0.1, "sampled action is {err} from its target");
    }

    #[test]
    fn a_config_without_sampling_samples_as_trained() {
        let c: HeadConfig =
            serde_json::from_str(r#"{"hidden": 32, "blocks": 2, "keyposes": 2, "flow_steps": 10}"#)
                .unwrap();
        assert_eq!(c, cfg());
    }
}
