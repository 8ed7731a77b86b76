//! Wiring the nodes of DESIGN §2: one episode through the simulator (scene and arm),
//! controller and policy nodes on one bus (`loho run`, `loho eval --transport zenoh`),
//! and each node alone (`loho sim`, `loho controller`, `loho policy`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use loho_drivers::{ArmNodeConfig, SimArm};
use loho_runtime::clock::ClockSource;
use loho_runtime::config::RuntimeConfig;
use loho_runtime::controller::{self, ControllerConfig};
use loho_runtime::policy::node::{self as policy, DecisionReport, PolicyConfig};
use loho_runtime::policy::Policy;
use loho_runtime::Bus;
use loho_sim::node::{self, SimConfig};
use loho_sim::EpisodeResult;

use crate::cli::{ControllerCmd, PolicyCmd, SimCmd};
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
    };
    let bus = open_bus(&c.bus)?;
    let r = simulator(&bus, &cfg, ctrl_c()?)?;
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
    let bus = open_bus(&c.bus)?;
    controller::run(&bus, &controller_config(&runtime, clock), ctrl_c()?)?;
    Ok(())
}

/// `loho policy`: until Ctrl-C.
pub fn policy_command(c: PolicyCmd) -> Result<()> {
    let mut p = PolicyKind::parse(&c.policy)?.node(c.seed)?;
    let bus = open_bus(&c.bus)?;
    policy::run(&bus, p.as_mut(), &Default::default(), ctrl_c()?)?;
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

/// The simulator as it runs in one process: the scene node and the generic arm node
/// around its arm, over one stage; returns the scene's result once both stopped.
pub fn simulator(bus: &Bus, cfg: &SimConfig, stop: Arc<AtomicBool>) -> Result<EpisodeResult> {
    let stage = node::stage(cfg)?;
    let (mut arm, arm_cfg) = match cfg.clock {
        ClockSource::Wall => (
            SimArm::realtime(stage.clone()),
            ArmNodeConfig::realtime(&cfg.runtime),
        ),
        ClockSource::Sim => (
            SimArm::lockstep(stage.clone(), node::clock_publisher(bus)?),
            ArmNodeConfig::lockstep(&cfg.runtime),
        ),
    };
    let (b, s) = (bus.clone(), stop.clone());
    let arm = std::thread::Builder::new()
        .name("arm".into())
        .spawn(move || loho_drivers::node::run(&b, &mut arm, &arm_cfg, s))?;
    let result = node::run(bus, cfg, stage, stop.clone());
    // The episode is over (or failed): the arm stops with it.
    stop.store(true, Ordering::Relaxed);
    arm.join()
        .map_err(|_| anyhow::anyhow!("the arm thread panicked"))?
        .context("arm node")?;
    Ok(result?)
}

/// The nodes running on threads of this process.
pub struct Running {
    stop: Arc<AtomicBool>,
    sim: std::thread::JoinHandle<Result<EpisodeResult>>,
    others: Vec<(&'static str, std::thread::JoinHandle<Result<()>>)>,
}

/// Starts the simulator (scene and arm), controller and policy nodes on `bus`, each on its own thread.
pub fn spawn(
    bus: &Bus,
    sim: &SimConfig,
    ctrl: ControllerConfig,
    mut policy: Box<dyn Policy>,
    reports: Option<mpsc::Sender<DecisionReport>>,
) -> Result<Running> {
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
    let (b, s, cfg) = (bus.clone(), stop.clone(), sim.clone());
    let sim = std::thread::Builder::new()
        .name("sim".into())
        .spawn(move || {
            let r = simulator(&b, &cfg, s.clone());
            // The episode is over (or failed): the other nodes stop with it.
            s.store(true, Ordering::Relaxed);
            r
        })?;
    Ok(Running {
        stop,
        sim,
        others: vec![("controller", ctrl), ("policy", pol)],
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
        while !self.sim.is_finished() {
            if started.elapsed() > timeout && !timed_out {
                tracing::error!("episode still running after {timeout:?}: stopping it");
                timed_out = true;
                self.stop();
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
    policy: Box<dyn Policy>,
    reports: Option<mpsc::Sender<DecisionReport>>,
    timeout: Duration,
) -> Result<EpisodeResult> {
    let cfg = SimConfig {
        exit_when_done: true,
        ..sim.clone()
    };
    let ctrl = controller_config(&sim.runtime, sim.clock);
    spawn(bus, &cfg, ctrl, policy, reports)?.join(timeout)
}
