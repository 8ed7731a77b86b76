//! The command line's shape: the subcommands, and the flags several commands share
//! (episode, device, bus, UR ports). Each command's own flags live beside its body, in
//! the module named for it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use loho_core::config_file::ConfigFile;
use loho_core::perception::camera::Rig as RigConfig;
use loho_models::DeviceSpec;
use loho_sim::env::Env;
use loho_sim::rgbd::Rig;
use loho_sim::{Split, TaskId};

mod bus;
pub use bus::BusArgs;

use crate::bench::BenchCommand;
use crate::certs::CertsCmd;
use crate::eval::EvalCmd;
use crate::export::ExportCmd;
use crate::gendata::GenDataCmd;
use crate::nodes::{
    ControllerCmd, DriverCmd, HeightmapCmd, PolicyCmd, RecordCmd, ReplayCmd, ServeOpenpiCmd,
    SimCmd, UrEmulatorCmd,
};
use crate::render::RenderCmd;
use crate::run::RunCmd;
use crate::train::TrainCmd;

#[derive(Parser, Debug)]
#[command(
    name = "loho",
    version,
    about = "Robot control runtime for long-horizon VLA policies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log lines on stderr: `-v` info (the default, except for `run`, which prints
    /// its story with warnings only), `-vv` debug. `RUST_LOG` wins over both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
    /// An emulator of the arm `robot` on these ports.
    pub fn emulator(
        &self,
        listen: std::net::IpAddr,
        robot: &loho_core::robot::Robot,
    ) -> loho_drivers::ur::EmulatorConfig {
        loho_drivers::ur::EmulatorConfig {
            listen,
            rtde_port: self.rtde_port,
            script_port: self.script_port,
            kinematics: robot.kinematics.clone(),
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
