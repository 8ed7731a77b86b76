//! Wiring the nodes (docs/architecture.md): one episode through the simulator (scene and
//! arm), controller and policy nodes on one bus, as `loho run`, `loho sim` and `loho eval
//! --transport zenoh` run it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::msg::ArmState;
use loho_core::policy::{Decision, Observation, Policy, PolicyError};
use loho_drivers::ur::{Emulator, EmulatorConfig, UrArm, UrConfig};
use loho_drivers::{Arm, ArmNodeConfig, SimArm};
use loho_runtime::bus::Latest;
use loho_runtime::controller::{self, ControllerConfig};
use loho_runtime::policy::node::{self as policy, DecisionReport, PolicyConfig};
use loho_runtime::{keys, Bus};
use loho_sim::arm::SharedStage;
use loho_sim::node::{self, SimConfig};
use loho_sim::EpisodeResult;

/// `configs/runtime.toml`'s values, or the file given.
pub fn runtime_config(path: Option<&Path>) -> Result<RuntimeConfig> {
    match path {
        Some(p) => {
            RuntimeConfig::load(p).with_context(|| format!("runtime config {}", p.display()))
        }
        None => Ok(RuntimeConfig::default()),
    }
}

/// What moves the simulated arm.
#[derive(Debug, Clone)]
pub enum ArmPath {
    /// The simulator's own arm behind the generic arm node.
    Direct,
    /// A UR controller emulator on these ports moves it, for a UR driver elsewhere
    /// (`loho sim --arm ur-emulator`).
    Emulator(Box<EmulatorConfig>),
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
        Emulator::start(e, Some(Arc::new(stage.clone())))
            .with_context(|| format!("starting the UR emulator on ports {r} and {s}"))
    };
    let realtime = ArmNodeConfig::realtime(&cfg.runtime);
    let kinematics = &cfg.runtime.robot.kinematics;
    let (emulator, arm): (_, Option<(Box<dyn Arm>, _)>) = match path {
        ArmPath::Direct => (
            None,
            Some(match cfg.clock {
                ClockSource::Wall => (
                    Box::new(SimArm::realtime(stage.clone(), kinematics)),
                    realtime,
                ),
                ClockSource::Sim => (
                    Box::new(SimArm::lockstep(
                        stage.clone(),
                        kinematics,
                        node::clock_publisher(bus)?,
                    )),
                    ArmNodeConfig::lockstep(&cfg.runtime),
                ),
            }),
        ),
        ArmPath::Emulator(e) => (Some(start((**e).clone())?), None),
        ArmPath::Driven => {
            let e = start(EmulatorConfig {
                rtde_port: 0,
                script_port: 0,
                kinematics: kinematics.clone(),
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
    let cfg = PolicyConfig {
        reports,
        ..PolicyConfig::new(&sim.runtime)
    };
    let pol = std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || Ok(policy::run(&b, policy.as_mut(), &cfg, s)?))?;
    let mut others = vec![("controller", ctrl), ("policy", pol)];
    if let Some(rig) = &sim.cameras {
        // The cameras' pictures reach the policy as real ones would: fused by the node.
        let (b, s, rig) = (bus.clone(), stop.clone(), rig.config().clone());
        let runtime = sim.runtime.clone();
        let fuse = std::thread::Builder::new()
            .name("heightmap".into())
            .spawn(move || Ok(loho_runtime::heightmap::run(&b, &rig, &runtime, s)?))?;
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
    let ctrl = ControllerConfig::new(&sim.runtime, sim.clock);
    spawn(bus, &cfg, arm, ctrl, policy, reports)?.join(timeout)
}
