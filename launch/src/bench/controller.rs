//! `loho bench controller`: the period jitter of `cmd/ee` at each control rate while the
//! real-time loop runs and a second model decides back to back, with a plain sleep
//! (before) and with the shipped pacing (after: a final spin, real-time priority).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use loho_core::msg::EeCommand;
use loho_models::{Device, ModelPolicy};
use loho_runtime::keys;
use loho_sim::{Env, Policy, Split};
use serde::Serialize;

use super::{tail, Tail};

#[derive(Debug, Serialize)]
pub struct ControllerBench {
    pub rate_hz: f64,
    /// `sleep` (a plain sleep, normal priority) or `spin+rt` (the shipped
    /// `configs/runtime.toml`: sleep, then spin `spin_us`, at `realtime_priority`).
    pub pacing: &'static str,
    pub spin_us: u64,
    /// Whether the OS granted the real-time priority asked for (false when none asked).
    pub realtime: bool,
    /// |period − 1/rate| between consecutive setpoints of one chunk.
    pub jitter: Tail,
    pub chunks: usize,
    pub decisions: usize,
}

/// Period jitter of `cmd/ee` at each rate, measured where the setpoints arrive (an
/// in-process subscriber, called synchronously by the publishing thread) while the
/// real-time loop runs with the shipped policy for `seconds`, and a second copy of the
/// model deciding back to back on another thread, so the policy's compute competes with
/// the controller's thread the whole time.
pub fn controller(dir: &Path, rates: &[f64], seconds: f64) -> Result<Vec<ControllerBench>> {
    let shipped = loho_core::config::RuntimeConfig::default().controller;
    let mut out = Vec::new();
    for &rate in rates {
        for pacing in ["sleep", "spin+rt"] {
            let mut runtime = loho_core::config::RuntimeConfig::default();
            runtime.controller.rate_hz = rate;
            if pacing == "sleep" {
                runtime.controller.spin_us = 0;
                runtime.controller.realtime_priority = 0;
            }
            let mut r = one(dir, runtime, seconds)?;
            r.pacing = pacing;
            r.realtime = pacing != "sleep" && realtime_granted(shipped.realtime_priority);
            out.push(r);
        }
    }
    Ok(out)
}

/// Whether a thread of this process may take `SCHED_FIFO` at `priority`.
fn realtime_granted(priority: i32) -> bool {
    priority > 0
        && std::thread::spawn(move || loho_runtime::pacing::realtime_priority(priority).is_ok())
            .join()
            .unwrap_or(false)
}

fn one(
    dir: &Path,
    runtime: loho_core::config::RuntimeConfig,
    seconds: f64,
) -> Result<ControllerBench> {
    let rate = runtime.controller.rate_hz;
    let bus = loho_runtime::Bus::open(&Default::default())?;
    let arrivals: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let sink = arrivals.clone();
    let _sub = bus.subscribe::<EeCommand, _>(keys::CMD_EE, move |m| {
        if let Ok(c) = m {
            sink.lock().unwrap().push((Instant::now(), c.chunk_id));
        }
    })?;
    let sim = loho_sim::node::SimConfig {
        draw: Default::default(),
        task: loho_sim::TaskId::B,
        split: Split::Test,
        seed: Split::Test.seed(0),
        fps: 10.0,
        clock: loho_core::clock::ClockSource::Wall,
        runtime: runtime.clone(),
        exit_when_done: true,
        cameras: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let policy = Box::new(ModelPolicy::load(dir, 0, &Device::Cpu)?);
    let ctrl = loho_runtime::controller::ControllerConfig::new(&runtime, sim.clock);
    let running = crate::wiring::spawn(
        &bus,
        &sim,
        &crate::wiring::ArmPath::Direct,
        ctrl,
        policy,
        Some(tx),
    )?;
    let load_stop = Arc::new(AtomicBool::new(false));
    let s = load_stop.clone();
    let dir = dir.to_path_buf();
    let load = std::thread::spawn(move || -> Result<()> {
        let env = Env::new(loho_sim::TaskId::C, Split::Test, Split::Test.seed(0))?;
        let frame = env.observe();
        let rgb = frame.rgb_bytes();
        let obs = env.observation(&rgb, &frame);
        let mut pol = ModelPolicy::load(&dir, 1, &Device::Cpu)?;
        while !s.load(Ordering::Relaxed) {
            pol.decide(&obs)?;
        }
        Ok(())
    });
    let bar = ProgressBar::new((seconds * 10.0) as u64)
        .with_style(ProgressStyle::with_template("{bar:40} {msg} {elapsed}").expect("template"));
    bar.set_message(format!("{rate} Hz, spin {} µs", runtime.controller.spin_us));
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(100));
        bar.inc(1);
    }
    bar.finish_and_clear();
    running.stop();
    load_stop.store(true, Ordering::Relaxed);
    // The loop is stopped on purpose, before the episode ends.
    let _ = running.join(Duration::from_secs(30));
    load.join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
    let a = arrivals.lock().unwrap();
    let period = 1.0 / rate;
    let jitter: Vec<f64> = a
        .windows(2)
        .filter(|w| w[0].1 == w[1].1)
        .map(|w| ((w[1].0 - w[0].0).as_secs_f64() - period).abs() * 1e3)
        .collect();
    let mut chunks: Vec<u64> = a.iter().map(|x| x.1).collect();
    chunks.dedup();
    Ok(ControllerBench {
        rate_hz: rate,
        pacing: "",
        spin_us: runtime.controller.spin_us,
        realtime: false,
        jitter: tail(jitter),
        chunks: chunks.len(),
        decisions: rx.try_iter().count(),
    })
}

pub fn print(r: &[ControllerBench]) {
    println!(
        "{:<10}{:<22}{:>14}{:>14}{:>10}{:>8}",
        "rate", "pacing", "jitter p50 ms", "jitter p99 ms", "periods", "chunks"
    );
    for b in r {
        let pacing = match (b.pacing, b.realtime) {
            ("sleep", _) => "sleep (before)".to_string(),
            (_, rt) => format!(
                "spin {} µs, {}",
                b.spin_us,
                if rt { "SCHED_FIFO" } else { "no RT" }
            ),
        };
        println!(
            "{:<10}{:<22}{:>14.3}{:>14.3}{:>10}{:>8}",
            format!("{} Hz", b.rate_hz),
            pacing,
            b.jitter.p50_ms,
            b.jitter.p99_ms,
            b.jitter.samples,
            b.chunks
        );
    }
}
