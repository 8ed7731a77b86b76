//! `loho bench`'s flags.

use std::path::PathBuf;

use clap::Subcommand;

use super::DeviceArg;

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
