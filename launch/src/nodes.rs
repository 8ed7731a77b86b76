//! Each node alone, as a command with its flags: `loho sim`, `controller`, `heightmap`,
//! `record`, `replay`, `policy`, `serve-openpi`, `driver ur`, `ur-emulator`. The wiring
//! of several nodes in one process is [`crate::wiring`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::config_file::ConfigFile;
use loho_core::perception::camera::Rig as RigConfig;
use loho_core::robot::Robot;
use loho_drivers::ur::{Emulator, UrArm, UrConfig};
use loho_drivers::{ArmError, ArmNodeConfig};
use loho_runtime::controller::{self, ControllerConfig};
use loho_runtime::policy::node::{self as policy, PolicyConfig};
use loho_runtime::record::Recorder;
use loho_runtime::replay::{self, ReplayOptions};
use loho_sim::colors::Palette;
use loho_sim::node::{self, SimConfig};

use crate::args::{ArmKind, BusArgs, DeviceArg, EpisodeArgs, UrPorts};
use crate::policy::PolicyKind;
use crate::process::{ctrl_c, open_bus};
use crate::wiring::{runtime_config, simulator, ArmPath};

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
    #[command(flatten)]
    pub colours: ColoursArg,
}

/// `--palette` for a policy that meets scenes outside the simulator.
#[derive(Args, Debug)]
pub struct ColoursArg {
    /// The colours of the objects it will meet, if not its training's: a palette file
    /// (`name = [r, g, b]` per colour, docs/simulator.md). A colour its training never
    /// named is read and written as the trained name nearest to it (docs/model.md,
    /// "Colours it never saw").
    #[arg(long, value_name = "FILE")]
    pub palette: Option<PathBuf>,
}

impl ColoursArg {
    /// `policy` meeting the palette's colours (the file read and checked first).
    fn apply(&self, policy: PolicyKind) -> Result<PolicyKind> {
        let palette = match &self.palette {
            Some(path) => Some(Palette::read(path)?),
            None => None,
        };
        Ok(policy.seeing(palette.as_ref()))
    }
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
    #[command(flatten)]
    pub colours: ColoursArg,
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

/// `loho sim`: the scene and arm nodes until the episode is over (with
/// `--exit-when-done`) or Ctrl-C.
pub fn sim_command(c: SimCmd) -> Result<()> {
    let cfg = SimConfig {
        draw: Default::default(),
        task: c.episode.task()?,
        split: c.episode.split()?,
        seed: c.episode.seed()?,
        fps: c.fps,
        clock: if c.lockstep {
            ClockSource::Sim
        } else {
            ClockSource::Wall
        },
        runtime: runtime_config(c.config.as_deref())?,
        exit_when_done: c.exit_when_done,
        cameras: crate::args::cameras(&c.cameras)?,
    };
    let arm = match c.arm {
        ArmKind::Sim => ArmPath::Direct,
        ArmKind::UrEmulator => ArmPath::Emulator(Box::new(
            c.ur.emulator(IpAddr::from([127, 0, 0, 1]), &cfg.runtime.robot),
        )),
    };
    let bus = open_bus(&c.bus, "sim")?;
    let r = simulator(&bus, &cfg, &node::stage(&cfg)?, &arm, ctrl_c()?)?;
    println!(
        "result: task {} seed {}: score {:.1} in {} steps",
        r.task.code(),
        r.seed,
        100.0 * r.total_reward,
        r.steps
    );
    Ok(())
}

/// `loho controller`: until Ctrl-C.
pub fn controller_command(c: ControllerCmd) -> Result<()> {
    let runtime = runtime_config(c.config.as_deref())?;
    let clock = if c.sim_time {
        ClockSource::Sim
    } else {
        ClockSource::Wall
    };
    let bus = open_bus(&c.bus, "controller")?;
    controller::run(&bus, &ControllerConfig::new(&runtime, clock), ctrl_c()?)?;
    Ok(())
}

/// `loho heightmap`: until Ctrl-C.
pub fn heightmap_command(c: HeightmapCmd) -> Result<()> {
    let rig = match &c.rig {
        Some(path) => RigConfig::load(path).with_context(|| format!("rig {}", path.display()))?,
        None => RigConfig::benchmark().clone(),
    };
    let bus = open_bus(&c.bus, "heightmap")?;
    let runtime = RuntimeConfig::default();
    loho_runtime::heightmap::run(&bus, &rig, &runtime, ctrl_c()?)?;
    Ok(())
}

/// `loho record`: until Ctrl-C or SIGTERM, then the file's index and what it holds.
pub fn record_command(c: RecordCmd) -> Result<()> {
    let stop = ctrl_c()?;
    let bus = open_bus(&c.bus, "observer")?;
    let rec = Recorder::start(&bus, &c.out, &c.topics)?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = rec.finish()?;
    println!("recorded {}:", summary.path.display());
    for (topic, n) in &summary.messages {
        println!("  {n:>6}  {topic}");
    }
    Ok(())
}

/// `loho replay`: the file once, with a progress bar in recorded seconds.
pub fn replay_command(c: ReplayCmd) -> Result<()> {
    let stop = ctrl_c()?;
    let bus = open_bus(&c.bus, "observer")?;
    let opts = ReplayOptions {
        topics: c.topics,
        speed: c.speed,
    };
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {msg} recorded s").expect("template"),
    );
    let summary = replay::replay(&bus, &c.file, &opts, &stop, &mut |at, total| {
        bar.set_length((total * 10.0) as u64);
        bar.set_position((at * 10.0) as u64);
        bar.set_message(format!("{at:.1} / {total:.1}"));
    })
    .with_context(|| format!("replaying {}", c.file.display()))?;
    bar.finish_and_clear();
    println!(
        "replayed {} ({:.1} s recorded{}):",
        c.file.display(),
        summary.span.as_secs_f64(),
        if summary.cut_short {
            ", the file ends early: its recorder was killed"
        } else {
            ""
        }
    );
    for (topic, n) in &summary.messages {
        println!("  {n:>6}  {topic}");
    }
    Ok(())
}

/// `loho policy`: until Ctrl-C.
pub fn policy_command(c: PolicyCmd) -> Result<()> {
    let kind = c
        .colours
        .apply(PolicyKind::parse(&c.policy)?.on(&c.device)?)?;
    let mut p = kind.node(c.seed)?;
    let bus = open_bus(&c.bus, "policy")?;
    let cfg = PolicyConfig {
        instruction: c.instruction,
        ..Default::default()
    };
    policy::run(&bus, p.as_mut(), &cfg, ctrl_c()?)?;
    Ok(())
}

/// `loho serve-openpi`: the policy behind openpi's protocol until Ctrl-C.
pub fn serve_openpi_command(c: ServeOpenpiCmd) -> Result<()> {
    let p = c
        .colours
        .apply(PolicyKind::parse(&c.policy)?.on(&c.device)?)?
        .node(0)?;
    let server = loho_runtime::policy::openpi::Server::bind((c.host.as_str(), c.port), p)
        .with_context(|| format!("listening on {}:{}", c.host, c.port))?;
    tracing::info!(
        "serving {} over openpi on ws://{} (GET /healthz)",
        c.policy,
        server.local_addr()?
    );
    server.serve(&*ctrl_c()?)?;
    Ok(())
}

/// `loho driver ur`: the arm node around a UR controller, until Ctrl-C (the arm holds,
/// and the control program's watchdog stops it once this process is gone).
pub fn ur_driver_command(c: UrDriverCmd) -> Result<()> {
    let runtime = runtime_config(c.config.as_deref())?;
    let watchdog = Duration::from_millis(runtime.watchdog.timeout_ms);
    let ur = UrConfig {
        rtde_port: c.ur.rtde_port,
        script_port: c.ur.script_port,
        ..UrConfig::new(&c.host, &runtime.robot, watchdog)
    };
    // A controller that is still booting (or an emulator starting beside us) answers
    // within a few seconds: try for that long.
    let t0 = Instant::now();
    let mut arm = loop {
        match UrArm::connect(ur.clone()) {
            Ok(arm) => break arm,
            Err(ArmError::Disconnected(why)) if t0.elapsed() < Duration::from_secs(10) => {
                tracing::info!("ur: {why}; trying again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e).with_context(|| format!("the UR controller at {}", c.host)),
        }
    };
    let bus = open_bus(&c.bus, "driver")?;
    let cfg = ArmNodeConfig::realtime(&runtime);
    loho_drivers::node::run(&bus, &mut arm, &cfg, ctrl_c()?)?;
    Ok(())
}

/// `loho ur-emulator`: a UR controller with nothing to move but its own kinematic arm,
/// until Ctrl-C.
pub fn ur_emulator_command(c: UrEmulatorCmd) -> Result<()> {
    let cfg = c.ur.emulator(c.listen, Robot::ur5e());
    let e = Emulator::start(cfg, None).context("starting the UR emulator")?;
    println!(
        "UR emulator: RTDE on {}, secondary interface on {}",
        e.rtde_addr(),
        e.script_addr()
    );
    let stop = ctrl_c()?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
