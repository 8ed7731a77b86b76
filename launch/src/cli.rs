//! The command line's shape: the subcommands. Each command's own flags live beside its
//! body, in the module named for it; the flags several commands share are
//! [`crate::args`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::bench::BenchCommand;
use crate::certs::CertsCmd;
use crate::eval::EvalCmd;
use crate::export::ExportCmd;
use crate::gendata::GenDataCmd;
use crate::nodes::{
    ControllerCmd, DriverCmd, HeightmapCmd, PolicyCmd, RecordCmd, ReplayCmd, ServeOpenpiCmd,
    SimCmd, UrEmulatorCmd,
};
use crate::render::{RenderCmd, TasksCmd};
use crate::run::RunCmd;
use crate::train::TrainCmd;
use crate::vocab::VocabCmd;

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
    Tasks(TasksCmd),
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
    /// An open vocabulary for `loho train --vocab`, converted once from a registry package.
    Vocab {
        #[command(subcommand)]
        what: VocabCmd,
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
