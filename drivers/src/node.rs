//! The generic arm node: any [`Arm`] on the bus, with what every arm needs and no driver
//! should write twice.
//!
//! - `cmd/ee` setpoints go to the arm after the last check of their own: finite, inside
//!   the workspace box (`configs/runtime.toml`), gripper finite. A refused setpoint never
//!   reaches the arm and is reported on `diagnostics`.
//! - **Watchdog**: when no setpoint has come for longer than its timeout, the arm holds.
//!   It is reported when a chunk was streaming (`exec/status` says which), since silence
//!   between chunks is normal. Off where setpoints are the clock (a lockstep simulator).
//! - **E-stop**: `estop` true holds the arm and latches: setpoints are ignored until it is
//!   cleared (never from the network under `--secure`: restart the node). A payload on
//!   `estop` nobody can read counts as an e-stop.
//! - **Faults**: an arm that cannot move (its `state().fault`, or a `state()` that
//!   fails, e.g. a lost controller) is reported once on `diagnostics` per new fault, and
//!   its `state` keeps going out with the fault, so the controller stops the chunk;
//!   setpoints are not passed on until the fault clears.
//! - `state` at 120 Hz (the node's tick), liveliness token `@alive/arm`, diagnostics.
//!
//! The loop, the e-stop latch, the peers and the token are the runtime's
//! (`loho_runtime::node`); this node says what it does with each setpoint and status,
//! on each tick, when the e-stop changes and when it stops.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loho_core::config::RuntimeConfig;
use loho_core::msg::{ArmState, DiagnosticArray, EeCommand, ExecStatus};
use loho_core::pose::EePose;
use loho_core::safety::SafetyFilter;
use loho_runtime::bus::{Bus, BusError, Publisher, Qos};
use loho_runtime::diagnostics::Diagnostics;
use loho_runtime::keys;
use loho_runtime::node::{self as runner, Context, Node, NodeSpec};
use thiserror::Error;

use crate::arm::{Arm, ArmError};

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Bus(#[from] BusError),
}

#[derive(Debug, Clone)]
pub struct ArmNodeConfig {
    /// The node's name, peers and period (its `state` rate), following the e-stop.
    pub node: NodeSpec,
    /// Hold when no setpoint came for this long; `None` where setpoints are the clock.
    pub watchdog: Option<Duration>,
    /// The workspace box (`safety`) and the watchdog's timeout.
    pub runtime: RuntimeConfig,
}

/// `state` messages per second.
const STATE_HZ: f64 = 120.0;

impl ArmNodeConfig {
    /// An arm in real time with the limits and watchdog of `runtime`.
    pub fn realtime(runtime: &RuntimeConfig) -> Self {
        let period = Duration::from_secs_f64(1.0 / STATE_HZ);
        Self {
            node: NodeSpec::new("arm", runtime, period).with_estop(),
            watchdog: Some(Duration::from_millis(runtime.watchdog.timeout_ms)),
            runtime: runtime.clone(),
        }
    }

    /// An arm whose setpoints are its clock (no watchdog): a lockstep simulator.
    pub fn lockstep(runtime: &RuntimeConfig) -> Self {
        Self {
            watchdog: None,
            ..Self::realtime(runtime)
        }
    }
}

/// What reaches the node from the bus.
enum Event {
    Cmd(EeCommand),
    Status(ExecStatus),
}

struct ArmNode<'a> {
    arm: &'a mut dyn Arm,
    cfg: &'a ArmNodeConfig,
    state: Publisher<ArmState>,
    diag: Arc<Diagnostics>,
    filter: SafetyFilter,
    /// The arm's clock at its last state: the stamp of diagnostics.
    now: f64,
    /// When the last setpoint was taken, while the arm is following setpoints.
    following: Option<Instant>,
    /// The watchdog held the arm while a chunk was streaming.
    tripped: bool,
    /// The chunk the controller says is streaming.
    running: Option<u64>,
    /// The last state published, and the fault last reported (empty: none).
    last: Option<ArmState>,
    fault: String,
}

/// Runs the arm node on the calling thread until `stop` is set; the arm holds when it
/// stops.
pub fn run(
    bus: &Bus,
    arm: &mut dyn Arm,
    cfg: &ArmNodeConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), NodeError> {
    runner::run(bus, &cfg.node, stop, |inputs| {
        inputs.forward(keys::CMD_EE, Event::Cmd)?;
        inputs.forward(keys::EXEC_STATUS, Event::Status)?;
        let mut node = ArmNode {
            arm,
            cfg,
            state: inputs.bus().publisher(keys::STATE, Qos::Stream)?,
            diag: inputs.diagnostics(),
            filter: SafetyFilter::new(&cfg.runtime.robot),
            now: 0.0,
            following: None,
            tripped: false,
            running: None,
            last: None,
            fault: String::new(),
        };
        node.publish_state()?;
        Ok(node)
    })?;
    Ok(())
}

impl Node for ArmNode<'_> {
    type Event = Event;
    type Error = NodeError;

    fn now(&self) -> f64 {
        self.now
    }

    fn event(&mut self, cx: &mut Context<Event>, event: Event) -> Result<(), NodeError> {
        match event {
            Event::Cmd(c) => self.command(&c, cx.estop())?,
            Event::Status(s) => match s.state {
                ExecStatus::RUNNING => self.running = Some(s.chunk_id),
                _ if self.running == Some(s.chunk_id) => self.running = None,
                _ => {}
            },
        }
        Ok(())
    }

    fn tick(&mut self, _: &mut Context<Event>) -> Result<(), NodeError> {
        self.watchdog()?;
        Ok(self.publish_state()?)
    }

    /// Latched: the arm stops as hard as it may, and setpoints are ignored until it
    /// clears; cleared: it holds where it is, not going on to the old target.
    fn estop(&mut self, _: &mut Context<Event>, on: bool) -> Result<(), NodeError> {
        if !on {
            return Ok(self.hold("e-stop cleared")?);
        }
        self.following = None;
        if let Err(e) = self.arm.estop() {
            self.report(DiagnosticArray::ERROR, "e-stop failed", &e.to_string())?;
        }
        Ok(())
    }

    /// Whoever stops the node stops the arm.
    fn stop(&mut self, _: &mut Context<Event>) -> Result<(), NodeError> {
        Ok(self.hold("node stopping")?)
    }
}

impl ArmNode<'_> {
    fn report(&self, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        self.diag.report(self.now, level, what, why)
    }

    /// The arm failed: say so and hold.
    fn arm_failed(&mut self, what: &str, e: ArmError) -> Result<(), BusError> {
        self.report(DiagnosticArray::ERROR, what, &e.to_string())?;
        self.hold("arm error")
    }

    /// A fault reported by the arm (empty: none), said once when it changes.
    fn set_fault(&mut self, fault: &str) -> Result<(), BusError> {
        if fault == self.fault {
            return Ok(());
        }
        self.fault = fault.to_string();
        if fault.is_empty() {
            return self.report(DiagnosticArray::WARN, "arm fault cleared", "");
        }
        self.report(DiagnosticArray::ERROR, "arm fault", fault)?;
        self.hold("arm fault")
    }

    fn hold(&mut self, why: &str) -> Result<(), BusError> {
        self.following = None;
        if let Err(e) = self.arm.hold() {
            self.report(
                DiagnosticArray::ERROR,
                "hold failed",
                &format!("{why}: {e}"),
            )?;
        }
        Ok(())
    }

    fn publish_state(&mut self) -> Result<(), BusError> {
        let s = match self.arm.state() {
            Ok(s) => {
                self.now = s.header.stamp.as_secs_f64();
                s
            }
            // No measurement: the last one goes out again, with why.
            Err(e) => match &self.last {
                Some(last) => ArmState {
                    fault: e.to_string(),
                    ..last.clone()
                },
                None => return self.set_fault(&e.to_string()),
            },
        };
        self.set_fault(&s.fault)?;
        self.state.put(&s)?;
        self.last = Some(s);
        Ok(())
    }

    /// One setpoint: checked, then to the arm.
    fn command(&mut self, c: &EeCommand, estop: bool) -> Result<(), BusError> {
        // Refused without a word: the e-stop and the fault were reported when they came.
        if estop || !self.fault.is_empty() {
            return Ok(());
        }
        let pose = EePose::from_pose(&c.target);
        if let Err(r) = self.filter.check_pose(&pose) {
            // The driver's own last check: a bad setpoint never moves the arm.
            return self.report(DiagnosticArray::ERROR, "command refused", &r.to_string());
        }
        if !c.gripper.is_finite() {
            return self.report(
                DiagnosticArray::ERROR,
                "command refused",
                "gripper is not finite",
            );
        }
        if let Err(e) = self.arm.suction(c.gripper > 0.5) {
            return self.arm_failed("suction failed", e);
        }
        if let Err(e) = self.arm.servo(pose, c.header.stamp.as_secs_f64()) {
            return self.arm_failed("setpoint failed", e);
        }
        self.following = Some(Instant::now());
        if self.tripped {
            self.tripped = false;
            self.report(DiagnosticArray::WARN, "watchdog", "commands again")?;
        }
        if self.cfg.watchdog.is_none() {
            // Setpoints are the clock: the state follows each one.
            self.publish_state()?;
        }
        Ok(())
    }

    fn watchdog(&mut self) -> Result<(), BusError> {
        let (Some(timeout), Some(last)) = (self.cfg.watchdog, self.following) else {
            return Ok(());
        };
        let silent = last.elapsed();
        if silent <= timeout {
            return Ok(());
        }
        self.hold("watchdog")?;
        if self.running.is_some() && !self.tripped {
            self.tripped = true;
            let ms = silent.as_millis();
            self.report(
                DiagnosticArray::WARN,
                "watchdog",
                &format!("no command for {ms} ms: holding"),
            )?;
        }
        Ok(())
    }
}
