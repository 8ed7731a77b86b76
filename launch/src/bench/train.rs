//! `loho bench train`: training throughput of the shipped model's configuration —
//! samples per second and where a step's time goes (batch, forward, backward, update) —
//! on a small oracle dataset made for the run, so that a change to training code is
//! measured against the same steps on the same machine.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loho_models::data::Dataset;
use loho_models::train::{Phases, TrainConfig, Trainer};
use loho_models::vocab::Vocab;
use loho_models::Config;
use loho_sim::ALL_TASKS;
use serde::Serialize;

use super::ms;
use crate::gendata::{self, GenArgs};

#[derive(Debug, Serialize)]
pub struct TrainBench {
    pub threads: String,
    pub batch: usize,
    /// Steps timed (after two untimed warm-up steps).
    pub steps: usize,
    pub samples_per_s: f64,
    pub ms_per_step: f64,
    /// Mean ms per step in each phase.
    pub batch_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub update_ms: f64,
}

/// Times `steps` training steps of batch `batch` on 20 oracle episodes per task.
pub fn train(steps: usize, batch: usize) -> Result<TrainBench> {
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
    let mut trainer = Trainer::new(&Config::tiny(vocab.len()), vocab, tc)?;
    for _ in 0..2 {
        trainer.step(&data)?;
    }
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {elapsed}").expect("template"),
    );
    let mut sum = Phases::default();
    let t = Instant::now();
    for _ in 0..steps {
        let p = trainer.step(&data)?.phases;
        sum.batch += p.batch;
        sum.forward += p.forward;
        sum.backward += p.backward;
        sum.update += p.update;
        bar.inc(1);
    }
    let wall = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let per = |d| ms(d) / steps as f64;
    Ok(TrainBench {
        threads: std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        batch,
        steps,
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
        "training, batch {} on {} thread(s), {} steps: {:.1} samples/s, {:.0} ms per step",
        r.batch, r.threads, r.steps, r.samples_per_s, r.ms_per_step
    );
    let share = |v: f64| 100.0 * v / r.ms_per_step;
    for (name, v) in [
        ("batch (frames, noise, segmentation, labels)", r.batch_ms),
        ("forward and losses", r.forward_ms),
        ("backward", r.backward_ms),
        ("update (clip, AdamW)", r.update_ms),
    ] {
        println!("  {name:<45} {v:>7.1} ms  {:>4.0} %", share(v));
    }
}
