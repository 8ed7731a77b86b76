//! `loho bench policy`: where a decision's time goes, on eval frames, with and without the
//! KV cache, in one run.

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
    pub decisions: usize,
    pub stem_prefill: Percentiles,
    pub decode_per_token: Percentiles,
    pub action_head: Percentiles,
    pub total: Percentiles,
    /// One token without the cache: the whole sequence recomputed, per token written.
    pub uncached_per_token: Percentiles,
    /// Median uncached per-token time over median cached per-token time.
    pub cache_speedup: f64,
    /// Sub-task tokens written per forward pass (1 autoregressively; more in parallel
    /// decoding), over all decisions.
    pub tokens_per_pass: f64,
}

/// Runs the policy on test episodes (tasks A–K in turn) until `decisions` decisions are
/// timed, then times the same number of uncached tokens.
pub fn policy(
    dir: &Path,
    decisions: usize,
    device: &Device,
    decoding: Option<Decoding>,
) -> Result<PolicyBench> {
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
        if let Some(d) = decoding {
            pol.vla_mut().set_decoding(d)?;
        }
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
    let report = PolicyBench {
        checkpoint: dir.display().to_string(),
        threads: std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into()),
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
    println!(
        "policy {}  {} decisions  threads {}",
        r.checkpoint, r.decisions, r.threads
    );
    println!("{:<28}{:>10}{:>10}", "", "p50 ms", "p95 ms");
    for (name, p) in [
        ("stem + prefill", &r.stem_prefill),
        ("decode, per token (cache)", &r.decode_per_token),
        ("action head (flow)", &r.action_head),
        ("total decision", &r.total),
        ("per token without cache", &r.uncached_per_token),
    ] {
        println!("{name:<28}{:>10.2}{:>10.2}", p.p50_ms, p.p95_ms);
    }
    println!(
        "cached decoding is {:.1}× faster per token; {:.2} sub-task tokens per forward pass",
        r.cache_speedup, r.tokens_per_pass
    );
}
