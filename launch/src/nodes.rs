//! Wiring the nodes of DESIGN §2: one episode through the simulator, controller and
//! policy nodes on one bus (`loho run`, `loho eval --transport zenoh`), and each node
//! alone (`loho sim`, `loho controller`, `loho policy`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use loho_runtime::controller::{self, ClockSource, ControllerConfig};
use loho_runtime::policy::{self, Decide, DecisionReport, PolicyConfig};
use loho_runtime::safety::RuntimeConfig;
use loho_runtime::Bus;
use loho_sim::node::{self, Mode, SimConfig};
use loho_sim::EpisodeResult;

use crate::eval::PolicyKind;
use crate::policy::ModelPolicy;

/// `configs/runtime.toml`'s values, or the file given.
pub fn runtime_config(path: Option<&Path>) -> Result<RuntimeConfig> {
    match path {
        Some(p) => {
            RuntimeConfig::load(p).with_context(|| format!("runtime config {}", p.display()))
        }
        None => Ok(RuntimeConfig::default()),
    }
}

/// The policy a node runs: only a model sees nothing but the frames (the oracle reads
/// the simulator's state, which does not cross the bus).
pub fn decider(kind: &PolicyKind, seed: u64) -> Result<Box<dyn Decide>> {
    match kind {
        PolicyKind::Model(dir) => Ok(Box::new(
            ModelPolicy::load(dir, seed)
                .with_context(|| format!("loading the policy in {}", dir.display()))?,
        )),
        other => anyhow::bail!(
            "the {} policy reads the simulator's state and cannot run as a node: use \
             --policy default or a checkpoint folder (or `loho eval` without --transport zenoh)",
            other.name()
        ),
    }
}

/// The controller's settings for a simulator in `mode`.
pub fn controller_config(runtime: &RuntimeConfig, mode: Mode) -> ControllerConfig {
    ControllerConfig {
        runtime: runtime.clone(),
        clock: match mode {
            Mode::Realtime => ClockSource::Wall,
            Mode::Lockstep => ClockSource::Sim,
        },
        ..Default::default()
    }
}

/// Runs one episode through the three nodes on `bus`, each on its own thread, until the
/// simulator says it is over (or `timeout` passes); returns the simulator's result.
pub fn episode(
    bus: &Bus,
    sim: &SimConfig,
    mut decider: Box<dyn Decide>,
    reports: Option<mpsc::Sender<DecisionReport>>,
    timeout: Duration,
) -> Result<EpisodeResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let ctrl_cfg = controller_config(&sim.runtime, sim.mode);
    let (b, s) = (bus.clone(), stop.clone());
    let ctrl = std::thread::Builder::new()
        .name("controller".into())
        .spawn(move || controller::run(&b, &ctrl_cfg, s))?;
    let (b, s) = (bus.clone(), stop.clone());
    let pol = std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || {
            let cfg = PolicyConfig {
                reports,
                ..Default::default()
            };
            policy::run(&b, decider.as_mut(), &cfg, s)
        })?;
    let s = stop.clone();
    let started = Instant::now();
    let guard = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if started.elapsed() > timeout {
                tracing::error!("episode still running after {timeout:?}: stopping it");
                s.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let cfg = SimConfig {
        exit_when_done: true,
        ..sim.clone()
    };
    let result = node::run(bus, &cfg, stop.clone());
    let timed_out = stop.swap(true, Ordering::Relaxed);
    let _ = guard.join();
    let ctrl = ctrl
        .join()
        .map_err(|_| anyhow::anyhow!("the controller thread panicked"))?;
    let pol = pol
        .join()
        .map_err(|_| anyhow::anyhow!("the policy thread panicked"))?;
    ctrl.context("controller")?;
    pol.context("policy")?;
    anyhow::ensure!(!timed_out, "the episode did not finish within {timeout:?}");
    result.context("simulator")
}
