//! The `loho` command line: every subcommand of DESIGN §9 that exists so far, wired to
//! the library crates. `main.rs` only calls [`main_with`], so tests can run any
//! subcommand in a child process exactly as the binary would.

pub mod bench;
pub mod eval;
pub mod gendata;
pub mod policy;
pub mod render;
pub mod train;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use loho_runtime::BusConfig;
use loho_sim::env::Env;
use loho_sim::{node, Split, TaskId, ALL_TASKS};

use crate::eval::{EvalArgs, PolicyKind};

#[derive(Parser, Debug)]
#[command(
    name = "loho",
    version,
    about = "Robot control runtime for long-horizon VLA policies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one episode in this process and print each sub-task and reward as it happens.
    Run {
        #[command(flatten)]
        episode: EpisodeArgs,
        #[arg(long, default_value = "oracle")]
        policy: String,
        /// Where to write the before/after pictures.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
    },
    /// List the tasks with their letters, names and an example instruction.
    Tasks,
    /// Render one scene: colour heightmap, height, perspective view, side by side.
    Render {
        #[command(flatten)]
        episode: EpisodeArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Benchmark a policy: per-task score and success rate in the LoHoVLA layout.
    Eval {
        #[arg(long, default_value = "oracle")]
        policy: String,
        #[arg(long, default_value = "all")]
        tasks: String,
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long, default_value_t = 50)]
        episodes: usize,
        /// First episode number within the split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write oracle demonstrations (train seeds) as a dataset folder for `loho train`.
    GenData {
        #[arg(long, default_value = "data/train")]
        out: PathBuf,
        #[arg(long, default_value = "all")]
        tasks: String,
        /// Episodes per task.
        #[arg(long, default_value_t = 600)]
        episodes: usize,
        /// First train episode number.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Probability that an executed action is shifted a few cm (the label stays the
        /// oracle's), so the data shows recoveries.
        #[arg(long, default_value_t = 0.2)]
        perturb: f64,
        /// Colours of tasks B–K: `all` 11 (the shipped model's data) or `split` (train's 7).
        #[arg(long, default_value = "all")]
        colors: String,
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Train a checkpoint on a dataset folder; `--resume` continues a killed run.
    Train {
        #[arg(long, default_value = "data/train")]
        data: PathBuf,
        /// Run folder: the checkpoint, optimizer state, train.json and log.jsonl.
        #[arg(long, default_value = "runs/train/loho-tiny")]
        out: PathBuf,
        #[arg(long)]
        resume: bool,
        /// Total steps [default: 8000; on --resume, the saved run's].
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Steps between checkpoints (also saved every 10 minutes).
        #[arg(long, default_value_t = 250)]
        save_every: usize,
    },
    /// Performance figures.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Run the simulator as a zenoh node.
    Sim {
        #[command(flatten)]
        episode: EpisodeArgs,
        /// Camera frames per second while idle.
        #[arg(long, default_value_t = 10.0)]
        fps: f64,
        #[command(flatten)]
        bus: BusArgs,
    },
}

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
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Which benchmark episode.
#[derive(clap::Args, Debug)]
pub struct EpisodeArgs {
    /// Task letter or registered name.
    #[arg(long, default_value = "B")]
    pub task: String,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Episode number within the split (its benchmark seed is derived from it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl EpisodeArgs {
    fn env(&self) -> Result<Env> {
        let task = TaskId::parse(&self.task)?;
        let sp = split(&self.split)?;
        Ok(Env::new(task, sp, sp.seed(self.seed))?)
    }
}

/// Where a node's zenoh session listens and connects (loopback only by default).
#[derive(clap::Args, Debug)]
pub struct BusArgs {
    #[arg(long, default_value = loho_runtime::keys::DEFAULT_ROBOT)]
    pub robot: String,
    /// zenoh endpoint to listen on, e.g. tcp/127.0.0.1:7447 (repeatable).
    #[arg(long)]
    pub listen: Vec<String>,
    /// zenoh endpoint to connect to (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
}

impl BusArgs {
    fn config(&self) -> BusConfig {
        BusConfig {
            robot: self.robot.clone(),
            listen: self.listen.clone(),
            connect: self.connect.clone(),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn split(s: &str) -> Result<Split> {
    Split::parse(s).with_context(|| format!("unknown split {s:?}: use train, val or test"))
}

/// Parses `args` (including the program name) and runs the subcommand.
pub fn main_with<I: IntoIterator<Item = String>>(args: I) -> Result<()> {
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Tasks => {
            for t in ALL_TASKS {
                let env = Env::new(t, Split::Test, Split::Test.seed(0))?;
                println!("{}  {:<62} {}", t.letter(), t.name(), env.instruction());
            }
            Ok(())
        }
        Command::Render { episode, out } => {
            let env = episode.env()?;
            render::scene_strip(env.world(), &env.observe()).save_png(&out)?;
            println!("{}\nwrote {}", env.instruction(), out.display());
            Ok(())
        }
        Command::Eval {
            policy,
            tasks,
            split: sp,
            episodes,
            seed,
            jobs,
            json,
        } => {
            let args = EvalArgs {
                policy: PolicyKind::parse(&policy)?,
                tasks: TaskId::parse_list(&tasks)?,
                split: split(&sp)?,
                episodes,
                seed,
                jobs: jobs.unwrap_or_else(cores),
            };
            let report = eval::evaluate(&args)?;
            print!("{}", eval::table(&report));
            for f in &report.failures {
                eprintln!(
                    "failed: task {} seed {} reward {:.2} after {} steps; last sub-task: {}",
                    f.task,
                    f.seed,
                    f.total_reward,
                    f.steps,
                    f.subtasks.last().map_or("", |s| s.as_str())
                );
            }
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Run {
            episode,
            policy,
            out,
        } => run_episode_live(&episode, &policy, &out),
        Command::GenData {
            out,
            tasks,
            episodes,
            seed,
            perturb,
            colors,
            jobs,
        } => {
            anyhow::ensure!(
                colors == "all" || colors == "split",
                "unknown --colors {colors:?}: use all or split"
            );
            let args = gendata::GenArgs {
                out: out.clone(),
                tasks: TaskId::parse_list(&tasks)?,
                episodes,
                seed,
                perturb,
                all_colors: colors == "all",
                jobs: jobs.unwrap_or_else(cores),
            };
            let n = gendata::generate(&args)?;
            println!("wrote {n} decisions to {}", out.display());
            Ok(())
        }
        Command::Train {
            data,
            out,
            resume,
            steps,
            batch,
            lr,
            seed,
            save_every,
        } => train::train(&train::TrainArgs {
            data,
            out,
            config: loho_models::train::TrainConfig {
                batch,
                lr,
                seed,
                palette: loho_sim::colors::ALL
                    .iter()
                    .map(|c| (c.name.to_string(), c.rgb))
                    .collect(),
                ..Default::default()
            },
            steps,
            resume,
            save_every: save_every.max(1),
        }),
        Command::Bench {
            what:
                BenchCommand::Policy {
                    policy,
                    decisions,
                    threads,
                    json,
                },
        } => {
            // candle and gemm read this when their pools first start, which is later.
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
            let PolicyKind::Model(dir) = PolicyKind::parse(&policy)? else {
                anyhow::bail!("bench policy needs a checkpoint: default or a folder");
            };
            let r = bench::policy(&dir, decisions.max(1), json.as_ref())?;
            bench::print(&r);
            Ok(())
        }
        Command::Sim { episode, fps, bus } => {
            let sp = split(&episode.split)?;
            let cfg = node::SimConfig {
                bus: bus.config(),
                task: TaskId::parse(&episode.task)?,
                split: sp,
                seed: sp.seed(episode.seed),
                fps,
            };
            node::run(&cfg, Arc::new(AtomicBool::new(false)))?;
            Ok(())
        }
    }
}

/// One episode with live output; pictures of the first and last frame under `out`.
fn run_episode_live(episode: &EpisodeArgs, policy: &str, out: &PathBuf) -> Result<()> {
    let mut env = episode.env()?;
    let kind = PolicyKind::parse(policy)?;
    let mut pol = kind.make(env.episode.seed)?;
    println!("instruction: {}", env.instruction());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let name = format!(
        "{}-{}-{}",
        env.episode.task.letter(),
        env.episode.split.name(),
        env.episode.seed
    );
    let first = out.join(format!("{name}-start.png"));
    render::scene_strip(env.world(), &env.observe()).save_png(&first)?;
    let mut step = 0;
    let result = env.run(pol.as_mut(), |a, r| {
        step += 1;
        println!(
            "step {step}: {}  reward {:+.2}  total {:.2}",
            a.subtask, r.reward, r.total
        );
    })?;
    if let Some(done) = result
        .subtasks
        .last()
        .filter(|_| result.subtasks.len() > result.steps)
    {
        println!("sub-task: {done}");
    }
    let last = out.join(format!("{name}-end.png"));
    render::scene_strip(env.world(), &env.observe()).save_png(&last)?;
    println!(
        "result: task {} {} seed {}: {} with score {:.1} in {} steps (pictures: {}, {})",
        env.episode.task.letter(),
        env.episode.split.name(),
        env.episode.seed,
        if env.success() { "success" } else { "failure" },
        100.0 * env.total_reward(),
        env.steps_taken(),
        first.display(),
        last.display()
    );
    Ok(())
}
