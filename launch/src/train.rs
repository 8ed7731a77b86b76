//! `loho train`: a progress bar over [`loho_models::train::Trainer`], periodic atomic
//! checkpoints, and a `log.jsonl` of the losses.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loho_models::data::Dataset;
use loho_models::train::{Parallel, TrainConfig, Trainer};
use loho_models::vocab::Vocab;
use loho_models::{Config, Device, DeviceSpec};

use crate::args::DeviceArg;

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
    /// An open vocabulary folder (`loho vocab import`): a new run's words are its pieces,
    /// embedded through its frozen pretrained table (docs/model.md, "Open vocabulary").
    /// Without it a new run's vocabulary is the data's words.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["resume", "from"])]
    pub vocab: Option<PathBuf>,
    /// The palette the data's scenes were drawn from (`gen-data --palette`): object
    /// tokens of its colours learn their names [default: the benchmark's eleven].
    #[arg(long, value_name = "FILE")]
    pub palette: Option<PathBuf>,
    /// Each instruction piece is `<unk>` with this probability (per sample and step), so
    /// the model reads every word, not the one that usually suffices.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub word_dropout: f32,
    /// Widen the --from checkpoint's instruction window to N tokens, `<bos>` included (its
    /// config.json's max_instruction; longer instructions keep their first words).
    #[arg(long, value_name = "N", requires = "from")]
    pub max_instruction: Option<usize>,
    /// Threads, each training on its share of every batch [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `loho train`.
pub fn command(c: TrainCmd) -> Result<()> {
    train(&TrainArgs {
        data: c.data,
        out: c.out,
        config: TrainConfig {
            batch: c.batch,
            lr: c.lr,
            warmup: c.warmup,
            parallel: c.parallel.map(|block| Parallel {
                block,
                distill: c.distill,
            }),
            flow_steps: c.flow_steps,
            vocab: c.vocab,
            seed: c.seed,
            palette: match &c.palette {
                Some(path) => loho_sim::colors::Palette::read(path)?,
                None => loho_sim::colors::Palette::benchmark(),
            }
            .named_rgb(),
            word_dropout: c.word_dropout,
            max_instruction: c.max_instruction,
            ..Default::default()
        },
        steps: c.steps,
        resume: c.resume,
        from: c.from,
        save_every: c.save_every.max(1),
        threads: crate::args::jobs(c.threads),
        device: c.device.spec,
    })
}

pub struct TrainArgs {
    pub data: PathBuf,
    pub out: PathBuf,
    pub config: TrainConfig,
    /// Total steps; on `--resume` this extends (or shortens) the saved schedule.
    pub steps: Option<usize>,
    pub resume: bool,
    /// A checkpoint to fine-tune (else new weights).
    pub from: Option<PathBuf>,
    pub save_every: usize,
    /// Threads a CPU step is split over.
    pub threads: usize,
    pub device: DeviceSpec,
}

/// How many shards a step on `device` is split into ([`Trainer::workers`]): on the CPU
/// `threads`, each running its shard's ops on its own thread, so candle is told to use
/// one thread per op (it reads these when its pools first start, which is later; its
/// threads would only wait at barriers beside the shards); on a GPU, one.
pub(crate) fn shards(threads: usize, device: &Device) -> usize {
    if !device.is_cpu() {
        return 1;
    }
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    threads.max(1)
}

/// Keeps freed memory in the process instead of handing it back to the kernel: a training
/// step allocates and frees hundreds of tensors of up to a few MB, and with glibc's
/// defaults each comes back as fresh pages the kernel must zero (a step's backward took
/// 187 instead of 113 ms here). What `GLIBC_TUNABLES` with the same three settings does.
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before the
    // training threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 512 << 20);
    }
}

/// What the data says the model writes: sub-tasks and their alternatives.
fn written(data: &Dataset) -> impl Iterator<Item = &str> {
    data.samples.iter().flat_map(|s| {
        std::iter::once(s.subtask.as_str()).chain(s.alternatives.iter().map(String::as_str))
    })
}

/// A new run's vocabulary and config: the data's words, or with
/// [`TrainConfig::vocab`] an open vocabulary whose head writes the pieces of the data's
/// texts and colour names, with room for the longest of them.
fn new_model(data: &Dataset, tc: &TrainConfig) -> Result<(Vocab, Config)> {
    let texts = || {
        data.samples
            .iter()
            .map(|s| s.instruction.as_str())
            .chain(written(data))
    };
    let Some(dir) = &tc.vocab else {
        let vocab = Vocab::build(texts())?;
        let cfg = Config::tiny(vocab.len());
        return Ok((vocab, cfg));
    };
    let path = dir.join(loho_models::checkpoint::TOKENIZER);
    let vocab = Vocab::load(&path)
        .with_context(|| format!("{} (made by `loho vocab import`)", path.display()))?;
    anyhow::ensure!(
        vocab.is_open(),
        "{} is not an open vocabulary",
        path.display()
    );
    let names = tc.palette.iter().map(|(n, _)| n.as_str());
    let writes = loho_models::words::writes(&vocab, texts().chain(names))?;
    let longest = |f: &dyn Fn(&loho_models::data::Sample) -> &str| -> Result<usize> {
        let mut n = 0;
        for s in &data.samples {
            n = n.max(vocab.encode(f(s))?.len());
        }
        Ok(n)
    };
    let instruction = longest(&|s| s.instruction.as_str())? + 1;
    let subtask = longest(&|s| s.subtask.as_str())? + 3;
    let mut cfg = Config::tiny(vocab.len()).with_lengths(instruction.max(24), subtask.max(24));
    cfg.pieces = Some(loho_models::words::PiecesConfig {
        dim: loho_models::wordllama::table_width(dir)?,
        writes,
    });
    tracing::info!(
        pieces = vocab.len(),
        writes = cfg.pieces.as_ref().map_or(0, |p| p.writes.len()),
        max_instruction = cfg.max_instruction,
        max_subtask = cfg.max_subtask,
        "open vocabulary"
    );
    Ok((vocab, cfg))
}

pub fn train(a: &TrainArgs) -> Result<()> {
    let device = a.device.open()?;
    let shards = shards(a.threads, &device);
    keep_freed_memory();
    let t_load = Instant::now();
    let data = Dataset::open(&a.data).with_context(|| format!("reading {}", a.data.display()))?;
    anyhow::ensure!(!data.is_empty(), "{} holds no samples", a.data.display());
    tracing::info!(
        samples = data.len(),
        secs = t_load.elapsed().as_secs_f64(),
        "dataset loaded"
    );
    let mut trainer = if a.resume {
        let mut t = Trainer::resume(&a.out, &device)
            .with_context(|| format!("resuming from {}", a.out.display()))?;
        if let Some(steps) = a.steps {
            t.state.config.steps = steps;
        }
        println!(
            "resuming {} at step {} of {}",
            a.out.display(),
            t.state.step,
            t.state.config.steps
        );
        t
    } else if let Some(from) = &a.from {
        let mut tc = a.config.clone();
        if let Some(steps) = a.steps {
            tc.steps = steps;
        }
        // The palette's names too: an object of a palette colour is labelled with its word.
        let names: Vec<String> = tc.palette.iter().map(|(n, _)| n.clone()).collect();
        let texts = written(&data).chain(names.iter().map(String::as_str));
        Trainer::fine_tune(from, tc, &device, texts)
            .with_context(|| format!("fine-tuning {}", from.display()))?
    } else {
        let (vocab, cfg) = new_model(&data, &a.config)?;
        let mut tc = a.config.clone();
        if let Some(steps) = a.steps {
            tc.steps = steps;
        }
        Trainer::new(&cfg, vocab, tc, &device)?
    };
    trainer.workers = shards;
    let before = trainer.state.tasks.len();
    trainer
        .state
        .tasks
        .extend(data.samples.iter().map(|s| s.task.clone()));
    if trainer.state.tasks.len() > before {
        tracing::info!(tasks = ?trainer.state.tasks, "trains on");
    }
    let steps = trainer.state.config.steps;
    let batch = trainer.state.config.batch;
    let parallel = trainer.state.config.parallel.is_some();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let log_path = a.out.join("log.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {elapsed} (eta {eta})  {msg}")
            .expect("template"),
    );
    bar.set_position(trainer.state.step as u64);
    let (mut ema, mut window_start, mut window_steps) = (None::<f32>, Instant::now(), 0usize);
    let mut last_save = Instant::now();
    while trainer.state.step < steps {
        let t0 = Instant::now();
        let s = trainer.step(&data)?;
        trainer.state.wall_s += t0.elapsed().as_secs_f64();
        window_steps += 1;
        let e = ema.map_or(s.loss, |m| 0.98 * m + 0.02 * s.loss);
        ema = Some(e);
        let rate = (window_steps * batch) as f64 / window_start.elapsed().as_secs_f64();
        bar.set_position(trainer.state.step as u64);
        let parallel = match parallel {
            true => format!(" parallel {:.3} distill {:.3}", s.parallel, s.distill),
            false => String::new(),
        };
        bar.set_message(format!(
            "loss {e:.3} (text {:.3} colour {:.3} action {:.3} pointer {:.3}{parallel})  lr {:.1e}  {rate:.1} samples/s",
            s.text, s.colour, s.action, s.pointer, s.lr
        ));
        let step = trainer.state.step;
        if step % 50 == 0 {
            writeln!(
                log,
                "{}",
                serde_json::json!({"step": step, "loss": s.loss, "text": s.text,
                    "action": s.action, "pointer": s.pointer, "colour": s.colour,
                    "parallel": s.parallel, "distill": s.distill, "lr": s.lr, "grad_norm": s.grad_norm,
                    "samples_per_s": rate, "wall_s": trainer.state.wall_s})
            )?;
            window_start = Instant::now();
            window_steps = 0;
        }
        if step % a.save_every == 0 || step == steps || last_save.elapsed().as_secs() > 600 {
            trainer.save(&a.out)?;
            last_save = Instant::now();
        }
    }
    bar.finish();
    trainer.save(&a.out)?;
    println!(
        "trained {} steps ({:.0} s of training) → {}",
        steps,
        trainer.state.wall_s,
        a.out.display()
    );
    Ok(())
}
