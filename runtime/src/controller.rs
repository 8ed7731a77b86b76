//! The controller node: each action chunk becomes the pick-and-place primitive's
//! setpoints ([`trajectory`](crate::trajectory)), streamed on `cmd/ee` at the control
//! rate from this node's own thread, every one through the [`SafetyFilter`].
//!
//! A chunk is checked whole before its first setpoint (a plan that would leave the
//! workspace or break a limit half-way is refused, so nothing moves). While it streams,
//! the e-stop, the loss of a watched node (the policy) or a stalled simulator clock stop
//! it between two setpoints; the driver's watchdog then holds the arm. Every outcome is
//! reported on `exec/status`, every refusal also on `diagnostics`.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::bus::{Bus, BusError, Publisher, Qos};
use crate::cdr::CdrError;
use crate::config::RuntimeConfig;
use crate::keys;
use crate::msg::{
    ActionChunk, ArmState, BoolMsg, Clock, DiagnosticArray, EeCommand, ExecStatus, Header, Pose,
};
use crate::policy::chunk_action;
use crate::safety::SafetyFilter;
use crate::trajectory::{pick_place, EePose, PrimitiveParams};

#[derive(Debug, Error)]
pub enum ControllerError {
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Which time setpoints are stamped and paced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// The wall clock: one setpoint per control period (real arms, real-time sim).
    Wall,
    /// The simulator's `clock` topic (ROS 2's `use_sim_time`): each setpoint waits for
    /// the simulator to reach the previous one, as fast as both can go.
    Sim,
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

const UNSEEN: u8 = 0;
const ALIVE: u8 = 1;
const LOST: u8 = 2;

/// How one chunk ended.
enum End {
    Done,
    Stopped(String),
    Failed(String),
}

struct Node<'a> {
    cfg: &'a ControllerConfig,
    stop: Arc<AtomicBool>,
    estop: Arc<AtomicBool>,
    watched: Vec<(String, Arc<AtomicU8>)>,
    state: crate::bus::Latest<ArmState>,
    clock: mpsc::Receiver<f64>,
    last_clock: f64,
    cmd: Publisher<EeCommand>,
    status: Publisher<ExecStatus>,
    diag: Publisher<DiagnosticArray>,
    filter: SafetyFilter,
}

/// Runs the controller on the calling thread until `stop` is set.
pub fn run(
    bus: &Bus,
    cfg: &ControllerConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ControllerError> {
    let _alive = bus.alive("controller")?;
    let _peers = bus.log_peers("controller", &["sim", "arm"], stop.clone())?;
    let diag = bus.publisher::<DiagnosticArray>(keys::DIAGNOSTICS, Qos::Stream)?;
    let estop = Arc::new(AtomicBool::new(false));
    let (bad_tx, bad_rx) = mpsc::channel::<(&'static str, String)>();
    let e = estop.clone();
    let bad = bad_tx.clone();
    let _estop_sub = bus.subscribe::<BoolMsg, _>(keys::ESTOP, move |m| match m {
        Ok(b) => e.store(b.data, Ordering::SeqCst),
        Err(err) => {
            // An e-stop message nobody can read is taken as an e-stop.
            e.store(true, Ordering::SeqCst);
            let _ = bad.send((keys::ESTOP, format!("{err}; e-stop latched")));
        }
    })?;
    let (chunk_tx, chunks) = mpsc::channel::<Result<ActionChunk, CdrError>>();
    let _chunk_sub = bus.subscribe::<ActionChunk, _>(keys::ACTION, move |m| {
        let _ = chunk_tx.send(m);
    })?;
    let (clock_tx, clock) = mpsc::channel();
    let bad = bad_tx.clone();
    let _clock_sub = bus.subscribe::<Clock, _>(keys::CLOCK, move |m| match m {
        Ok(c) => {
            let _ = clock_tx.send(c.clock.as_secs_f64());
        }
        Err(err) => {
            let _ = bad.send((keys::CLOCK, err.to_string()));
        }
    })?;
    let mut watches = Vec::new();
    let mut watched = Vec::new();
    for name in &cfg.watch {
        let flag = Arc::new(AtomicU8::new(UNSEEN));
        let f = flag.clone();
        watches.push(bus.watch_alive(name, move |up| {
            f.store(if up { ALIVE } else { LOST }, Ordering::SeqCst)
        })?);
        watched.push((name.clone(), flag));
    }
    let mut node = Node {
        cfg,
        stop: stop.clone(),
        estop,
        watched,
        state: bus.latest::<ArmState>(keys::STATE)?,
        clock,
        last_clock: f64::NEG_INFINITY,
        cmd: bus.publisher(keys::CMD_EE, Qos::Command)?,
        status: bus.publisher(keys::EXEC_STATUS, Qos::Command)?,
        diag,
        filter: SafetyFilter::new(cfg.runtime.safety.clone()),
    };
    let mut state_errors = 0;
    let mut estopped = false;
    while !stop.load(Ordering::Relaxed) {
        match chunks.recv_timeout(Duration::from_millis(20)) {
            Ok(Ok(chunk)) => node.execute(&chunk)?,
            Ok(Err(e)) => node.report(
                DiagnosticArray::ERROR,
                "undecodable policy/action",
                &e.to_string(),
            )?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while let Ok((topic, why)) = bad_rx.try_recv() {
            node.report(
                DiagnosticArray::ERROR,
                &format!("undecodable {topic}"),
                &why,
            )?;
        }
        let n = node.state.decode_errors();
        if n > state_errors {
            state_errors = n;
            node.report(
                DiagnosticArray::WARN,
                "undecodable state",
                &format!("{n} so far"),
            )?;
        }
        let now = node.estop.load(Ordering::SeqCst);
        if now != estopped {
            estopped = now;
            let what = if now {
                "e-stop latched"
            } else {
                "e-stop cleared"
            };
            node.report(DiagnosticArray::WARN, what, "estop topic")?;
        }
    }
    Ok(())
}

impl Node<'_> {
    fn now(&self) -> f64 {
        match self.cfg.clock {
            ClockSource::Wall => crate::wall_s(),
            ClockSource::Sim => self.last_clock,
        }
    }

    fn report(&self, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        tracing::warn!("controller: {what}: {why}");
        self.diag.put(&DiagnosticArray::report(
            self.now(),
            level,
            "controller",
            what,
            why,
        ))
    }

    fn publish_status(&self, id: u64, state: u8, reason: &str) -> Result<(), BusError> {
        self.status.put(&ExecStatus {
            header: Header::new(self.now(), ""),
            chunk_id: id,
            state,
            reason: reason.into(),
        })
    }

    /// Drains the sim clock, then waits (up to the peer timeout) until it reaches `t`.
    fn wait_clock(&mut self, t: f64) -> bool {
        let deadline = Instant::now() + self.cfg.peer_timeout;
        loop {
            while let Ok(c) = self.clock.try_recv() {
                self.last_clock = self.last_clock.max(c);
            }
            if self.last_clock >= t - 1e-9 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.clock.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(c) => self.last_clock = self.last_clock.max(c),
                Err(_) if Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) => {
                    return false
                }
                Err(_) => {}
            }
        }
    }

    fn lost_peer(&self) -> Option<&str> {
        self.watched
            .iter()
            .find(|(_, f)| f.load(Ordering::SeqCst) == LOST)
            .map(|(n, _)| n.as_str())
    }

    fn execute(&mut self, chunk: &ActionChunk) -> Result<(), BusError> {
        let id = chunk.chunk_id;
        if chunk.keyposes.is_empty() {
            return self.publish_status(id, ExecStatus::COMPLETE, &chunk.subtask);
        }
        // Not a bad chunk, a stop: the policy may send it again once the e-stop clears.
        if self.estop.load(Ordering::SeqCst) {
            return self.publish_status(id, ExecStatus::STOPPED, "e-stop is latched");
        }
        let end = match self.plan(chunk) {
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
    fn plan(&mut self, chunk: &ActionChunk) -> Result<(EePose, Vec<(EePose, bool)>), String> {
        if let Some(n) = self.lost_peer() {
            // A chunk from a restarted policy: give its token time to arrive.
            let deadline = Instant::now() + self.cfg.peer_timeout;
            while self.lost_peer().is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.lost_peer().is_some() {
                return Err(format!("{n} is not alive"));
            }
        }
        let action = chunk_action(chunk)?;
        let deadline = Instant::now() + self.cfg.peer_timeout;
        let state = loop {
            if let Some(s) = self.state.get() {
                break s;
            }
            if Instant::now() >= deadline {
                return Err("no arm state received".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let p = &state.ee_pose;
        let start = EePose::new(p.position.x, p.position.y, p.position.z, p.yaw());
        let params = PrimitiveParams {
            rate_hz: self.cfg.runtime.controller.rate_hz,
            ..self.cfg.primitive
        };
        let plan: Vec<(EePose, bool)> = pick_place(start, action.pick, action.place, &params)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| (s.pose, s.suction))
            .collect();
        let poses: Vec<EePose> = plan.iter().map(|p| p.0).collect();
        self.filter
            .check_plan(start, &poses, 1.0 / params.rate_hz)
            .map_err(|r| format!("rejected: {r}"))?;
        Ok((start, plan))
    }

    fn stream(&mut self, id: u64, start: EePose, plan: &[(EePose, bool)]) -> Result<End, BusError> {
        let dt = 1.0 / self.cfg.runtime.controller.rate_hz;
        self.filter.reset(start);
        // Any clock at all: the loop below then paces on it.
        if self.cfg.clock == ClockSource::Sim && !self.wait_clock(f64::MIN) {
            return Ok(End::Failed("no sim clock".into()));
        }
        let t0 = self.now();
        let wall0 = Instant::now();
        for (k, (pose, suction)) in plan.iter().enumerate() {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(End::Stopped("controller shutting down".into()));
            }
            if self.estop.load(Ordering::SeqCst) {
                return Ok(End::Stopped("e-stop".into()));
            }
            if let Some(n) = self.lost_peer() {
                return Ok(End::Stopped(format!("{n} lost")));
            }
            if let Err(r) = self.filter.check(pose, dt) {
                return Ok(End::Failed(format!("rejected mid-chunk: {r}")));
            }
            let t = t0 + (k + 1) as f64 * dt;
            self.cmd.put(&EeCommand {
                header: Header::new(t, "world"),
                chunk_id: id,
                target: Pose::from_xyz_yaw(pose.x, pose.y, pose.z, pose.yaw),
                gripper: if *suction { 1.0 } else { 0.0 },
            })?;
            match self.cfg.clock {
                ClockSource::Wall => {
                    let due = wall0 + Duration::from_secs_f64((k + 1) as f64 * dt);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                ClockSource::Sim => {
                    if !self.wait_clock(t) {
                        return Ok(End::Stopped("sim clock stalled".into()));
                    }
                }
            }
        }
        Ok(End::Done)
    }
}
