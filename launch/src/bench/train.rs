//! `loho bench train`: training throughput of the shipped model's configuration —
//! samples per second and where a step's time goes (batch, forward, backward, update) —
//! on a small oracle dataset made for the run, today's step against the baseline of
//! candle's composite ops with batches drawn in line, in one command. Each run has a
//! process of its own (`bench train-run`), since each sets up candle's threads its own
//! way and a process can do that once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loho_models::data::Dataset;
use loho_models::ops;
use loho_models::train::{Phases, TrainConfig, Trainer};
use loho_models::vocab::Vocab;
use loho_models::{Config, Device, DeviceSpec};
use loho_sim::ALL_TASKS;
use serde::{Deserialize, Serialize};

use super::ms;
use crate::gendata::{self, GenArgs};

#[derive(Debug, Serialize)]
pub struct TrainBench {
    pub threads: usize,
    pub batch: usize,
    /// Steps timed in each run (after two untimed warm-up steps).
    pub steps: usize,
    /// The step as the trainer ran it before the fused kernels: candle's composite ops on
    /// the CPU with its threads inside every op, each batch drawn before its step, whole
    /// padded sequences.
    pub baseline: Run,
    /// Today's step: fused CPU kernels (`loho_models::ops`) over the real tokens only,
    /// the batch split into one shard per thread, the next batch drawn while this one
    /// trains.
    pub fused: Run,
    /// fused samples/s ÷ baseline samples/s.
    pub speedup: f64,
}

/// Throughput of one run and a step's mean time by phase.
#[derive(Debug, Serialize, Deserialize)]
pub struct Run {
    pub samples_per_s: f64,
    pub ms_per_step: f64,
    pub batch_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub update_ms: f64,
}

/// Times the steps of `s` on 20 oracle episodes per task, the baseline first and then
/// today's step, each in a process of its own, from the same initial weights and batches.
pub fn train(s: Setup, device: &DeviceSpec) -> Result<TrainBench> {
    let dir = std::env::temp_dir().join(format!("loho-bench-train-{}", std::process::id()));
    gendata::generate(&GenArgs::oracle(
        dir.clone(),
        &ALL_TASKS,
        20,
        crate::gendata::DataFormat::Loho,
    ))?;
    let runs = [true, false].map(|baseline| child(&dir, s, baseline, device));
    std::fs::remove_dir_all(&dir).ok();
    let [baseline, fused] = runs;
    let (baseline, fused) = (baseline?, fused?);
    Ok(TrainBench {
        threads: s.threads,
        batch: s.batch,
        steps: s.steps,
        speedup: fused.samples_per_s / baseline.samples_per_s,
        baseline,
        fused,
    })
}

/// What both runs time: `steps` steps of batch `batch` on `threads` threads.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub steps: usize,
    pub batch: usize,
    pub threads: usize,
}

/// One run in a `bench train-run` process.
fn child(data: &Path, s: Setup, baseline: bool, device: &DeviceSpec) -> Result<Run> {
    let json = data.join(if baseline {
        "baseline.json"
    } else {
        "fused.json"
    });
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("bench").arg("train-run").arg("--data").arg(data);
    for (flag, v) in [
        ("--steps", s.steps),
        ("--batch", s.batch),
        ("--threads", s.threads),
    ] {
        cmd.args([flag, &v.to_string()]);
    }
    cmd.args(["--device", &device.to_string()])
        .arg("--json")
        .arg(&json);
    if baseline {
        cmd.arg("--baseline");
    }
    let status = cmd.status().context("starting a bench train-run process")?;
    anyhow::ensure!(status.success(), "bench train-run exited with {status}");
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// `bench train-run`: the baseline or today's step on the dataset in `data`, its figures
/// written to `json`.
pub fn run_in_process(
    data: &Path,
    s: Setup,
    baseline: bool,
    device: &DeviceSpec,
    json: &PathBuf,
) -> Result<()> {
    let device = device.open()?;
    let shards = if baseline {
        // candle and gemm read this when their pools first start, which is later.
        std::env::set_var("RAYON_NUM_THREADS", s.threads.to_string());
        1
    } else {
        crate::train::shards(s.threads, &device)
    };
    crate::train::keep_freed_memory();
    let data = Dataset::open(data).with_context(|| format!("reading {}", data.display()))?;
    let r = run(&data, s.steps, s.batch, !baseline, shards, &device)?;
    crate::json::write(Some(json), &r)
}

fn run(
    data: &Dataset,
    steps: usize,
    batch: usize,
    fused: bool,
    shards: usize,
    device: &Device,
) -> Result<Run> {
    ops::set_fused(fused);
    let vocab = Vocab::build(
        data.samples
            .iter()
            .flat_map(|s| [s.instruction.as_str(), s.subtask.as_str()]),
    )?;
    let tc = TrainConfig {
        batch,
        palette: loho_sim::colors::Palette::benchmark().named_rgb(),
        ..Default::default()
    };
    let mut trainer = Trainer::new(&Config::tiny(vocab.len()), vocab, tc, device)?;
    trainer.prefetch = fused;
    trainer.workers = shards;
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
