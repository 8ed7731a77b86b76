//! The `loho` command line: every subcommand of DESIGN §9 that exists so far, wired to
//! the library crates. `main.rs` only calls [`main_with`], so tests can run any
//! subcommand in a child process exactly as the binary would.

pub mod bench;
pub mod eval;
pub mod gendata;
pub mod graph;
pub mod nodes;
pub mod policy;
pub mod render;
pub mod run;
pub mod train;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::time::Duration;

use loho_runtime::{Bus, BusConfig};
use loho_sim::env::Env;
use loho_sim::node::{self, Mode};
use loho_sim::{Split, TaskId, ALL_TASKS};

use crate::eval::EvalArgs;
use crate::policy::PolicyKind;

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
    /// The main job: one episode through the sim, controller and policy nodes in this
    /// process over embedded zenoh, printed live, recorded to MCAP and a GIF.
    Run {
        #[command(flatten)]
        episode: EpisodeArgs,
        /// A checkpoint: `default` (the shipped one) or a folder.
        #[arg(long, default_value = "default")]
        policy: String,
        /// Where the recording and the GIF go.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Run the simulator in lockstep (as fast as the loop goes) instead of real time.
        #[arg(long)]
        lockstep: bool,
        /// Runtime rates and limits [default: configs/runtime.toml, compiled in].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Give up after this many seconds of wall-clock time.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
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
        /// `local` calls the policy and the simulator directly; `zenoh` runs every
        /// episode through the sim, controller and policy nodes (lockstep); `infer` asks
        /// a policy node for each decision through its `policy/infer` queryable.
        #[arg(long, default_value = "local")]
        transport: String,
        /// With `--transport infer`: the endpoint of a running `loho policy` to use
        /// instead of one started here (repeatable).
        #[arg(long)]
        connect: Vec<String>,
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
    /// The simulator alone, as a zenoh node: the arm follows `cmd/ee`.
    Sim {
        #[command(flatten)]
        episode: EpisodeArgs,
        /// Camera frames per second (real time) or frame repeats while idle (lockstep).
        #[arg(long, default_value_t = 10.0)]
        fps: f64,
        #[arg(long)]
        lockstep: bool,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Exit once the episode is over.
        #[arg(long)]
        exit_when_done: bool,
        #[command(flatten)]
        bus: BusArgs,
    },
    /// Start the nodes a launch graph names, each as a process (see launch/sim.toml).
    Launch { file: PathBuf },
    /// The controller alone: chunks on `policy/action` → safe setpoints on `cmd/ee`.
    Controller {
        /// Pace setpoints by the simulator's `clock` (for a lockstep simulator).
        #[arg(long)]
        sim_time: bool,
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        bus: BusArgs,
    },
    /// The policy alone: frames and instruction in, sub-tasks and chunks out.
    Policy {
        #[arg(long, default_value = "default")]
        policy: String,
        /// Seed of the action head's noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
    /// Latency (p50, p99) of one 320×160 RGB-D frame between two processes over
    /// loopback zenoh, against an in-process channel, in one run.
    Bus {
        #[arg(long, default_value_t = 500)]
        frames: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The other process of `bench bus`.
    #[command(hide = true)]
    BusEcho {
        #[arg(long)]
        connect: String,
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
            transport,
            connect,
        } => {
            let args = EvalArgs {
                transport: eval::Transport::parse(&transport, connect)?,
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
            lockstep,
            config,
            timeout,
        } => run::run(&run::RunArgs {
            task: TaskId::parse(&episode.task)?,
            split: split(&episode.split)?,
            episode: episode.seed,
            policy: PolicyKind::parse(&policy)?,
            out,
            mode: if lockstep {
                Mode::Lockstep
            } else {
                Mode::Realtime
            },
            runtime: nodes::runtime_config(config.as_deref())?,
            timeout: Duration::from_secs(timeout),
        }),
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
        Command::Bench {
            what:
                BenchCommand::Controller {
                    policy,
                    rates,
                    seconds,
                    json,
                },
        } => {
            let PolicyKind::Model(dir) = PolicyKind::parse(&policy)? else {
                anyhow::bail!("bench controller needs a checkpoint: default or a folder");
            };
            let r = bench::controller(&dir, &rates, seconds)?;
            bench::print_controller(&r);
            write_json(json.as_ref(), &r)
        }
        Command::Bench {
            what: BenchCommand::Bus { frames, json },
        } => {
            let r = bench::bus(frames.max(1))?;
            bench::print_bus(&r);
            write_json(json.as_ref(), &r)
        }
        Command::Bench {
            what: BenchCommand::BusEcho { connect },
        } => bench::bus_echo(&connect),
        Command::Sim {
            episode,
            fps,
            lockstep,
            config,
            exit_when_done,
            bus,
        } => {
            let sp = split(&episode.split)?;
            let cfg = node::SimConfig {
                task: TaskId::parse(&episode.task)?,
                split: sp,
                seed: sp.seed(episode.seed),
                fps,
                mode: if lockstep {
                    Mode::Lockstep
                } else {
                    Mode::Realtime
                },
                runtime: nodes::runtime_config(config.as_deref())?,
                exit_when_done,
            };
            let bus = open_bus(&bus)?;
            let r = nodes::simulator(&bus, &cfg, ctrl_c()?)?;
            println!(
                "result: task {} seed {}: score {:.1} in {} steps",
                r.task.letter(),
                r.seed,
                100.0 * r.total_reward,
                r.steps
            );
            Ok(())
        }
        Command::Controller {
            sim_time,
            config,
            bus,
        } => {
            let runtime = nodes::runtime_config(config.as_deref())?;
            let mode = if sim_time {
                Mode::Lockstep
            } else {
                Mode::Realtime
            };
            let cfg = nodes::controller_config(&runtime, mode);
            let bus = open_bus(&bus)?;
            loho_runtime::controller::run(&bus, &cfg, ctrl_c()?)?;
            Ok(())
        }
        Command::Launch { file } => graph::launch(&file),
        Command::Policy { policy, seed, bus } => {
            let mut policy = PolicyKind::parse(&policy)?.node(seed)?;
            let bus = open_bus(&bus)?;
            loho_runtime::policy::node::run(&bus, policy.as_mut(), &Default::default(), ctrl_c()?)?;
            Ok(())
        }
    }
}

pub(crate) fn write_json(path: Option<&PathBuf>, v: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn open_bus(args: &BusArgs) -> Result<Bus> {
    let cfg = args.config();
    Bus::open(&cfg).with_context(|| format!("opening the zenoh session ({cfg:?})"))
}

/// A flag that Ctrl-C (SIGINT) sets, so nodes stop cleanly: liveliness tokens are
/// undeclared and peers hear of it at once.
fn ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, std::sync::atomic::Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    Ok(stop)
}
