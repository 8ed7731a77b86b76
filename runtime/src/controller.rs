//! The controller node: each action chunk becomes the pick-and-place primitive's
//! setpoints ([`trajectory`](crate::trajectory)), streamed on `cmd/ee` at the control
//! rate from this node's own thread, every one through the [`SafetyFilter`].
//!
//! A chunk is checked whole before its first setpoint (a plan that would leave the
//! workspace or break a limit half-way is refused, so nothing moves). While it streams,
//! the e-stop, the loss of a watched node (the policy) or a stalled simulator clock stop
//! it between two setpoints, and so does a fault the arm reports in its `state` (a
//! protective stop, a lost controller); the driver's watchdog then holds the arm. Every outcome is
//! reported on `exec/status`, every refusal also on `diagnostics`.
//!
//! One event loop: the zenoh callbacks only push `Event`s into a channel. Between
//! chunks the loop waits on it (with a tick for its checks); while a chunk streams, the
//! loop takes the events that came during each control period, so the e-stop, a lost
//! peer or the simulator's clock are seen at the next setpoint.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError};
use thiserror::Error;

use crate::bus::{Bus, BusError, Latest, Publisher, Qos};
use crate::clock::{wall_s, ClockSource};
use crate::config::RuntimeConfig;
use crate::diagnostics::Diagnostics;
use crate::keys;
use crate::msg::{
    ActionChunk, ArmState, BoolMsg, Clock, DiagnosticArray, EeCommand, ExecStatus, Header,
};
use crate::pacing;
use crate::policy::chunk_action;
use crate::safety::SafetyFilter;
use crate::trajectory::{pick_place, EePose, PrimitiveParams};

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
    /// Nodes whose liveliness the controller follows: losing one stops the chunk.
    pub watch: Vec<String>,
    /// How long to wait for the arm's state, the sim clock, or a watched node.
    pub peer_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            runtime: RuntimeConfig::default(),
            primitive: PrimitiveParams::default(),
            clock: ClockSource::Wall,
            watch: vec!["policy".into()],
            peer_timeout: Duration::from_secs(2),
        }
    }
}

/// What reaches the loop from the bus.
enum Event {
    Chunk(ActionChunk),
    EStop(bool),
    Clock(f64),
    /// A watched node's liveliness token came (true) or went (false).
    Alive(usize, bool),
    Bad(&'static str, String),
}

impl Event {
    fn estop(b: BoolMsg) -> Self {
        Self::EStop(b.data)
    }
}

/// A watched node, as its liveliness token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Unseen,
    Alive,
    Lost,
}

/// How one chunk ended.
enum End {
    Done,
    Stopped(String),
    Failed(String),
}

struct Node<'a> {
    cfg: &'a ControllerConfig,
    stop: Arc<AtomicBool>,
    events: Receiver<Event>,
    /// Chunks that came while another streamed, in order.
    queued: VecDeque<ActionChunk>,
    estop: bool,
    /// Whether `estop` false releases it (not under `--secure`).
    releasable: bool,
    watched: Vec<(String, Peer)>,
    state: Latest<ArmState>,
    state_errors: u64,
    last_clock: f64,
    cmd: Publisher<EeCommand>,
    status: Publisher<ExecStatus>,
    diag: Diagnostics,
    filter: SafetyFilter,
}

/// Runs the controller on the calling thread until `stop` is set.
pub fn run(
    bus: &Bus,
    cfg: &ControllerConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ControllerError> {
    let _peers = bus.log_peers("controller", &["sim", "arm"], stop.clone())?;
    let (tx, events) = crossbeam_channel::unbounded();
    let _estop = bus.forward(keys::ESTOP, &tx, Event::estop, Event::Bad)?;
    let _chunks = bus.forward(keys::ACTION, &tx, Event::Chunk, Event::Bad)?;
    let clock = |c: Clock| Event::Clock(c.clock.as_secs_f64());
    let _clock = bus.forward(keys::CLOCK, &tx, clock, Event::Bad)?;
    let mut watches = Vec::new();
    for (i, name) in cfg.watch.iter().enumerate() {
        let t = tx.clone();
        watches.push(bus.watch_alive(name, move |up| {
            let _ = t.send(Event::Alive(i, up));
        })?);
    }
    // Last, so that a policy that sees the controller alive finds it subscribed.
    let _alive = bus.alive("controller")?;
    let mut node = Node {
        cfg,
        stop: stop.clone(),
        events,
        queued: VecDeque::new(),
        estop: false,
        releasable: !bus.is_secure(),
        watched: cfg
            .watch
            .iter()
            .map(|n| (n.clone(), Peer::Unseen))
            .collect(),
        state: bus.latest::<ArmState>(keys::STATE)?,
        state_errors: 0,
        last_clock: f64::NEG_INFINITY,
        cmd: bus.publisher(keys::CMD_EE, Qos::Command)?,
        status: bus.publisher(keys::EXEC_STATUS, Qos::Command)?,
        diag: Diagnostics::new(bus, "controller")?,
        filter: SafetyFilter::new(&cfg.runtime.robot),
    };
    let prio = cfg.runtime.controller.realtime_priority;
    if cfg.clock == ClockSource::Wall && prio > 0 {
        match pacing::realtime_priority(prio) {
            Ok(()) => tracing::info!("controller: real-time priority SCHED_FIFO {prio}"),
            Err(why) => node.report(DiagnosticArray::WARN, "no real-time priority", &why)?,
        }
    }
    let ticks = crossbeam_channel::tick(Duration::from_millis(20));
    while !stop.load(Ordering::Relaxed) {
        if let Some(chunk) = node.queued.pop_front() {
            node.execute(&chunk)?;
            continue;
        }
        select! {
            recv(node.events) -> e => match e {
                Ok(e) => node.handle(e)?,
                Err(_) => break,
            },
            recv(ticks) -> _ => node.check_state()?,
        }
    }
    Ok(())
}

impl Node<'_> {
    fn now(&self) -> f64 {
        match self.cfg.clock {
            ClockSource::Wall => wall_s(),
            ClockSource::Sim => self.last_clock,
        }
    }

    fn report(&self, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        self.diag.report(self.now(), level, what, why)
    }

    fn handle(&mut self, e: Event) -> Result<(), BusError> {
        match e {
            Event::Chunk(c) => self.queued.push_back(c),
            Event::EStop(on) => self.set_estop(on)?,
            Event::Clock(t) => self.last_clock = self.last_clock.max(t),
            Event::Alive(i, up) => self.watched[i].1 = if up { Peer::Alive } else { Peer::Lost },
            Event::Bad(topic, why) if topic == keys::ESTOP => {
                // An e-stop message nobody can read is taken as an e-stop.
                self.report(
                    DiagnosticArray::ERROR,
                    "undecodable estop",
                    &format!("{why}; e-stop latched"),
                )?;
                self.set_estop(true)?;
            }
            Event::Bad(topic, why) => self.report(
                DiagnosticArray::ERROR,
                &format!("undecodable {topic}"),
                &why,
            )?,
        }
        Ok(())
    }

    /// Handles every event that has come, without waiting.
    fn drain(&mut self) -> Result<(), BusError> {
        while let Ok(e) = self.events.try_recv() {
            self.handle(e)?;
        }
        Ok(())
    }

    /// Handles events until `deadline` (or `stop`); false when the channel closed.
    fn wait_until(&mut self, deadline: Instant) -> Result<bool, BusError> {
        loop {
            match self.events.recv_deadline(deadline) {
                Ok(e) => self.handle(e)?,
                Err(RecvTimeoutError::Timeout) => return Ok(true),
                Err(RecvTimeoutError::Disconnected) => return Ok(false),
            }
        }
    }

    fn set_estop(&mut self, on: bool) -> Result<(), BusError> {
        if on == self.estop {
            return Ok(());
        }
        if !on && !self.releasable {
            return self.report(
                DiagnosticArray::WARN,
                "e-stop release ignored",
                crate::secure::RELEASE_IGNORED,
            );
        }
        self.estop = on;
        let what = if on {
            "e-stop latched"
        } else {
            "e-stop cleared"
        };
        self.report(DiagnosticArray::WARN, what, "estop topic")
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
    fn wait_clock(&mut self, t: f64) -> Result<bool, BusError> {
        let deadline = Instant::now() + self.cfg.peer_timeout;
        self.drain()?;
        while self.last_clock < t - 1e-9 {
            if Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let until = deadline.min(Instant::now() + Duration::from_millis(50));
            match self.events.recv_deadline(until) {
                Ok(e) => self.handle(e)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Why the arm says it cannot move (a protective stop, a lost controller), if it does.
    fn arm_fault(&self) -> Option<String> {
        let fault = self.state.get()?.fault;
        (!fault.is_empty()).then(|| format!("arm: {fault}"))
    }

    fn lost_peer(&self) -> Option<&str> {
        self.watched
            .iter()
            .find(|(_, p)| *p == Peer::Lost)
            .map(|(n, _)| n.as_str())
    }

    fn execute(&mut self, chunk: &ActionChunk) -> Result<(), BusError> {
        let id = chunk.chunk_id;
        if chunk.keyposes.is_empty() {
            return self.publish_status(id, ExecStatus::COMPLETE, &chunk.subtask);
        }
        self.drain()?;
        // Not a bad chunk, a stop: the policy may send it again once the e-stop clears.
        if self.estop {
            return self.publish_status(id, ExecStatus::STOPPED, "e-stop is latched");
        }
        if let Some(why) = self.arm_fault() {
            return self.publish_status(id, ExecStatus::STOPPED, &why);
        }
        let end = match self.plan(chunk)? {
            Ok((start, plan)) => {
                self.publish_status(id, ExecStatus::RUNNING, &chunk.subtask)?;
                self.stream(id, start, &plan)?
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
        chunk: &ActionChunk,
    ) -> Result<Result<(EePose, Vec<(EePose, bool)>), String>, BusError> {
        if let Some(n) = self.lost_peer().map(str::to_string) {
            // A chunk from a restarted policy: give its token time to arrive.
            let deadline = Instant::now() + self.cfg.peer_timeout;
            while self.lost_peer().is_some() && Instant::now() < deadline {
                let until = deadline.min(Instant::now() + Duration::from_millis(5));
                self.wait_until(until)?;
            }
            if self.lost_peer().is_some() {
                return Ok(Err(format!("{n} is not alive")));
            }
        }
        let action = match chunk_action(chunk) {
            Ok(a) => a,
            Err(why) => return Ok(Err(why)),
        };
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
            reach: self.cfg.runtime.robot.limits.reach,
            ..self.cfg.primitive
        };
        let plan: Vec<(EePose, bool)> = match pick_place(start, action.pick, action.place, &params)
        {
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

    fn stream(&mut self, id: u64, start: EePose, plan: &[(EePose, bool)]) -> Result<End, BusError> {
        let dt = 1.0 / self.cfg.runtime.controller.rate_hz;
        let spin = Duration::from_micros(self.cfg.runtime.controller.spin_us);
        self.filter.reset(start);
        // Any clock at all: the loop below then paces on it.
        if self.cfg.clock == ClockSource::Sim && !self.wait_clock(f64::MIN)? {
            return Ok(End::Failed("no sim clock".into()));
        }
        let t0 = self.now();
        let wall0 = Instant::now();
        for (k, (pose, suction)) in plan.iter().enumerate() {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(End::Stopped("controller shutting down".into()));
            }
            if self.estop {
                return Ok(End::Stopped("e-stop".into()));
            }
            if let Some(n) = self.lost_peer() {
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
                    self.drain()?;
                }
                ClockSource::Sim => {
                    if !self.wait_clock(t)? {
                        return Ok(End::Stopped("sim clock stalled".into()));
                    }
                }
            }
        }
        Ok(End::Done)
    }
}
