//! The controller node: each action chunk becomes the pick-and-place primitive's
//! setpoints ([`trajectory`](loho_core::trajectory)), streamed on `cmd/ee` at the control
//! rate from this node's own thread, every one through the [`SafetyFilter`].
//!
//! A chunk is checked whole before its first setpoint (a plan that would leave the
//! workspace or break a limit half-way is refused, so nothing moves). While it streams,
//! the e-stop, the loss of a watched node (the policy) or a stalled simulator clock stop
//! it between two setpoints, and so does a fault the arm reports in its `state` (a
//! protective stop, a lost controller); the driver's watchdog then holds the arm. Every outcome is
//! reported on `exec/status`, every refusal also on `diagnostics`.
//!
//! The loop is the runtime's (`crate::node`): between chunks it waits for events (with a
//! tick for its checks); while a chunk streams, the controller takes the events that came
//! during each control period ([`Context::next`]), so the e-stop, a lost peer or the
//! simulator's clock are seen at the next setpoint.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loho_core::clock::{wall_s, ClockSource};
use loho_core::config::RuntimeConfig;
use loho_core::msg::{
    ActionChunk, ArmState, Clock, DiagnosticArray, EeCommand, ExecStatus, Header,
};
use loho_core::policy::codec::chunk_action;
use loho_core::pose::EePose;
use loho_core::safety::SafetyFilter;
use loho_core::trajectory::{pick_place, PrimitiveParams};
use thiserror::Error;

use crate::bus::{Bus, BusError, Latest, Publisher, Qos};
use crate::diagnostics::Diagnostics;
use crate::keys;
use crate::node::{self as runner, Context, Node, NodeSpec};
use crate::pacing;

#[derive(Debug, Error)]
pub enum ControllerError {
    #[error(transparent)]
    Bus(#[from] BusError),
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub runtime: RuntimeConfig,
    pub primitive: PrimitiveParams,
    pub clock: ClockSource,
    /// Its name and peers, following the e-stop; losing a watched peer stops the chunk.
    pub node: NodeSpec,
    /// How long to wait for the arm's state, the sim clock, or a watched node.
    pub peer_timeout: Duration,
}

impl ControllerConfig {
    /// The controller of `runtime`'s robot and peers on `clock`.
    pub fn new(runtime: &RuntimeConfig, clock: ClockSource) -> Self {
        let node = NodeSpec::new("controller", runtime, Duration::from_millis(20));
        Self {
            runtime: runtime.clone(),
            primitive: PrimitiveParams::for_robot(&runtime.robot),
            clock,
            node: node.with_estop(),
            peer_timeout: Duration::from_secs(2),
        }
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self::new(&RuntimeConfig::default(), ClockSource::Wall)
    }
}

/// What reaches the controller from the bus.
enum Event {
    Chunk(ActionChunk),
    Clock(f64),
}

/// How one chunk ended.
enum End {
    Done,
    Stopped(String),
    Failed(String),
}

struct Controller<'a> {
    cfg: &'a ControllerConfig,
    /// Chunks that came while another streamed, in order.
    queued: VecDeque<ActionChunk>,
    state: Latest<ArmState>,
    state_errors: u64,
    last_clock: f64,
    cmd: Publisher<EeCommand>,
    status: Publisher<ExecStatus>,
    diag: Arc<Diagnostics>,
    filter: SafetyFilter,
}

/// Runs the controller on the calling thread until `stop` is set.
pub fn run(
    bus: &Bus,
    cfg: &ControllerConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ControllerError> {
    runner::run(bus, &cfg.node, stop, |inputs| {
        inputs.forward(keys::ACTION, Event::Chunk)?;
        inputs.forward(keys::CLOCK, |c: Clock| Event::Clock(c.clock.as_secs_f64()))?;
        let bus = inputs.bus();
        let node = Controller {
            cfg,
            queued: VecDeque::new(),
            state: bus.latest::<ArmState>(keys::STATE)?,
            state_errors: 0,
            last_clock: f64::NEG_INFINITY,
            cmd: bus.publisher(keys::CMD_EE, Qos::Command)?,
            status: bus.publisher(keys::EXEC_STATUS, Qos::Command)?,
            diag: inputs.diagnostics(),
            filter: SafetyFilter::new(&cfg.runtime.robot),
        };
        let prio = cfg.runtime.controller.realtime_priority;
        if cfg.clock == ClockSource::Wall && prio > 0 {
            match pacing::realtime_priority(prio) {
                Ok(()) => tracing::info!("controller: real-time priority SCHED_FIFO {prio}"),
                Err(why) => node.report(DiagnosticArray::WARN, "no real-time priority", &why)?,
            }
        }
        Ok(node)
    })?;
    Ok(())
}

impl Node for Controller<'_> {
    type Event = Event;
    type Error = ControllerError;

    fn now(&self) -> f64 {
        match self.cfg.clock {
            ClockSource::Wall => wall_s(),
            ClockSource::Sim => self.last_clock,
        }
    }

    fn event(&mut self, cx: &mut Context<Event>, e: Event) -> Result<(), ControllerError> {
        self.handle(e);
        // Chunks in the order they came; none more once the node is asked to stop.
        while !cx.stopping() {
            let Some(chunk) = self.queued.pop_front() else {
                break;
            };
            self.execute(cx, &chunk)?;
        }
        Ok(())
    }

    fn tick(&mut self, _: &mut Context<Event>) -> Result<(), ControllerError> {
        Ok(self.check_state()?)
    }
}

impl Controller<'_> {
    fn report(&self, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        self.diag.report(self.now(), level, what, why)
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Chunk(c) => self.queued.push_back(c),
            Event::Clock(t) => self.last_clock = self.last_clock.max(t),
        }
    }

    /// Handles the events that have come, without waiting.
    fn drain(&mut self, cx: &mut Context<Event>) -> Result<(), BusError> {
        while let Some(e) = cx.poll(self.now())? {
            self.handle(e);
        }
        Ok(())
    }

    /// Handles events until `deadline`.
    fn wait_until(&mut self, cx: &mut Context<Event>, deadline: Instant) -> Result<(), BusError> {
        while let Some(e) = cx.next(deadline, self.now())? {
            self.handle(e);
        }
        Ok(())
    }

    fn check_state(&mut self) -> Result<(), BusError> {
        let n = self.state.decode_errors();
        if n > self.state_errors {
            self.state_errors = n;
            self.report(
                DiagnosticArray::WARN,
                "undecodable state",
                &format!("{n} so far"),
            )?;
        }
        Ok(())
    }

    fn publish_status(&self, id: u64, state: u8, reason: &str) -> Result<(), BusError> {
        self.status.put(&ExecStatus {
            header: Header::new(self.now(), ""),
            chunk_id: id,
            state,
            reason: reason.into(),
        })
    }

    /// Waits (up to the peer timeout) until the sim clock reaches `t`.
    fn wait_clock(&mut self, cx: &mut Context<Event>, t: f64) -> Result<bool, BusError> {
        let deadline = Instant::now() + self.cfg.peer_timeout;
        self.drain(cx)?;
        while self.last_clock < t - 1e-9 {
            if Instant::now() >= deadline || cx.stopping() {
                return Ok(false);
            }
            let until = deadline.min(Instant::now() + Duration::from_millis(50));
            if let Some(e) = cx.next(until, self.now())? {
                self.handle(e);
            }
        }
        Ok(true)
    }

    /// Why the arm says it cannot move (a protective stop, a lost controller), if it does.
    fn arm_fault(&self) -> Option<String> {
        let fault = self.state.get()?.fault;
        (!fault.is_empty()).then(|| format!("arm: {fault}"))
    }

    fn execute(&mut self, cx: &mut Context<Event>, chunk: &ActionChunk) -> Result<(), BusError> {
        let id = chunk.chunk_id;
        if chunk.keyposes.is_empty() {
            return self.publish_status(id, ExecStatus::COMPLETE, &chunk.subtask);
        }
        self.drain(cx)?;
        // Not a bad chunk, a stop: the policy may send it again once the e-stop clears.
        if cx.estop() {
            return self.publish_status(id, ExecStatus::STOPPED, "e-stop is latched");
        }
        if let Some(why) = self.arm_fault() {
            return self.publish_status(id, ExecStatus::STOPPED, &why);
        }
        let end = match self.plan(cx, chunk)? {
            Ok((start, plan)) => {
                self.publish_status(id, ExecStatus::RUNNING, &chunk.subtask)?;
                self.stream(cx, id, start, &plan)?
            }
            Err(why) => End::Failed(why),
        };
        match end {
            End::Done => self.publish_status(id, ExecStatus::DONE, ""),
            End::Stopped(why) => {
                self.report(DiagnosticArray::WARN, "chunk stopped", &why)?;
                self.publish_status(id, ExecStatus::STOPPED, &why)
            }
            End::Failed(why) => {
                self.report(DiagnosticArray::ERROR, "chunk rejected", &why)?;
                self.publish_status(id, ExecStatus::FAILED, &why)
            }
        }
    }

    /// The checked setpoints of a chunk from the arm's current pose, or why not.
    #[allow(clippy::type_complexity)]
    fn plan(
        &mut self,
        cx: &mut Context<Event>,
        chunk: &ActionChunk,
    ) -> Result<Result<(EePose, Vec<(EePose, bool)>), String>, BusError> {
        if let Some(n) = cx.lost().map(str::to_string) {
            // A chunk from a restarted policy: give its token time to arrive.
            let deadline = Instant::now() + self.cfg.peer_timeout;
            while cx.lost().is_some() && Instant::now() < deadline {
                let until = deadline.min(Instant::now() + Duration::from_millis(5));
                self.wait_until(cx, until)?;
            }
            if cx.lost().is_some() {
                return Ok(Err(format!("{n} is not alive")));
            }
        }
        let action = match chunk_action(chunk) {
            Ok(a) => a,
            Err(why) => return Ok(Err(why)),
        };
        // Where the decision aims, as the simulator checks it in-process: the same filter.
        for (name, k) in [("pick", action.pick.pose()), ("place", action.place.pose())] {
            if let Err(r) = self.filter.check_keypose(&k) {
                return Ok(Err(format!("rejected: {name} {r}")));
            }
        }
        let deadline = Instant::now() + self.cfg.peer_timeout;
        let state = loop {
            if let Some(s) = self.state.get() {
                break s;
            }
            if Instant::now() >= deadline {
                return Ok(Err("no arm state received".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let start = EePose::from_pose(&state.ee_pose);
        let params = PrimitiveParams {
            rate_hz: self.cfg.runtime.controller.rate_hz,
            ..self.cfg.primitive
        };
        let plan: Vec<(EePose, bool)> =
            match pick_place(start, action.pick.pose(), action.place.pose(), &params) {
                Ok(sp) => sp.iter().map(|s| (s.pose, s.suction)).collect(),
                Err(e) => return Ok(Err(e.to_string())),
            };
        let poses: Vec<EePose> = plan.iter().map(|p| p.0).collect();
        Ok(self
            .filter
            .check_plan(start, &poses, 1.0 / params.rate_hz)
            .map(|()| (start, plan))
            .map_err(|r| format!("rejected: {r}")))
    }

    fn stream(
        &mut self,
        cx: &mut Context<Event>,
        id: u64,
        start: EePose,
        plan: &[(EePose, bool)],
    ) -> Result<End, BusError> {
        let dt = 1.0 / self.cfg.runtime.controller.rate_hz;
        let spin = Duration::from_micros(self.cfg.runtime.controller.spin_us);
        self.filter.reset(start);
        // Any clock at all: the loop below then paces on it.
        if self.cfg.clock == ClockSource::Sim && !self.wait_clock(cx, f64::MIN)? {
            return Ok(End::Failed("no sim clock".into()));
        }
        let t0 = self.now();
        let wall0 = Instant::now();
        for (k, (pose, suction)) in plan.iter().enumerate() {
            if cx.stopping() {
                return Ok(End::Stopped("controller shutting down".into()));
            }
            if cx.estop() {
                return Ok(End::Stopped("e-stop".into()));
            }
            if let Some(n) = cx.lost() {
                return Ok(End::Stopped(format!("{n} lost")));
            }
            if let Some(why) = self.arm_fault() {
                return Ok(End::Stopped(why));
            }
            if let Err(r) = self.filter.check(pose, dt) {
                return Ok(End::Failed(format!("rejected mid-chunk: {r}")));
            }
            let t = t0 + (k + 1) as f64 * dt;
            self.cmd.put(&EeCommand {
                header: Header::new(t, "world"),
                chunk_id: id,
                target: pose.to_pose(),
                gripper: if *suction { 1.0 } else { 0.0 },
            })?;
            match self.cfg.clock {
                ClockSource::Wall => {
                    // A wait to the period's end (waking on every event would cost the
                    // period's precision), then what came meanwhile.
                    let due = wall0 + Duration::from_secs_f64((k + 1) as f64 * dt);
                    pacing::wait_until(due, spin);
                    self.drain(cx)?;
                }
                ClockSource::Sim => {
                    if !self.wait_clock(cx, t)? {
                        return Ok(End::Stopped("sim clock stalled".into()));
                    }
                }
            }
        }
        Ok(End::Done)
    }
}
