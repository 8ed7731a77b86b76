//! One optimisation step: the losses of a batch, their gradients and the update, with the
//! batch split into shards trained on as many threads.
//!
//! Why shards: on this CPU candle's threads inside a step's ops buy nothing (a step of
//! batch 16 took 158 ms on one thread and 164 on two, `loho bench train`): the matrices
//! are small, so the second thread spends its time at candle's barriers. A shard per
//! thread, each running its ops on its own, keeps both cores on arithmetic. The
//! gradients of the shards add up to the whole batch's, because each shard's losses are
//! weighted by its share of the batch's words, actions, pointers and colours, and the flow
//! noise is drawn for the whole batch and cut per shard: the step is the same maths for
//! any number of shards (equal to float rounding, tested).

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::batch::Batch;
use super::loss::set_cross_entropy;
use super::optim::AdamW;
use super::{step_rng, Phases, RunState, StepStats};
use crate::model::Loho;
use crate::{normal, ModelError};

/// Forward, backward and update on one batch given as shards of consecutive samples.
pub(super) fn train_on(
    model: &Loho,
    opt: &mut AdamW,
    state: &mut RunState,
    shards: &[Batch],
) -> Result<StepStats, ModelError> {
    let tc = &state.config;
    let totals = Counts::of(shards.iter());
    let flow = FlowNoise::draw(
        &mut step_rng(tc.seed, state.step, 1),
        totals.act,
        tc.noise_draws.max(1),
        model.config().head.action_dims(),
    );
    let results: Vec<Result<Shard, ModelError>> = std::thread::scope(|s| {
        let mut first = 0;
        let handles: Vec<_> = shards
            .iter()
            .map(|b| {
                let acts = first..first + b.act_rows.len();
                first = acts.end;
                let (flow, totals) = (&flow, &totals);
                s.spawn(move || shard(model, b, flow.rows(acts), totals, tc.action_weight))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("training thread"))
            .collect()
    });
    let shards: Vec<Shard> = results.into_iter().collect::<Result<_, _>>()?;
    let t = Instant::now();
    let mut stats = StepStats {
        lr: tc.lr_at(state.step),
        ..StepStats::default()
    };
    let n = shards.len() as u32;
    let mut grads = Vec::with_capacity(shards.len());
    for s in shards {
        stats.loss += s.stats.loss;
        stats.text += s.stats.text;
        stats.action += s.stats.action;
        stats.pointer += s.stats.pointer;
        stats.colour += s.stats.colour;
        // Shards run side by side: a phase takes their mean.
        stats.phases.forward += s.stats.phases.forward / n;
        stats.phases.backward += s.stats.phases.backward / n;
        grads.push(s.grads);
    }
    state.step += 1;
    stats.grad_norm = opt.step(&grads, stats.lr, state.step, tc.clip, grads.len())?;
    stats.phases.update = t.elapsed();
    Ok(stats)
}

/// How many of each labelled thing a batch (or its shards together) holds.
struct Counts {
    text: usize,
    colour: usize,
    act: usize,
    pointer: usize,
}

impl Counts {
    fn of<'a>(shards: impl Iterator<Item = &'a Batch>) -> Self {
        let mut c = Self {
            text: 0,
            colour: 0,
            act: 0,
            pointer: 0,
        };
        for b in shards {
            c.text += b.text.len();
            c.colour += b.colour.len();
            c.act += b.act_rows.len();
            c.pointer += b.pointer.len();
        }
        c
    }
}

/// The flow-matching noise and times of a whole batch: `draws` rows per `<act>`, draw
/// after draw (row `d · acts + a`), as one unsharded batch draws them.
struct FlowNoise {
    acts: usize,
    draws: usize,
    dims: usize,
    noise: Vec<f32>,
    times: Vec<f32>,
}

impl FlowNoise {
    fn draw(rng: &mut ChaCha8Rng, acts: usize, draws: usize, dims: usize) -> Self {
        let m = acts * draws;
        let noise = (0..m * dims).map(|_| normal(rng)).collect();
        let times = (0..m).map(|_| rng.gen::<f32>()).collect();
        Self {
            acts,
            draws,
            dims,
            noise,
            times,
        }
    }

    /// (noise, times) of the `<act>` rows `acts`, draw after draw.
    fn rows(&self, acts: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
        let (mut noise, mut times) = (Vec::new(), Vec::new());
        for d in 0..self.draws {
            let rows = d * self.acts + acts.start..d * self.acts + acts.end;
            noise.extend_from_slice(&self.noise[rows.start * self.dims..rows.end * self.dims]);
            times.extend_from_slice(&self.times[rows]);
        }
        (noise, times)
    }
}

/// A shard's gradients and its share of the step's losses.
struct Shard {
    grads: GradStore,
    stats: StepStats,
}

/// Forward and backward of one shard, its losses weighted by its share of the batch.
fn shard(
    model: &Loho,
    b: &Batch,
    (noise, times): (Vec<f32>, Vec<f32>),
    totals: &Counts,
    action_weight: f64,
) -> Result<Shard, ModelError> {
    let t = Instant::now();
    let (text, colour, action, pointer) = losses(model, b, noise, times)?;
    let own = Counts::of(std::iter::once(b));
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    let text = (text * share(own.text, totals.text))?;
    let colour = colour
        .map(|c| c * share(own.colour, totals.colour))
        .transpose()?;
    let action = action.map(|a| a * share(own.act, totals.act)).transpose()?;
    let pointer = pointer
        .map(|p| p * share(own.pointer, totals.pointer))
        .transpose()?;
    let mut loss = text.clone();
    if let Some(c) = &colour {
        loss = (loss + c)?;
    }
    for extra in [&action, &pointer].into_iter().flatten() {
        loss = (loss + (extra * action_weight)?)?;
    }
    let forward = t.elapsed();
    let t = Instant::now();
    let grads = loss.backward()?;
    let scalar = |x: Option<Tensor>| -> Result<f32, ModelError> {
        Ok(match x {
            Some(x) => x.to_scalar()?,
            None => 0.0,
        })
    };
    Ok(Shard {
        grads,
        stats: StepStats {
            phases: Phases {
                forward,
                backward: t.elapsed(),
                ..Phases::default()
            },
            loss: loss.to_scalar()?,
            text: text.to_scalar()?,
            action: scalar(action)?,
            pointer: scalar(pointer)?,
            colour: scalar(colour)?,
            ..StepStats::default()
        },
    })
}

/// The losses of a batch: text, colour (`None` without labelled objects), action and
/// pointer (`None` when the batch holds only "done" samples, or no keypose on an object);
/// `noise` and `times` are the flow draws of its `<act>` rows, draw after draw.
#[allow(clippy::type_complexity)]
fn losses(
    model: &Loho,
    b: &Batch,
    noise: Vec<f32>,
    times: Vec<f32>,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>, Option<Tensor>), ModelError> {
    let mut model = model.clone();
    let dev = model.device().clone();
    // Batches are drawn on the CPU.
    let frames = b.frames.to_device(&dev)?;
    let h = model.forward_train(&b.instructions, &frames, &b.subtasks)?;
    let (n, t, d) = h.dims3()?;
    let flat = h.reshape((n * t, d))?;
    let rows: Vec<u32> = b.text.iter().map(|r| r.0).collect();
    let targets: Vec<u32> = b.text.iter().map(|r| r.1).collect();
    let nt = rows.len();
    let logits = model.logits(&flat.index_select(&Tensor::from_vec(rows, nt, &dev)?, 0)?)?;
    let text = set_cross_entropy(&logits, &targets, &b.also)?;
    let colour = if b.colour.is_empty() {
        None
    } else {
        let nc = b.colour.len();
        let rows = Tensor::from_vec(b.colour.iter().map(|c| c.0).collect(), nc, &dev)?;
        let words = Tensor::from_vec(b.colour.iter().map(|c| c.1).collect(), nc, &dev)?;
        let logits = model.logits(&flat.index_select(&rows, 0)?)?;
        Some(candle_nn::loss::cross_entropy(&logits, &words)?)
    };
    let na = b.act_rows.len();
    if na == 0 {
        return Ok((text, colour, None, None));
    }
    let (cond, pointer_logits, anchor) = model.act_train(&h, &frames, &b.act_rows, &b.pointer)?;
    let pointer = if b.pointer.is_empty() {
        None
    } else {
        let (_, k, objects) = pointer_logits.dims3()?;
        let np = b.pointer.len();
        let which = Tensor::from_vec(b.pointer.iter().map(|p| p.0).collect(), np, &dev)?;
        let target = Tensor::from_vec(b.pointer.iter().map(|p| p.1).collect(), np, &dev)?;
        let chosen = pointer_logits
            .reshape((na * k, objects))?
            .index_select(&which, 0)?;
        Some(candle_nn::loss::cross_entropy(&chosen, &target)?)
    };
    let m = times.len();
    let draws = m / na;
    let dims = model.config().head.action_dims();
    let cond = cond.repeat((draws, 1))?;
    let mut target = b.actions.clone();
    for (row, action) in target.chunks_mut(dims).enumerate() {
        anchor.relative(row, action);
    }
    let target = Tensor::from_vec(target, (na, dims), &dev)?.repeat((draws, 1))?;
    let action = model.head().loss(
        &cond,
        &target,
        &Tensor::from_vec(noise, (m, dims), &dev)?,
        &Tensor::from_vec(times, m, &dev)?,
    )?;
    Ok((text, colour, Some(action), pointer))
}
