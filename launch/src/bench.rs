//! `loho bench policy`: where a decision's time goes, on eval frames, with and without the
//! KV cache, in one run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loho_models::vla::Timing;
use loho_sim::{Env, Policy, Split, ALL_TASKS};
use serde::Serialize;

use loho_models::ModelPolicy;

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// The `q` quantile of sorted values (NaN for none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn percentiles(v: Vec<f64>) -> Percentiles {
    let v = sorted(v);
    Percentiles {
        p50_ms: quantile(&v, 0.5),
        p95_ms: quantile(&v, 0.95),
    }
}

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
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the policy on test episodes (tasks A–K in turn) until `decisions` decisions are
/// timed, then times the same number of uncached tokens.
pub fn policy(dir: &Path, decisions: usize, json: Option<&PathBuf>) -> Result<PolicyBench> {
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
        let mut pol =
            ModelPolicy::load(dir, seed).with_context(|| format!("loading {}", dir.display()))?;
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
        decode_per_token: cached,
        uncached_per_token: unc,
    };
    crate::write_json(json, &report)?;
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
        "cached decoding is {:.1}× faster per token",
        r.cache_speedup
    );
}

/// p50 and p99 of a sample, in ms.
#[derive(Debug, Serialize)]
pub struct Tail {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub samples: usize,
}

fn tail(v: Vec<f64>) -> Tail {
    let v = sorted(v);
    Tail {
        p50_ms: quantile(&v, 0.5),
        p99_ms: quantile(&v, 0.99),
        samples: v.len(),
    }
}

#[derive(Debug, Serialize)]
pub struct ControllerBench {
    pub rate_hz: f64,
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
    use loho_runtime::keys;
    use loho_runtime::msg::EeCommand;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let mut out = Vec::new();
    for &rate in rates {
        let bus = loho_runtime::Bus::open(&Default::default())?;
        let arrivals: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let sink = arrivals.clone();
        let _sub = bus.subscribe::<EeCommand, _>(keys::CMD_EE, move |m| {
            if let Ok(c) = m {
                sink.lock().unwrap().push((Instant::now(), c.chunk_id));
            }
        })?;
        let mut runtime = loho_runtime::config::RuntimeConfig::default();
        runtime.controller.rate_hz = rate;
        let sim = loho_sim::node::SimConfig {
            task: loho_sim::TaskId::B,
            split: Split::Test,
            seed: Split::Test.seed(0),
            fps: 10.0,
            mode: loho_sim::node::Mode::Realtime,
            runtime: runtime.clone(),
            exit_when_done: true,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let policy = Box::new(ModelPolicy::load(dir, 0)?);
        let ctrl = crate::nodes::controller_config(&runtime, sim.mode);
        let running = crate::nodes::spawn(&bus, &sim, ctrl, policy, Some(tx))?;
        let load_stop = Arc::new(AtomicBool::new(false));
        let s = load_stop.clone();
        let dir = dir.to_path_buf();
        let load = std::thread::spawn(move || -> Result<()> {
            let env = Env::new(loho_sim::TaskId::C, Split::Test, Split::Test.seed(0))?;
            let mut pol = ModelPolicy::load(&dir, 1)?;
            while !s.load(Ordering::Relaxed) {
                env.ask(&mut pol)?;
            }
            Ok(())
        });
        let bar = ProgressBar::new((seconds * 10.0) as u64).with_style(
            ProgressStyle::with_template("{bar:40} {msg} {elapsed}").expect("template"),
        );
        bar.set_message(format!("{rate} Hz"));
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
        out.push(ControllerBench {
            rate_hz: rate,
            jitter: tail(jitter),
            chunks: chunks.len(),
            decisions: rx.try_iter().count(),
        });
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct BusBench {
    pub frames: usize,
    pub bytes_per_frame: usize,
    /// Publish → receipt in another process over loopback TCP (colour then depth).
    pub zenoh_processes: Tail,
    /// Send → receipt of the same bytes through a std channel to another thread.
    pub in_process_channel: Tail,
    /// Median over median.
    pub ratio_p50: f64,
}

const PING: &str = "bench/frame";
const PONG: &str = "bench/ack";

/// The other end of `bench bus`: acknowledges every depth image with the time it
/// arrived (both processes read the same system clock).
pub fn bus_echo(endpoint: &str) -> Result<()> {
    use loho_runtime::msg::{Image, Time};
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        connect: vec![endpoint.into()],
        ..Default::default()
    })?;
    let ack = bus.publisher::<Time>(PONG, loho_runtime::Qos::Command)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let _sub = bus.subscribe::<Image, _>(PING, move |m| {
        let t = loho_runtime::wall_ns();
        if let Ok(img) = m {
            if img.encoding == "32FC1" {
                let _ = tx.send(t);
            }
        }
    })?;
    for t in rx {
        ack.put(&Time {
            sec: (t / 1_000_000_000) as i32,
            nanosec: (t % 1_000_000_000) as u32,
        })?;
    }
    Ok(())
}

/// One 320×160 RGB-D frame (a colour and a depth image, as the sim sends them) between
/// this process and a child over loopback zenoh, against the same bytes through an
/// in-process channel, `frames` times each.
pub fn bus(frames: usize) -> Result<BusBench> {
    use loho_runtime::msg::{Header, Image, Message, Time};
    use loho_sim::camera::{HEIGHT, WIDTH};
    let env = Env::new(loho_sim::TaskId::B, Split::Test, Split::Test.seed(0))?;
    let hm = env.observe();
    let (w, h) = (WIDTH as u32, HEIGHT as u32);
    let make = |k: usize| {
        let header = Header::new(k as f64, "world");
        (
            Image::rgb8(header.clone(), w, h, hm.rgb_bytes()),
            Image::f32c1(header, w, h, &hm.height),
        )
    };
    let (c, d) = make(0);
    let bytes = c.encode().len() + d.encode().len();

    // In process: a thread receives the encoded bytes and decodes them, as a subscriber would.
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Vec<u8>, Vec<u8>)>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<u64>();
    let worker = std::thread::spawn(move || {
        for (_, a, b) in rx {
            let ok = Image::decode(&a).is_ok() && Image::decode(&b).is_ok();
            let _ = back_tx.send(if ok { loho_runtime::wall_ns() } else { 0 });
        }
    });
    let mut local = Vec::new();
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_runtime::wall_ns();
        tx.send((t, c.encode(), d.encode()))?;
        let got = back_rx.recv()?;
        local.push((got.saturating_sub(t)) as f64 * 1e-6);
    }
    drop(tx);
    let _ = worker.join();

    // Across processes: this process listens, the child connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        listen: vec![endpoint.clone()],
        ..Default::default()
    })?;
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<u64>();
    let _acks = bus.subscribe::<Time, _>(PONG, move |m| {
        if let Ok(t) = m {
            let _ = ack_tx.send(t.sec as u64 * 1_000_000_000 + t.nanosec as u64);
        }
    })?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["bench", "bus-echo", "--connect", &endpoint])
        .spawn()
        .context("starting the echo process")?;
    let publisher = bus.publisher::<Image>(PING, loho_runtime::Qos::Stream)?;
    // Until the child answers: the link and its subscription are up.
    let warm = std::time::Instant::now();
    loop {
        let (c, d) = make(0);
        publisher.put(&c)?;
        publisher.put(&d)?;
        if ack_rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(30),
            "the echo process never answered"
        );
    }
    while ack_rx.try_recv().is_ok() {}
    let mut remote = Vec::new();
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_runtime::wall_ns();
        publisher.put(&c)?;
        publisher.put(&d)?;
        match ack_rx.recv_timeout(Duration::from_secs(2)) {
            Ok(got) => remote.push(got.saturating_sub(t) as f64 * 1e-6),
            Err(_) => tracing::warn!("frame {k} lost"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let remote = tail(remote);
    let local = tail(local);
    Ok(BusBench {
        frames,
        bytes_per_frame: bytes,
        ratio_p50: remote.p50_ms / local.p50_ms,
        zenoh_processes: remote,
        in_process_channel: local,
    })
}

pub fn print_controller(r: &[ControllerBench]) {
    println!(
        "{:<10}{:>14}{:>14}{:>10}{:>8}",
        "rate", "jitter p50 ms", "jitter p99 ms", "periods", "chunks"
    );
    for b in r {
        println!(
            "{:<10}{:>14.3}{:>14.3}{:>10}{:>8}",
            format!("{} Hz", b.rate_hz),
            b.jitter.p50_ms,
            b.jitter.p99_ms,
            b.jitter.samples,
            b.chunks
        );
    }
}

pub fn print_bus(r: &BusBench) {
    println!(
        "one RGB-D frame ({} bytes), {} frames, p50 / p99 ms",
        r.bytes_per_frame, r.frames
    );
    for (name, t) in [
        ("zenoh, two processes, loopback", &r.zenoh_processes),
        ("in-process channel", &r.in_process_channel),
    ] {
        println!("{name:<34}{:>9.3}{:>9.3}", t.p50_ms, t.p99_ms);
    }
    println!(
        "zenoh across processes / in-process at p50: {:.1}×",
        r.ratio_p50
    );
}
