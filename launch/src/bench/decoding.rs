//! `loho bench decoding`: how often parallel decoding writes the sub-task that
//! autoregressive decoding writes, on the same frames, and the forward passes each takes.
//!
//! The oracle drives the episodes, so both modes see exactly the same frames; at each one
//! the checkpoint writes the sub-task greedily both ways (a fresh plan, as after a reward).

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loho_core::policy::Plan;
use loho_models::head::Decoding;
use loho_models::{Device, Vla};
use loho_sim::{Decision, Env, Oracle, Policy, Split, ALL_TASKS};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct DecodingBench {
    pub checkpoint: String,
    pub split: String,
    pub frames: usize,
    /// Frames where both modes wrote the same sub-task.
    pub same: usize,
    pub same_rate: f64,
    /// (task, frames, same) per task.
    pub per_task: Vec<(String, usize, usize)>,
    /// Forward passes per sub-task, `</sub> <act>` included.
    pub ar_passes: f64,
    pub parallel_passes: f64,
}

pub fn decoding(
    dir: &Path,
    split: Split,
    episodes: usize,
    device: &Device,
) -> Result<DecodingBench> {
    let load = |d| -> Result<Vla> {
        let mut v =
            Vla::load(dir, 0, device).with_context(|| format!("loading {}", dir.display()))?;
        v.set_decoding(d)?;
        Ok(v)
    };
    let (mut ar, mut par) = (load(Decoding::Ar)?, load(Decoding::Parallel)?);
    let bar = ProgressBar::new((episodes * ALL_TASKS.len()) as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} episodes  {elapsed}").expect("template"),
    );
    let mut per_task = Vec::new();
    let (mut ar_passes, mut par_passes) = (0, 0);
    for task in ALL_TASKS {
        let (mut frames, mut same) = (0, 0);
        for e in 0..episodes {
            let mut env = Env::new(task, split, split.seed(e as u64))?;
            let mut started = false;
            while !env.is_done() {
                let obs = env.observe();
                let rgb = obs.rgb_bytes();
                let o = env.observation(&rgb, &obs);
                if !started {
                    ar.start(o.instruction)?;
                    par.start(o.instruction)?;
                    started = true;
                }
                let a = ar.decide(o.rgb, o.height, &Plan::Write)?;
                let p = par.decide(o.rgb, o.height, &Plan::Write)?;
                frames += 1;
                same += usize::from(a.subtask == p.subtask);
                ar_passes += a.timing.passes;
                par_passes += p.timing.passes;
                match Oracle.decide(&o)? {
                    Decision::Act(action) => {
                        env.step(&action)?;
                    }
                    Decision::Done(_) => break,
                }
            }
            bar.inc(1);
        }
        per_task.push((format!("{task:?}"), frames, same));
    }
    bar.finish_and_clear();
    let frames: usize = per_task.iter().map(|t| t.1).sum();
    let same: usize = per_task.iter().map(|t| t.2).sum();
    let n = frames.max(1) as f64;
    Ok(DecodingBench {
        checkpoint: dir.display().to_string(),
        split: format!("{split:?}").to_lowercase(),
        frames,
        same,
        same_rate: same as f64 / n,
        per_task,
        ar_passes: ar_passes as f64 / n,
        parallel_passes: par_passes as f64 / n,
    })
}

pub fn print(r: &DecodingBench) {
    println!(
        "decoding {}  {} split, {} frames",
        r.checkpoint, r.split, r.frames
    );
    for (task, frames, same) in &r.per_task {
        println!("  {task:<3}{same:>5} of {frames:<5} the same");
    }
    println!(
        "parallel writes the autoregressive sub-task on {:.1} % of frames; forward passes \
         per sub-task: autoregressive {:.2}, parallel {:.2}",
        100.0 * r.same_rate,
        r.ar_passes,
        r.parallel_passes
    );
}
