//! `loho bench policy`: where a decision's time goes, on eval frames, with and without the
//! KV cache, autoregressive and parallel decoding (where the checkpoint has both), in one
//! run.

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loho_models::head::Decoding;
use loho_models::vla::Timing;
use loho_models::{Device, ModelPolicy};
use loho_sim::{Env, Policy, Split, ALL_TASKS};
use serde::Serialize;

use super::{ms, percentiles, Percentiles};

#[derive(Debug, Serialize)]
pub struct PolicyBench {
    pub checkpoint: String,
    pub threads: String,
    /// One entry per decoding mode, autoregressive first.
    pub modes: Vec<ModeBench>,
    /// Parallel over autoregressive decision time (p50), when both ran.
    pub parallel_over_ar: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ModeBench {
    pub decoding: String,
    pub decisions: usize,
    pub stem_prefill: Percentiles,
    pub decode_per_token: Percentiles,
    pub action_head: Percentiles,
    pub total: Percentiles,
    /// One token without the cache: the whole sequence recomputed, per token written.
    pub uncached_per_token: Percentiles,
    /// Median uncached per-token time over median cached per-token time.
    pub cache_speedup: f64,
    /// Sub-task tokens (with `</sub> <act>`) per forward pass, over all decisions.
    pub tokens_per_pass: f64,
}

/// Times `decisions` decisions of checkpoint `dir` with `decoding` (else autoregressive,
/// then parallel if the checkpoint can decode in parallel), each mode on the same test
/// episodes.
pub fn policy(
    dir: &Path,
    decisions: usize,
    device: &Device,
    decoding: Option<Decoding>,
) -> Result<PolicyBench> {
    let load = |seed| {
        ModelPolicy::load(dir, seed, device).with_context(|| format!("loading {}", dir.display()))
    };
    let modes = match decoding {
        Some(d) => vec![d],
        None if load(0)?.vla_mut().set_decoding(Decoding::Parallel).is_ok() => {
            vec![Decoding::Ar, Decoding::Parallel]
        }
        None => vec![Decoding::Ar],
    };
    let modes = modes
        .into_iter()
        .map(|d| mode(dir, decisions, device, d))
        .collect::<Result<Vec<_>>>()?;
    let total = |d: &str| {
        modes
            .iter()
            .find(|m| m.decoding == d)
            .map(|m| m.total.p50_ms)
    };
    Ok(PolicyBench {
        checkpoint: dir.display().to_string(),
        threads: std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into()),
        parallel_over_ar: total("parallel").zip(total("ar")).map(|(p, a)| p / a),
        modes,
    })
}

/// Runs the policy on test episodes (tasks A–K in turn) until `decisions` decisions are
/// timed, then times the same number of uncached tokens.
fn mode(dir: &Path, decisions: usize, device: &Device, decoding: Decoding) -> Result<ModeBench> {
    let bar = ProgressBar::new(decisions as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} decisions  {elapsed}")
            .expect("template"),
    );
    let mut timings: Vec<Timing> = Vec::new();
    let mut uncached = Vec::new();
    let mut k = 0u64;
    while timings.len() < decisions {
        let task = ALL_TASKS[(k % ALL_TASKS.len() as u64) as usize];
        let seed = Split::Test.seed(k / ALL_TASKS.len() as u64);
        k += 1;
        let mut env = Env::new(task, Split::Test, seed)?;
        let mut pol = ModelPolicy::load(dir, seed, device)
            .with_context(|| format!("loading {}", dir.display()))?;
        pol.vla_mut().set_decoding(decoding)?;
        while !env.is_done() && timings.len() < decisions {
            let obs = env.observe();
            let rgb = obs.rgb_bytes();
            let d = pol.decide(&env.observation(&rgb, &obs))?;
            let out = pol.last.clone().context("the policy gave no output")?;
            timings.push(out.timing);
            uncached.push(
                pol.vla_mut()
                    .uncached_token(&rgb, &obs.height, &out.subtask)?,
            );
            bar.inc(1);
            match d {
                loho_sim::Decision::Act(a) => {
                    env.step(&a)?;
                }
                loho_sim::Decision::Done(_) => break,
            }
        }
    }
    bar.finish_and_clear();
    let per_token = |t: &Timing| ms(t.decode) / t.tokens.max(1) as f64;
    let cached = percentiles(timings.iter().map(per_token).collect());
    let unc = percentiles(uncached.iter().map(|d| ms(*d)).collect());
    let report = ModeBench {
        decoding: decoding.to_string(),
        decisions: timings.len(),
        stem_prefill: percentiles(timings.iter().map(|t| ms(t.prefill)).collect()),
        action_head: percentiles(timings.iter().map(|t| ms(t.head)).collect()),
        total: percentiles(timings.iter().map(|t| ms(t.total)).collect()),
        cache_speedup: unc.p50_ms / cached.p50_ms,
        tokens_per_pass: timings.iter().map(|t| t.tokens).sum::<usize>() as f64
            / timings.iter().map(|t| t.passes).sum::<usize>().max(1) as f64,
        decode_per_token: cached,
        uncached_per_token: unc,
    };
    Ok(report)
}

pub fn print(r: &PolicyBench) {
    println!("policy {}  threads {}", r.checkpoint, r.threads);
    for m in &r.modes {
        println!("\n{} decoding, {} decisions", m.decoding, m.decisions);
        println!("{:<28}{:>10}{:>10}", "", "p50 ms", "p95 ms");
        for (name, p) in [
            ("stem + prefill", &m.stem_prefill),
            ("decode, per token (cache)", &m.decode_per_token),
            ("action head (flow)", &m.action_head),
            ("total decision", &m.total),
            ("per token without cache", &m.uncached_per_token),
        ] {
            println!("{name:<28}{:>10.2}{:>10.2}", p.p50_ms, p.p95_ms);
        }
        println!(
            "cached decoding is {:.1}× faster per token; {:.2} sub-task tokens per forward pass",
            m.cache_speedup, m.tokens_per_pass
        );
    }
    if let Some(x) = r.parallel_over_ar {
        println!("\nparallel decision p50 = {x:.2} × autoregressive");
    }
}
