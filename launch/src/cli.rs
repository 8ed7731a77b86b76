//! The command line's shape: every subcommand and flag as clap types. What a command does
//! lives in the module named for it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use loho_models::DeviceSpec;
use loho_runtime::config::ConfigFile;
use loho_runtime::perception::camera::Rig as RigConfig;
use loho_sim::env::Env;
use loho_sim::rgbd::Rig;
use loho_sim::{Split, TaskId};

mod bench;
mod bus;
mod export;
mod train;
pub use bench::BenchCommand;
pub use bus::BusArgs;
pub use export::{ExportCmd, ExportLerobotCmd};
pub use train::TrainCmd;

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
    Run(RunCmd),
    /// List the tasks with their letters, names and an example instruction.
    Tasks,
    /// Render one scene: colour heightmap, height, perspective view, side by side.
    Render(RenderCmd),
    /// Benchmark a policy: per-task score and success rate in the LoHoVLA layout.
    Eval(EvalCmd),
    /// Write oracle demonstrations (train seeds) as a dataset folder for `loho train`.
    GenData(GenDataCmd),
    /// Export demonstrations or `loho run` recordings to another format.
    Export {
        #[command(subcommand)]
        format: ExportCmd,
    },
    /// Train a checkpoint on a dataset folder; `--resume` continues a killed run.
    Train(TrainCmd),
    /// Performance figures.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// The simulator alone, as its scene and arm nodes: the arm follows `cmd/ee`.
    Sim(SimCmd),
    /// Start the nodes a launch graph names, each as a process (see launch/sim.toml).
    Launch { file: PathBuf },
    /// The controller alone: chunks on `policy/action` → safe setpoints on `cmd/ee`.
    Controller(ControllerCmd),
    /// Record every topic (cameras included), or those of --topics, of a running graph to
    /// an MCAP file until Ctrl-C or SIGTERM.
    Record(RecordCmd),
    /// Publish a recording back onto the bus with its timing (the world's topics by
    /// default, never commands unless named), so a policy can run against it.
    Replay(ReplayCmd),
    /// Fuse RGB-D cameras (`camera/<name>/*`) into the top-down heightmap on
    /// `camera/top/*` that every policy reads (see docs/perception.md).
    Heightmap(HeightmapCmd),
    /// The policy alone: frames and instruction in, sub-tasks and chunks out.
    Policy(PolicyCmd),
    /// Serve a policy over openpi's websocket protocol, for openpi's robot clients (see
    /// docs/openpi.md).
    ServeOpenpi(ServeOpenpiCmd),
    /// An arm driver as a node (`state` out, `cmd/ee` in): `loho driver ur --host H`.
    Driver {
        #[command(subcommand)]
        which: DriverCmd,
    },
    /// A UR e-Series controller (RTDE and the secondary interface) with a kinematic
    /// UR5e, for tests and rehearsals without an arm.
    UrEmulator(UrEmulatorCmd),
    /// Certificates for `--secure`: a CA and a key and certificate per node (see
    /// docs/security.md); run again with --node to add a node signed by the same CA.
    Certs(CertsCmd),
}

#[derive(Args, Debug)]
pub struct CertsCmd {
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// A node's name, its identity (repeatable) [default: sim, controller, policy,
    /// heightmap, driver, client, observer].
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// A host name or address the nodes are reached at as tls/HOST:PORT (repeatable)
    /// [default: localhost, 127.0.0.1].
    #[arg(long = "host")]
    pub hosts: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum DriverCmd {
    /// A Universal Robots e-Series arm over RTDE (see docs/deploy.md).
    Ur(UrDriverCmd),
}

#[derive(Args, Debug)]
pub struct UrDriverCmd {
    /// The controller's address (e.g. 192.168.1.10).
    #[arg(long)]
    pub host: String,
    #[command(flatten)]
    pub ur: UrPorts,
    /// Runtime limits, watchdog and robot file [default: configs/runtime.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub bus: BusArgs,
}

#[derive(Args, Debug)]
pub struct UrEmulatorCmd {
    /// The address the emulator listens on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    #[command(flatten)]
    pub ur: UrPorts,
}

/// A UR controller's ports.
#[derive(Args, Debug)]
pub struct UrPorts {
    #[arg(long, default_value_t = loho_drivers::ur::rtde::PORT)]
    pub rtde_port: u16,
    /// The secondary interface, which takes the control program.
    #[arg(long, default_value_t = loho_drivers::ur::SECONDARY_PORT)]
    pub script_port: u16,
}

impl UrPorts {
    /// An emulator on these ports.
    pub fn emulator(&self, listen: std::net::IpAddr) -> loho_drivers::ur::EmulatorConfig {
        loho_drivers::ur::EmulatorConfig {
            listen,
            rtde_port: self.rtde_port,
            script_port: self.script_port,
            ..Default::default()
        }
    }
}

/// What moves the simulated arm.
#[derive(clap::ValueEnum, serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ArmKind {
    /// The simulator's own arm node.
    Sim,
    /// A UR controller emulator moves it, driven over RTDE by the UR driver.
    UrEmulator,
}

/// Where the model runs (`--device`).
#[derive(Args, Debug, Clone, Copy)]
pub struct DeviceArg {
    /// `cpu`, or `cuda` / `cuda:N` in a build with `--features cuda`.
    #[arg(long = "device", value_name = "DEVICE", default_value = "cpu")]
    pub spec: DeviceSpec,
    /// How the model writes sub-tasks: `ar` or `parallel` [default: its config's
    /// head.decoding].
    #[arg(long)]
    pub decoding: Option<loho_models::head::Decoding>,
}

#[derive(Args, Debug)]
pub struct RunCmd {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    /// A checkpoint: `default` (the shipped one) or a folder.
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// Where the recording and the GIF go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Run the simulator in lockstep (as fast as the loop goes) instead of real time.
    #[arg(long)]
    pub lockstep: bool,
    /// Runtime rates and limits [default: configs/runtime.toml, compiled in].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Give up after this many seconds of wall-clock time.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Where the run's one session listens and connects, and how it names its topics
    /// (`--ros2 rmw-zenoh` to watch it from ROS 2 tools) [default: embedded, loopback].
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args, Debug)]
pub struct RenderCmd {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalCmd {
    #[arg(long, default_value = "oracle")]
    pub policy: String,
    #[arg(long, default_value = "all")]
    pub tasks: String,
    #[arg(long, default_value = "test")]
    pub split: String,
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    /// First episode number within the split (each episode's benchmark seed is derived
    /// from its number).
    #[arg(long = "episode", visible_alias = "seed", default_value_t = 0)]
    pub first_episode: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// `local` calls the policy and the simulator directly; `zenoh` runs every
    /// episode through the sim, controller and policy nodes (lockstep); `infer` asks
    /// a policy node for each decision through its `policy/infer` queryable.
    #[arg(long, default_value = "local")]
    pub transport: String,
    /// With `--transport infer`: the endpoint of a running `loho policy` to use
    /// instead of one started here (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// `reward`: the policy is told the reward so far (LoHoVLA's closed loop in the
    /// simulator); `none`: it is not, as on a robot (the simulator still scores).
    #[arg(long, value_enum, default_value_t = Feedback::Reward)]
    pub feedback: Feedback,
    /// `ur-emulator`: every episode through the nodes in real time, the arm a UR
    /// controller emulator driven over RTDE by the UR driver.
    #[arg(long, value_enum, default_value_t = ArmKind::Sim)]
    pub arm: ArmKind,
    /// What the policy sees: `ideal` (the benchmark's top-down heightmap), `benchmark`
    /// (its front, left and right RGB-D cameras, realistic, fused), or a rig file.
    #[arg(long, default_value = "ideal")]
    pub camera: String,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Loho,
    Lerobot,
}

/// Whether the policy hears the simulator's reward.
#[derive(clap::ValueEnum, serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Feedback {
    Reward,
    #[value(name = "none")]
    #[serde(rename = "none")]
    Unscored,
}

#[derive(Args, Debug)]
pub struct GenDataCmd {
    #[arg(long, default_value = "data/train")]
    pub out: PathBuf,
    #[arg(long, default_value = "all")]
    pub tasks: String,
    /// Episodes per task.
    #[arg(long, default_value_t = 600)]
    pub episodes: usize,
    /// First train episode number.
    #[arg(long = "episode", visible_alias = "seed", default_value_t = 0)]
    pub first_episode: u64,
    /// Probability that an executed action is shifted a few cm (the label stays the
    /// oracle's), so the data shows recoveries.
    #[arg(long, default_value_t = 0.2)]
    pub perturb: f64,
    /// Colours of tasks B–K: `all` 11 (the shipped model's data) or `split` (train's 7).
    #[arg(long, default_value = "all")]
    pub colors: String,
    /// Frames from the `ideal` heightmap or fused from the `benchmark` cameras (or a rig
    /// file's), as `loho eval --camera`.
    #[arg(long, default_value = "ideal")]
    pub camera: String,
    /// DAgger: this policy (`default` or a checkpoint folder) acts, with its sampling,
    /// and every state it reaches is labelled with the oracle's decision there.
    #[arg(long, requires = "policy")]
    pub dagger: bool,
    /// The policy `--dagger` rolls out.
    #[arg(long, requires = "dagger")]
    pub policy: Option<String>,
    /// Add to the dataset in `--out` instead of starting a new one (DAgger rounds).
    #[arg(long)]
    pub append: bool,
    /// `loho` (what `loho train` reads) or `lerobot` (a LeRobotDataset v3.0).
    #[arg(long, value_enum, default_value_t = DataFormat::Loho)]
    pub format: DataFormat,
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args, Debug)]
pub struct SimCmd {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    /// Camera frames per second (real time) or frame repeats while idle (lockstep).
    #[arg(long, default_value_t = 10.0)]
    pub fps: f64,
    #[arg(long)]
    pub lockstep: bool,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Exit once the episode is over.
    #[arg(long)]
    pub exit_when_done: bool,
    /// `ur-emulator`: the arm is a UR controller emulator on `--rtde-port` and
    /// `--script-port` (loopback), for `loho driver ur` to drive.
    #[arg(long, value_enum, default_value_t = ArmKind::Sim)]
    pub arm: ArmKind,
    #[command(flatten)]
    pub ur: UrPorts,
    /// `ideal`: the top-down heightmap on `camera/top/*`; `benchmark` (or a rig file):
    /// perspective RGB-D cameras on `camera/<name>/*`, for `loho heightmap` to fuse.
    #[arg(long, default_value = "ideal")]
    pub cameras: String,
    #[command(flatten)]
    pub bus: BusArgs,
}

#[derive(Args, Debug)]
pub struct RecordCmd {
    /// The MCAP file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Only these topics, e.g. camera/top/color,state [default: every topic].
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    #[command(flatten)]
    pub bus: BusArgs,
}

#[derive(Args, Debug)]
pub struct ReplayCmd {
    /// The MCAP file (`loho run`'s or `loho record`'s; one cut short by a kill replays up
    /// to the cut).
    pub file: PathBuf,
    /// Only these topics [default: all but sub-tasks, chunks, cmd/ee, exec/status and
    /// estop, which the nodes under test write]. Naming cmd/ee or policy/action can move
    /// an arm listening on this bus.
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Playback speed (2: twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    #[command(flatten)]
    pub bus: BusArgs,
}

#[derive(Args, Debug)]
pub struct HeightmapCmd {
    /// The rig file: cameras, their poses and topics [default: configs/cameras/benchmark.toml].
    #[arg(long)]
    pub rig: Option<PathBuf>,
    #[command(flatten)]
    pub bus: BusArgs,
}

#[derive(Args, Debug)]
pub struct ControllerCmd {
    /// Pace setpoints by the simulator's `clock` (for a lockstep simulator).
    #[arg(long)]
    pub sim_time: bool,
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub bus: BusArgs,
}

#[derive(Args, Debug)]
pub struct PolicyCmd {
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// Seed of the action head's noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The task, where nothing publishes `instruction` (a robot without a simulator).
    #[arg(long)]
    pub instruction: Option<String>,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args, Debug)]
pub struct ServeOpenpiCmd {
    /// The address to listen on; 0.0.0.0 serves other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    #[arg(long, default_value = "default")]
    pub policy: String,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// Which benchmark episode.
#[derive(Args, Debug)]
pub struct EpisodeArgs {
    /// Task letter or registered name.
    #[arg(long, default_value = "B")]
    pub task: String,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Episode number within the split (its benchmark seed is derived from it).
    #[arg(long, visible_alias = "seed", default_value_t = 0)]
    pub episode: u64,
}

impl EpisodeArgs {
    pub fn task(&self) -> Result<TaskId> {
        Ok(TaskId::parse(&self.task)?)
    }
    pub fn split(&self) -> Result<Split> {
        split(&self.split)
    }
    /// The benchmark seed of the episode.
    pub fn seed(&self) -> Result<u64> {
        Ok(self.split()?.seed(self.episode))
    }
    pub fn env(&self) -> Result<Env> {
        Ok(Env::new(self.task()?, self.split()?, self.seed()?)?)
    }
}

/// Worker threads when `--jobs` is not given: all cores.
pub fn jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(loho_models::cores)
}

/// `--camera`: `ideal` (no cameras), `benchmark`, or the path of a rig file.
pub fn cameras(s: &str) -> Result<Option<Arc<Rig>>> {
    Ok(match s {
        "ideal" => None,
        "benchmark" => Some(Rig::benchmark()),
        path => {
            let cfg = RigConfig::load(path.as_ref()).with_context(|| {
                format!("--camera {path:?}: not ideal, benchmark or a readable rig file")
            })?;
            Some(Arc::new(
                Rig::new(&cfg).with_context(|| format!("rig {path}"))?,
            ))
        }
    })
}

pub fn split(s: &str) -> Result<Split> {
    Split::parse(s).with_context(|| format!("unknown split {s:?}: use train, val or test"))
}
