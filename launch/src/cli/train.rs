//! `loho train`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct TrainCmd {
    #[arg(long, default_value = "data/train")]
    pub data: PathBuf,
    /// Run folder: the checkpoint, optimizer state, train.json and log.jsonl.
    #[arg(long, default_value = "runs/train/loho-tiny")]
    pub out: PathBuf,
    #[arg(long)]
    pub resume: bool,
    /// Start from this checkpoint's weights (a fine-tune) instead of drawing new ones.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "resume")]
    pub from: Option<PathBuf>,
    /// Also train parallel decoding in blocks of this many tokens (with --from: the
    /// checkpoint gains a <mask> token and is its teacher; docs/model.md).
    #[arg(long, value_name = "BLOCK", requires = "from")]
    pub parallel: Option<usize>,
    /// Weight of distilling the teacher's next-word distributions into the masked tokens.
    #[arg(long, default_value_t = 1.0)]
    pub distill: f64,
    /// Distil the --from checkpoint's flow into this many Euler steps of the action head
    /// (its head.flow_steps; docs/model.md).
    #[arg(long, value_name = "K", requires = "from")]
    pub flow_steps: Option<usize>,
    /// Total steps [default: 8000; on --resume, the saved run's].
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Steps of linear warm-up before the cosine decay.
    #[arg(long, default_value_t = 300)]
    pub warmup: usize,
    /// Seed of the weights' initialisation and the batches' order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints (also saved every 10 minutes).
    #[arg(long, default_value_t = 250)]
    pub save_every: usize,
    /// Threads, each training on its share of every batch [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}
