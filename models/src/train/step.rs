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
    teacher: Option<&Loho>,
    opt: &mut AdamW,
    state: &mut RunState,
    shards: &[Batch],
) -> Result<StepStats, ModelError> {
    let tc = &state.config;
    let totals = Counts::of(shards.iter());
    let weights = Weights {
        action: tc.action_weight,
        distill: tc.parallel.as_ref().map_or(0.0, |p| p.distill),
        short_flow: tc.flow_steps.is_some(),
    };
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
                let (flow, totals, weights) = (&flow, &totals, &weights);
                s.spawn(move || shard(model, teacher, b, flow.rows(acts), totals, weights))
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
        stats.parallel += s.stats.parallel;
        stats.distill += s.stats.distill;
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
    parallel: usize,
    distill: usize,
}

/// Weights of the losses beside the words'.
struct Weights {
    action: f64,
    distill: f64,
    /// Whether the action loss distils the flow into fewer steps
    /// ([`super::TrainConfig::flow_steps`]).
    short_flow: bool,
}

impl Counts {
    fn of<'a>(shards: impl Iterator<Item = &'a Batch>) -> Self {
        let mut c = Self {
            text: 0,
            colour: 0,
            act: 0,
            pointer: 0,
            parallel: 0,
            distill: 0,
        };
        for b in shards {
            c.text += b.text.len();
            c.colour += b.colour.len();
            c.act += b.act_rows.len();
            c.pointer += b.pointer.len();
            c.parallel += b.par_text.len();
            c.distill += b.distill.len();
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
    teacher: Option<&Loho>,
    b: &Batch,
    (noise, times): (Vec<f32>, Vec<f32>),
    totals: &Counts,
    weights: &Weights,
) -> Result<Shard, ModelError> {
    let t = Instant::now();
    let l = losses(model, teacher, weights.short_flow, b, noise, times)?;
    let own = Counts::of(std::iter::once(b));
    let share = |x: Option<Tensor>, n: usize, of: usize| -> Result<Option<Tensor>, ModelError> {
        Ok(x.map(|x| x * (n as f64 / of.max(1) as f64)).transpose()?)
    };
    let text = (l.text * (own.text as f64 / totals.text.max(1) as f64))?;
    let colour = share(l.colour, own.colour, totals.colour)?;
    let action = share(l.action, own.act, totals.act)?;
    let pointer = share(l.pointer, own.pointer, totals.pointer)?;
    let parallel = share(l.parallel, own.parallel, totals.parallel)?;
    let distill = share(l.distill, own.distill, totals.distill)?;
    let mut loss = text.clone();
    for (x, w) in [
        (&colour, 1.0),
        (&parallel, 1.0),
        (&distill, weights.distill),
        (&action, weights.action),
        (&pointer, weights.action),
    ] {
        if let Some(x) = x {
            loss = (loss + (x * w)?)?;
        }
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
            parallel: scalar(parallel)?,
            distill: scalar(distill)?,
            ..StepStats::default()
        },
    })
}

/// A batch's losses; all but the words' are `None` where the batch holds nothing they
/// measure (no labelled object, only "done" samples, no keypose on an object, no
/// parallel rows or no teacher).
struct Losses {
    text: Tensor,
    colour: Option<Tensor>,
    action: Option<Tensor>,
    pointer: Option<Tensor>,
    parallel: Option<Tensor>,
    distill: Option<Tensor>,
}

/// The language head's indices of `words` ([`Loho::index`]).
fn heads(model: &Loho, words: impl Iterator<Item = u32>) -> Result<Vec<u32>, ModelError> {
    words
        .map(|w| {
            model.index(w).ok_or_else(|| {
                ModelError::Data(format!(
                    "word id {w} is not among those the language head writes \
                     (config.json pieces.writes): train on data whose texts the run began with"
                ))
            })
        })
        .collect()
}

/// (row, word) pairs with the word as the language head's index.
fn head_pairs(model: &Loho, pairs: &[(u32, u32)]) -> Result<Vec<(u32, u32)>, ModelError> {
    let words = heads(model, pairs.iter().map(|p| p.1))?;
    Ok(pairs.iter().zip(words).map(|(p, w)| (p.0, w)).collect())
}

/// The rows `rows` (flat indices) of hidden states `flat` (n, d).
fn rows(flat: &Tensor, rows: impl Iterator<Item = u32>) -> candle_core::Result<Tensor> {
    let rows: Vec<u32> = rows.collect();
    let n = rows.len();
    flat.index_select(&Tensor::from_vec(rows, n, flat.device())?, 0)
}

/// The losses of a batch; `noise` and `times` are the flow draws of its `<act>` rows,
/// draw after draw.
fn losses(
    model: &Loho,
    teacher: Option<&Loho>,
    short_flow: bool,
    b: &Batch,
    noise: Vec<f32>,
    times: Vec<f32>,
) -> Result<Losses, ModelError> {
    let mut model = model.clone();
    let dev = model.device().clone();
    // Batches are drawn on the CPU.
    let frames = b.frames.to_device(&dev)?;
    let h = model.forward_train(&b.instructions, &frames, &b.subtasks, b.blocks.clone())?;
    let (n, t, d) = h.dims3()?;
    let flat = h.reshape((n * t, d))?;
    let targets = heads(&model, b.text.iter().map(|r| r.1))?;
    let logits = model.logits(&rows(&flat, b.text.iter().map(|r| r.0))?)?;
    let text = set_cross_entropy(&logits, &targets, &head_pairs(&model, &b.also)?)?;
    let colour = if b.colour.is_empty() {
        None
    } else {
        let nc = b.colour.len();
        let words = Tensor::from_vec(heads(&model, b.colour.iter().map(|c| c.1))?, nc, &dev)?;
        let logits = model.logits(&rows(&flat, b.colour.iter().map(|c| c.0))?)?;
        Some(candle_nn::loss::cross_entropy(&logits, &words)?)
    };
    // The teacher reads the autoregressive rows (what it was trained on).
    let ar_frames = frames.narrow(0, 0, b.ar_rows)?;
    let teacher = match teacher {
        Some(t) => {
            let (ni, ns) = (b.instructions.len() / n, b.subtasks.len() / n);
            let th = t.clone().forward_train(
                &b.instructions[..b.ar_rows * ni],
                &ar_frames,
                &b.subtasks[..b.ar_rows * ns],
                None,
            )?;
            Some((t, th.detach()))
        }
        None => None,
    };
    let (parallel, distill) = parallel_losses(&model, teacher.as_ref(), b, &flat)?;
    let mut out = Losses {
        text,
        colour,
        action: None,
        pointer: None,
        parallel,
        distill,
    };
    let na = b.act_rows.len();
    if na == 0 {
        return Ok(out);
    }
    let ar = h.narrow(0, 0, b.ar_rows)?;
    let (cond, pointer_logits, anchor) =
        model.act_train(&ar, &ar_frames, &b.act_rows, &b.pointer)?;
    if !b.pointer.is_empty() {
        let (_, k, objects) = pointer_logits.dims3()?;
        let np = b.pointer.len();
        let which = Tensor::from_vec(b.pointer.iter().map(|p| p.0).collect(), np, &dev)?;
        let target = Tensor::from_vec(b.pointer.iter().map(|p| p.1).collect(), np, &dev)?;
        let chosen = pointer_logits
            .reshape((na * k, objects))?
            .index_select(&which, 0)?;
        out.pointer = Some(candle_nn::loss::cross_entropy(&chosen, &target)?);
    }
    let m = times.len();
    let draws = m / na;
    let dims = model.config().head.action_dims();
    let cond = cond.repeat((draws, 1))?;
    let noise = Tensor::from_vec(noise, (m, dims), &dev)?;
    out.action = Some(match (&teacher, short_flow) {
        // The head's few steps from the noise a decision starts at, to where the
        // teacher's full flow takes it.
        (Some((t, th)), true) => {
            let start = (noise * t.config().head.noise_scale as f64)?;
            let (c, _, _) = t.act_train(th, &ar_frames, &b.act_rows, &b.pointer)?;
            let end = t.head().sample(&c.repeat((draws, 1))?, &start)?.detach();
            (model.head().sample(&cond, &start)? - end)?
                .sqr()?
                .mean_all()?
        }
        _ => {
            let mut target = b.actions.clone();
            for (row, action) in target.chunks_mut(dims).enumerate() {
                anchor.relative(row, action);
            }
            let target = Tensor::from_vec(target, (na, dims), &dev)?.repeat((draws, 1))?;
            let times = Tensor::from_vec(times, m, &dev)?;
            model.head().loss(&cond, &target, &noise, &times)?
        }
    });
    Ok(out)
}

/// The masked block tokens' cross-entropy, and their KL from the teacher's distribution
/// (from its hidden states of the autoregressive rows) where the autoregressive row
/// predicts the same word (the teacher's vocabulary is this one's first ids).
fn parallel_losses(
    model: &Loho,
    teacher: Option<&(&Loho, Tensor)>,
    b: &Batch,
    flat: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>), ModelError> {
    if b.par_text.is_empty() {
        return Ok((None, None));
    }
    let logits = model.logits(&rows(flat, b.par_text.iter().map(|r| r.0))?)?;
    let targets = heads(model, b.par_text.iter().map(|r| r.1))?;
    let parallel = set_cross_entropy(&logits, &targets, &head_pairs(model, &b.par_also)?)?;
    let Some((teacher, th)) = teacher.filter(|_| !b.distill.is_empty()) else {
        return Ok((Some(parallel), None));
    };
    let (n, t, d) = th.dims3()?;
    let th = rows(&th.reshape((n * t, d))?, b.distill.iter().map(|r| r.1))?;
    let tl = teacher.logits(&th)?;
    let v = tl.dim(1)?;
    let sl = rows(&logits, b.distill.iter().map(|r| r.0))?;
    let log_s = candle_nn::ops::log_softmax(&sl, 1)?.narrow(1, 0, v)?;
    let log_t = candle_nn::ops::log_softmax(&tl, 1)?;
    let kl = (log_t.exp()? * (log_t - log_s)?)?.sum(1)?.mean_all()?;
    Ok((Some(parallel), Some(kl)))
}
