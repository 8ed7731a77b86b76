//! `loho bench train`: training throughput of the shipped model's configuration —
//! samples per second and where a step's time goes (batch, forward, backward, update) —
//! on a small oracle dataset made for the run, today's step against the baseline of
//! candle's composite ops with batches drawn in line, in the same process.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loho_models::data::Dataset;
use loho_models::ops;
use loho_models::train::{Phases, TrainConfig, Trainer};
use loho_models::vocab::Vocab;
use loho_models::{Config, Device};
use loho_sim::ALL_TASKS;
use serde::Serialize;

use super::ms;
use crate::gendata::{self, GenArgs};

#[derive(Debug, Serialize)]
pub struct TrainBench {
    pub threads: String,
    pub batch: usize,
    /// Steps timed in each run (after two untimed warm-up steps).
    pub steps: usize,
    /// The step as the trainer ran it before the fused kernels: candle's composite ops on
    /// the CPU, each batch drawn before its step.
    pub baseline: Run,
    /// Today's step: fused CPU kernels (`loho_models::ops`), the next batch drawn while
    /// this one trains.
    pub fused: Run,
    /// fused samples/s ÷ baseline samples/s.
    pub speedup: f64,
}

/// Throughput of one run and a step's mean time by phase.
#[derive(Debug, Serialize)]
pub struct Run {
    pub samples_per_s: f64,
    pub ms_per_step: f64,
    pub batch_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub update_ms: f64,
}

/// Times `steps` training steps of batch `batch` on 20 oracle episodes per task, the
/// baseline first and then today's step, from the same initial weights and batches.
pub fn train(steps: usize, batch: usize, device: &Device) -> Result<TrainBench> {
    crate::train::keep_freed_memory();
    let dir = std::env::temp_dir().join(format!("loho-bench-train-{}", std::process::id()));
    gendata::generate(&GenArgs {
        out: dir.clone(),
        tasks: ALL_TASKS.to_vec(),
        episodes: 20,
        first_episode: 0,
        perturb: 0.2,
        all_colors: true,
        jobs: crate::cli::jobs(None),
        cameras: None,
        policy: None,
        append: false,
    })?;
    let data = Dataset::open(&dir).with_context(|| format!("reading {}", dir.display()))?;
    std::fs::remove_dir_all(&dir).ok();
    let baseline = run(&data, steps, batch, false, device)?;
    let fused = run(&data, steps, batch, true, device)?;
    Ok(TrainBench {
        threads: std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        batch,
        steps,
        speedup: fused.samples_per_s / baseline.samples_per_s,
        baseline,
        fused,
    })
}

fn run(data: &Dataset, steps: usize, batch: usize, fused: bool, device: &Device) -> Result<Run> {
    ops::set_fused(fused);
    let vocab = Vocab::build(
        data.samples
            .iter()
            .flat_map(|s| [s.instruction.as_str(), s.subtask.as_str()]),
    )?;
    let tc = TrainConfig {
        batch,
        palette: loho_sim::colors::ALL
            .iter()
            .map(|c| (c.name.to_string(), c.rgb))
            .collect(),
        ..Default::default()
    };
    let mut trainer = Trainer::new(&Config::tiny(vocab.len()), vocab, tc, device)?;
    trainer.prefetch = fused;
    for _ in 0..2 {
        trainer.step(data)?;
    }
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {elapsed}  {msg}")
            .expect("template"),
    );
    bar.set_message(if fused { "fused" } else { "baseline" });
    let mut sum = Phases::default();
    let t = Instant::now();
    for _ in 0..steps {
        let p = trainer.step(data)?.phases;
        sum.batch += p.batch;
        sum.forward += p.forward;
        sum.backward += p.backward;
        sum.update += p.update;
        bar.inc(1);
    }
    let wall = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    ops::set_fused(true);
    let per = |d| ms(d) / steps as f64;
    Ok(Run {
        samples_per_s: (steps * batch) as f64 / wall,
        ms_per_step: wall * 1e3 / steps as f64,
        batch_ms: per(sum.batch),
        forward_ms: per(sum.forward),
        backward_ms: per(sum.backward),
        update_ms: per(sum.update),
    })
}

pub fn print(r: &TrainBench) {
    println!(
        "training, batch {} on {} thread(s), {} steps each: {:.1} samples/s fused vs {:.1} baseline ({:.2}x)",
        r.batch, r.threads, r.steps, r.fused.samples_per_s, r.baseline.samples_per_s, r.speedup
    );
    println!("  ms per step                                    baseline    fused");
    for (name, a, b) in [
        (
            "batch (waited for; drawn ahead when fused)",
            r.baseline.batch_ms,
            r.fused.batch_ms,
        ),
        (
            "forward and losses",
            r.baseline.forward_ms,
            r.fused.forward_ms,
        ),
        ("backward", r.baseline.backward_ms, r.fused.backward_ms),
        (
            "update (clip, AdamW)",
            r.baseline.update_ms,
            r.fused.update_ms,
        ),
        ("whole step", r.baseline.ms_per_step, r.fused.ms_per_step),
    ] {
        println!("  {name:<45} {a:>8.1} {b:>8.1}");
    }
}
