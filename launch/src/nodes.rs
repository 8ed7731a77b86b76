//! Wiring the nodes of DESIGN §2: one episode through the simulator (scene and arm),
//! controller and policy nodes on one bus (`loho run`, `loho eval --transport zenoh`),
//! and each node alone (`loho sim`, `loho controller`, `loho policy`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use loho_drivers::ur::{Emulator, EmulatorConfig, UrArm, UrConfig};
use loho_drivers::{Arm, ArmError, ArmNodeConfig, SimArm};
use loho_runtime::bus::Latest;
use loho_runtime::clock::ClockSource;
use loho_runtime::config::ConfigFile;
use loho_runtime::config::RuntimeConfig;
use loho_runtime::controller::{self, ControllerConfig};
use loho_runtime::msg::ArmState;
use loho_runtime::perception::camera::Rig as RigConfig;
use loho_runtime::policy::node::{self as policy, DecisionReport, PolicyConfig};
use loho_runtime::policy::{Decision, Observation, Policy, PolicyError};
use loho_runtime::record::Recorder;
use loho_runtime::replay::{self, ReplayOptions};
use loho_runtime::{keys, Bus};
use loho_sim::arm::SharedStage;
use loho_sim::node::{self, SimConfig};
use loho_sim::EpisodeResult;

use crate::cli::{
    ArmKind, ControllerCmd, HeightmapCmd, PolicyCmd, RecordCmd, ReplayCmd, ServeOpenpiCmd, SimCmd,
    UrDriverCmd, UrEmulatorCmd,
};
use crate::policy::PolicyKind;
use crate::{ctrl_c, open_bus};

/// `loho sim`: the scene and arm nodes until the episode is over (with
/// `--exit-when-done`) or Ctrl-C.
pub fn sim_command(c: SimCmd) -> Result<()> {
    let cfg = SimConfig {
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
        cameras: crate::cli::cameras(&c.cameras)?,
    };
    let arm = match c.arm {
        ArmKind::Sim => ArmPath::Direct,
        ArmKind::UrEmulator => ArmPath::Emulator(c.ur.emulator(IpAddr::from([127, 0, 0, 1]))),
    };
    let bus = open_bus(&c.bus, "sim")?;
    let r = simulator(&bus, &cfg, &node::stage(&cfg)?, &arm, ctrl_c()?)?;
    println!(
        "result: task {} seed {}: score {:.1} in {} steps",
        r.task.letter(),
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
    controller::run(&bus, &controller_config(&runtime, clock), ctrl_c()?)?;
    Ok(())
}

/// `loho heightmap`: until Ctrl-C.
pub fn heightmap_command(c: HeightmapCmd) -> Result<()> {
    let rig = match &c.rig {
        Some(path) => RigConfig::load(path).with_context(|| format!("rig {}", path.display()))?,
        None => RigConfig::benchmark().clone(),
    };
    let bus = open_bus(&c.bus, "heightmap")?;
    loho_runtime::perception::node::run(&bus, &rig, ctrl_c()?)?;
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
    let mut p = PolicyKind::parse(&c.policy)?.on(&c.device)?.node(c.seed)?;
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
    let p = PolicyKind::parse(&c.policy)?.on(&c.device)?.node(0)?;
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
    let cfg = c.ur.emulator(c.listen);
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

/// `configs/runtime.toml`'s values, or the file given.
pub fn runtime_config(path: Option<&Path>) -> Result<RuntimeConfig> {
    match path {
        Some(p) => {
            RuntimeConfig::load(p).with_context(|| format!("runtime config {}", p.display()))
        }
        None => Ok(RuntimeConfig::default()),
    }
}

/// The controller's settings on `clock`.
pub fn controller_config(runtime: &RuntimeConfig, clock: ClockSource) -> ControllerConfig {
    ControllerConfig {
        runtime: runtime.clone(),
        clock,
        ..Default::default()
    }
}

/// What moves the simulated arm.
#[derive(Debug, Clone)]
pub enum ArmPath {
    /// The simulator's own arm behind the generic arm node.
    Direct,
    /// A UR controller emulator on these ports moves it, for a UR driver elsewhere
    /// (`loho sim --arm ur-emulator`).
    Emulator(EmulatorConfig),
    /// The whole deployment path in this process: the emulator on free loopback ports,
    /// and the UR driver's arm node driving it over RTDE.
    Driven,
}

/// The simulator as it runs in one process: the scene node and what moves its arm (see
/// [`ArmPath`]), over one stage; returns the scene's result once all stopped.
pub fn simulator(
    bus: &Bus,
    cfg: &SimConfig,
    stage: &SharedStage,
    path: &ArmPath,
    stop: Arc<AtomicBool>,
) -> Result<EpisodeResult> {
    anyhow::ensure!(
        matches!(path, ArmPath::Direct) || cfg.clock == ClockSource::Wall,
        "a UR controller runs in real time: drop --lockstep"
    );
    let start = |e: EmulatorConfig| {
        let (r, s) = (e.rtde_port, e.script_port);
        Emulator::start(e, Some(stage.clone()))
            .with_context(|| format!("starting the UR emulator on ports {r} and {s}"))
    };
    let realtime = ArmNodeConfig::realtime(&cfg.runtime);
    let (emulator, arm): (_, Option<(Box<dyn Arm>, _)>) = match path {
        ArmPath::Direct => (
            None,
            Some(match cfg.clock {
                ClockSource::Wall => (Box::new(SimArm::realtime(stage.clone())), realtime),
                ClockSource::Sim => (
                    Box::new(SimArm::lockstep(stage.clone(), node::clock_publisher(bus)?)),
                    ArmNodeConfig::lockstep(&cfg.runtime),
                ),
            }),
        ),
        ArmPath::Emulator(e) => (Some(start(e.clone())?), None),
        ArmPath::Driven => {
            let e = start(EmulatorConfig {
                rtde_port: 0,
                script_port: 0,
                ..Default::default()
            })?;
            let watchdog = Duration::from_millis(cfg.runtime.watchdog.timeout_ms);
            let ur = UrConfig {
                rtde_port: e.rtde_addr().port(),
                script_port: e.script_addr().port(),
                ..UrConfig::new("127.0.0.1", &cfg.runtime.robot, watchdog)
            };
            let arm = UrArm::connect(ur).context("the UR driver")?;
            (Some(e), Some((Box::new(arm), realtime)))
        }
    };
    let arm = arm
        .map(|(mut arm, arm_cfg)| {
            let (b, s) = (bus.clone(), stop.clone());
            std::thread::Builder::new()
                .name("arm".into())
                .spawn(move || loho_drivers::node::run(&b, arm.as_mut(), &arm_cfg, s))
        })
        .transpose()?;
    let result = node::run(bus, cfg, stage.clone(), stop.clone());
    // The episode is over (or failed): the arm stops with it.
    stop.store(true, Ordering::Relaxed);
    if let Some(arm) = arm {
        arm.join()
            .map_err(|_| anyhow::anyhow!("the arm thread panicked"))?
            .context("arm node")?;
    }
    drop(emulator);
    Ok(result?)
}

/// A policy that reads the scene (the oracle), lent the simulator's at each decision.
struct WithScene {
    policy: Box<dyn Policy>,
    stage: SharedStage,
}

impl Policy for WithScene {
    fn reset(&mut self) {
        self.policy.reset();
    }
    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let s = self.stage.lock();
        self.policy.decide(&Observation {
            scene: Some(&s.env),
            ..*obs
        })
    }
}

/// The nodes running on threads of this process.
pub struct Running {
    stop: Arc<AtomicBool>,
    sim: std::thread::JoinHandle<Result<EpisodeResult>>,
    others: Vec<(&'static str, std::thread::JoinHandle<Result<()>>)>,
    /// The arm's state: a fault that stays ends the episode.
    arm: Latest<ArmState>,
}

/// How long an arm fault (a protective stop) may last before the episode ends as it
/// stands: nothing moves the arm until someone clears it.
const FAULT_ENDS_EPISODE: Duration = Duration::from_secs(3);

/// Starts the simulator (scene and arm), controller and policy nodes on `bus`, each on its
/// own thread. A policy that reads the scene (the oracle) is lent the simulator's.
pub fn spawn(
    bus: &Bus,
    sim: &SimConfig,
    arm: &ArmPath,
    ctrl: ControllerConfig,
    policy: Box<dyn Policy>,
    reports: Option<mpsc::Sender<DecisionReport>>,
) -> Result<Running> {
    let stage = node::stage(sim)?;
    let mut policy = if policy.reads_scene() {
        Box::new(WithScene {
            policy,
            stage: stage.clone(),
        })
    } else {
        policy
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (b, s) = (bus.clone(), stop.clone());
    let ctrl = std::thread::Builder::new()
        .name("controller".into())
        .spawn(move || Ok(controller::run(&b, &ctrl, s)?))?;
    let (b, s) = (bus.clone(), stop.clone());
    let pol = std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || {
            let cfg = PolicyConfig {
                reports,
                ..Default::default()
            };
            Ok(policy::run(&b, policy.as_mut(), &cfg, s)?)
        })?;
    let mut others = vec![("controller", ctrl), ("policy", pol)];
    if let Some(rig) = &sim.cameras {
        // The cameras' pictures reach the policy as real ones would: fused by the node.
        let (b, s, rig) = (bus.clone(), stop.clone(), rig.config().clone());
        let fuse = std::thread::Builder::new()
            .name("heightmap".into())
            .spawn(move || Ok(loho_runtime::perception::node::run(&b, &rig, s)?))?;
        others.push(("heightmap", fuse));
    }
    let (b, s, cfg, arm) = (bus.clone(), stop.clone(), sim.clone(), arm.clone());
    let sim = std::thread::Builder::new()
        .name("sim".into())
        .spawn(move || {
            let r = simulator(&b, &cfg, &stage, &arm, s.clone());
            // The episode is over (or failed): the other nodes stop with it.
            s.store(true, Ordering::Relaxed);
            r
        })?;
    Ok(Running {
        stop,
        sim,
        others,
        arm: bus.latest(keys::STATE)?,
    })
}

impl Running {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the simulator to finish (at most `timeout`), stops the other nodes and
    /// returns the simulator's result, or the first node's error.
    pub fn join(self, timeout: Duration) -> Result<EpisodeResult> {
        let started = Instant::now();
        let mut timed_out = false;
        let mut faulted: Option<Instant> = None;
        while !self.sim.is_finished() {
            if started.elapsed() > timeout && !timed_out {
                tracing::error!("episode still running after {timeout:?}: stopping it");
                timed_out = true;
                self.stop();
            }
            let fault = self.arm.get().map(|s| s.fault).unwrap_or_default();
            match (fault.is_empty(), faulted) {
                (true, _) => faulted = None,
                (false, None) => faulted = Some(Instant::now()),
                (false, Some(at)) if at.elapsed() > FAULT_ENDS_EPISODE => {
                    tracing::error!("the arm stays faulted ({fault}): ending the episode");
                    self.stop();
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        let sim = self
            .sim
            .join()
            .map_err(|_| anyhow::anyhow!("the sim thread panicked"))?;
        for (name, h) in self.others {
            h.join()
                .map_err(|_| anyhow::anyhow!("the {name} thread panicked"))?
                .context(name)?;
        }
        anyhow::ensure!(!timed_out, "the episode did not finish within {timeout:?}");
        sim.context("simulator")
    }
}

/// Runs one episode through the three nodes on `bus` until the simulator says it is
/// over (or `timeout` passes); returns the simulator's result.
pub fn episode(
    bus: &Bus,
    sim: &SimConfig,
    arm: &ArmPath,
    policy: Box<dyn Policy>,
    reports: Option<mpsc::Sender<DecisionReport>>,
    timeout: Duration,
) -> Result<EpisodeResult> {
    let cfg = SimConfig {
        exit_when_done: true,
        ..sim.clone()
    };
    let ctrl = controller_config(&sim.runtime, sim.clock);
    spawn(bus, &cfg, arm, ctrl, policy, reports)?.join(timeout)
}
