//! `loho bench`: the performance figures, one bench per file ([`policy`], [`decoding`],
//! [`controller`], [`bus`], [`train`], [`export`]), each measured against its baseline in
//! the same run.

pub mod bus;
pub mod controller;
pub mod decoding;
pub mod export;
pub mod policy;
pub mod train;

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cli::BenchCommand;
use crate::policy::PolicyKind;

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
            crate::write_json(json.as_ref(), &r)
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
            let split = crate::cli::split(&split)?;
            let r = decoding::decoding(dir, split, episodes.max(1), &device.spec.open()?)?;
            decoding::print(&r);
            crate::write_json(json.as_ref(), &r)
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
            crate::write_json(json.as_ref(), &r)
        }
        BenchCommand::Bus { frames, json } => {
            let r = bus::bus(frames.max(1))?;
            bus::print(&r);
            crate::write_json(json.as_ref(), &r)
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
            crate::write_json(json.as_ref(), &r)
        }
        BenchCommand::Export { episodes, json } => {
            let r = export::export(episodes.max(1))?;
            export::print(&r);
            crate::write_json(json.as_ref(), &r)
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
