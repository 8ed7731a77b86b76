//! `loho bench`: the performance figures, one bench per file ([`policy`], [`decoding`],
//! [`controller`], [`bus`], [`train`], [`export`]), each measured against its baseline in
//! the same run.

pub mod bus;
pub mod controller;
pub mod decoding;
pub mod export;
pub mod policy;
pub mod train;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use crate::args::DeviceArg;
use crate::policy::PolicyKind;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Decision latency of a checkpoint on test frames: stem + prefill, per-token decode,
    /// action head, total (p50, p95), and per-token decode without the KV cache.
    Policy {
        #[arg(long, default_value = "default")]
        policy: String,
        #[arg(long, default_value_t = 100)]
        decisions: usize,
        /// Threads for the model (the figure the issue asks for is on one core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[command(flatten)]
        device: DeviceArg,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// How often parallel decoding writes the sub-task autoregressive decoding writes
    /// (both greedy, one checkpoint), on every frame of oracle episodes, with the forward
    /// passes each takes.
    Decoding {
        #[arg(long, default_value = "default")]
        policy: String,
        /// `val` chooses settings; `test` reports a shipped checkpoint once.
        #[arg(long, default_value = "val")]
        split: String,
        /// Episodes per task.
        #[arg(long, default_value_t = 20)]
        episodes: usize,
        #[command(flatten)]
        device: DeviceArg,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Period jitter of `cmd/ee` (p50, p99) at each control rate while the real-time
    /// loop runs with the policy.
    Controller {
        #[arg(long, default_value = "default")]
        policy: String,
        /// Control rates to measure, in Hz.
        #[arg(long, value_delimiter = ',', default_value = "125,500")]
        rates: Vec<f64>,
        /// Seconds of loop per rate.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Latency (p50, p99) of one 320×160 RGB-D frame between two processes over zenoh
    /// through shared memory and over loopback TCP, against an in-process channel, in one run.
    Bus {
        #[arg(long, default_value_t = 500)]
        frames: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Training throughput (samples/s) of the shipped configuration and where a step's
    /// time goes, on a small oracle dataset made for the run.
    Train {
        #[arg(long, default_value_t = 30)]
        steps: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Threads (the training recipe's machine has 2).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[command(flatten)]
        device: DeviceArg,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Exporting oracle demonstrations as a LeRobotDataset against generating them.
    Export {
        /// Episodes to generate, spread over the tasks.
        #[arg(long, default_value_t = 100)]
        episodes: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One of the two runs of `bench train`, in a process of its own: each sets up
    /// candle's threads its own way, which a process does once.
    #[command(hide = true)]
    TrainRun {
        /// The dataset `bench train` made.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        steps: usize,
        #[arg(long)]
        batch: usize,
        #[arg(long)]
        threads: usize,
        /// The baseline step instead of today's.
        #[arg(long)]
        baseline: bool,
        #[command(flatten)]
        device: DeviceArg,
        /// Where the run's figures go.
        #[arg(long)]
        json: PathBuf,
    },
    /// The other process of `bench bus`.
    #[command(hide = true)]
    BusEcho {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        no_shared_memory: bool,
        #[arg(long)]
        no_ring: bool,
    },
}

/// `loho bench …`.
pub fn command(what: BenchCommand) -> Result<()> {
    match what {
        BenchCommand::Policy {
            policy,
            decisions,
            threads,
            device,
            json,
        } => {
            // candle and gemm read this when their pools first start, which is later.
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
            let kind = PolicyKind::parse(&policy)?;
            let dir = kind.checkpoint("bench policy")?;
            let r = policy::policy(dir, decisions.max(1), &device.spec.open()?, device.decoding)?;
            policy::print(&r);
            crate::json::write(json.as_ref(), &r)
        }
        BenchCommand::Decoding {
            policy,
            split,
            episodes,
            device,
            json,
        } => {
            let kind = PolicyKind::parse(&policy)?;
            let dir = kind.checkpoint("bench decoding")?;
            let split = crate::args::split(&split)?;
            let r = decoding::decoding(dir, split, episodes.max(1), &device.spec.open()?)?;
            decoding::print(&r);
            crate::json::write(json.as_ref(), &r)
        }
        BenchCommand::Controller {
            policy,
            rates,
            seconds,
            json,
        } => {
            let kind = PolicyKind::parse(&policy)?;
            let r = controller::controller(kind.checkpoint("bench controller")?, &rates, seconds)?;
            controller::print(&r);
            crate::json::write(json.as_ref(), &r)
        }
        BenchCommand::Bus { frames, json } => {
            let r = bus::bus(frames.max(1))?;
            bus::print(&r);
            crate::json::write(json.as_ref(), &r)
        }
        BenchCommand::BusEcho {
            connect,
            no_shared_memory,
            no_ring,
        } => bus::bus_echo(&connect, !no_shared_memory, !no_ring),
        BenchCommand::Train {
            steps,
            batch,
            threads,
            device,
            json,
        } => {
            let setup = train::Setup {
                steps: steps.max(1),
                batch: batch.max(1),
                threads: threads.max(1),
            };
            let r = train::train(setup, &device.spec)?;
            train::print(&r);
            crate::json::write(json.as_ref(), &r)
        }
        BenchCommand::Export { episodes, json } => {
            let r = export::export(episodes.max(1))?;
            export::print(&r);
            crate::json::write(json.as_ref(), &r)
        }
        BenchCommand::TrainRun {
            data,
            steps,
            batch,
            threads,
            baseline,
            device,
            json,
        } => {
            let setup = train::Setup {
                steps,
                batch,
                threads,
            };
            train::run_in_process(&data, setup, baseline, &device.spec, &json)
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// The `q` quantile of sorted values (NaN for none).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

pub(crate) fn percentiles(v: Vec<f64>) -> Percentiles {
    let v = sorted(v);
    Percentiles {
        p50_ms: quantile(&v, 0.5),
        p95_ms: quantile(&v, 0.95),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 of a sample, in ms.
#[derive(Debug, Serialize)]
pub struct Tail {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub samples: usize,
}

pub(crate) fn tail(v: Vec<f64>) -> Tail {
    let v = sorted(v);
    Tail {
        p50_ms: quantile(&v, 0.5),
        p99_ms: quantile(&v, 0.99),
        samples: v.len(),
    }
}
