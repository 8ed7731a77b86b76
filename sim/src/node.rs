//! The simulator as a zenoh node: the arm follows the setpoints streamed on `cmd/ee`
//! ([`World::servo`](crate::world::World::servo)), the camera, arm state, instruction and
//! episode events go out under `loho/<robot>/`.
//!
//! A benchmark step is one chunk: when the controller reports it done or refused
//! (`exec/status`), the scene settles and is scored, and the event goes out before the
//! frame that shows the result, so a policy deciding on that frame knows its reward.
//!
//! Two modes: **real time** (physics at 240 Hz of wall-clock time; a **watchdog** holds
//! the arm when no command has come for longer than its timeout) and **lockstep** (each
//! command advances physics to its stamp, then `clock` says so: as fast as the loop
//! allows, and the same episode whatever the machine's load). The e-stop holds the arm
//! in both until it is cleared.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use loho_runtime::bus::{Bus, BusError, Publisher, Qos};
use loho_runtime::keys;
use loho_runtime::msg::{
    ArmState, BoolMsg, Clock, DiagnosticArray, EeCommand, EpisodeEvent, ExecStatus, Header,
    HeightmapInfo, Image, Pose, StringMsg, Time,
};
use loho_runtime::safety::{RuntimeConfig, SafetyFilter};
use loho_runtime::trajectory::EePose;
use thiserror::Error;

use crate::camera::{self, Heightmap};
use crate::colors::Split;
use crate::env::{Env, EnvError, EpisodeResult, SETTLE_S};
use crate::tasks::TaskId;
use crate::ur5e;
use crate::world::{Outcome, DT};

/// The frame id of every pose the simulator publishes.
pub const FRAME: &str = "world";

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Env(#[from] EnvError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Realtime,
    Lockstep,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub task: TaskId,
    pub split: Split,
    pub seed: u64,
    /// Camera frames per second in real time; in lockstep, how often the last frame is
    /// repeated while nothing happens (for nodes that join late).
    pub fps: f64,
    pub mode: Mode,
    /// Watchdog, workspace box and servo speed.
    pub runtime: RuntimeConfig,
    /// Return once the episode is over (instead of serving frames until `stop`).
    pub exit_when_done: bool,
}

enum Input {
    Cmd(EeCommand),
    Status(ExecStatus),
    EStop(bool),
    Bad(&'static str, String),
}

struct Pubs {
    color: Publisher<Image>,
    depth: Publisher<Image>,
    info: Publisher<HeightmapInfo>,
    state: Publisher<ArmState>,
    instruction: Publisher<StringMsg>,
    episode: Publisher<EpisodeEvent>,
    clock: Publisher<Clock>,
    diagnostics: Publisher<DiagnosticArray>,
}

struct Sim {
    cfg: SimConfig,
    env: Env,
    p: Pubs,
    box_check: SafetyFilter,
    joints: [f64; 6],
    frame: Heightmap,
    /// When `frame` was rendered (simulated seconds): its stamp.
    frame_t: f64,
    /// The newest accepted command: pose and suction.
    target: Option<(EePose, bool)>,
    last_cmd: Instant,
    estop: bool,
    tripped: bool,
    /// The chunk the controller says is streaming.
    running: Option<u64>,
    grasped: bool,
    /// A chunk that ended, to be scored once the scene is at rest, and when it ended
    /// (simulated seconds).
    pending: Option<(u64, f64)>,
    scored: Vec<u64>,
    over: bool,
    last_event: EpisodeEvent,
    subtasks: Vec<String>,
}

/// Runs the node until `stop` is set (or the episode is over, with `exit_when_done`).
pub fn run(bus: &Bus, cfg: &SimConfig, stop: Arc<AtomicBool>) -> Result<EpisodeResult, NodeError> {
    let _alive = bus.alive("sim")?;
    let _peers = bus.log_peers("sim", &["controller", "policy"], stop.clone())?;
    let p = Pubs {
        color: bus.publisher(keys::COLOR, Qos::Stream)?,
        depth: bus.publisher(keys::DEPTH, Qos::Stream)?,
        info: bus.publisher(keys::INFO, Qos::Stream)?,
        state: bus.publisher(keys::STATE, Qos::Stream)?,
        instruction: bus.publisher(keys::INSTRUCTION, Qos::Command)?,
        episode: bus.publisher(keys::EPISODE, Qos::Command)?,
        clock: bus.publisher(keys::CLOCK, Qos::Command)?,
        diagnostics: bus.publisher(keys::DIAGNOSTICS, Qos::Stream)?,
    };
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    let _cmd = bus.subscribe::<EeCommand, _>(keys::CMD_EE, move |m| {
        let _ = t.send(m.map_or_else(|e| Input::Bad(keys::CMD_EE, e.to_string()), Input::Cmd));
    })?;
    let t = tx.clone();
    let _status = bus.subscribe::<ExecStatus, _>(keys::EXEC_STATUS, move |m| {
        let _ = t.send(m.map_or_else(
            |e| Input::Bad(keys::EXEC_STATUS, e.to_string()),
            Input::Status,
        ));
    })?;
    let _estop = bus.subscribe::<BoolMsg, _>(keys::ESTOP, move |m| {
        let _ = tx.send(match m {
            Ok(b) => Input::EStop(b.data),
            Err(e) => Input::Bad(keys::ESTOP, format!("{e}; e-stop latched")),
        });
    })?;
    let env = Env::new(cfg.task, cfg.split, cfg.seed)?;
    tracing::info!(
        task = cfg.task.name(),
        seed = cfg.seed,
        "sim: {}",
        env.instruction()
    );
    let frame = env.observe();
    let mut sim = Sim {
        box_check: SafetyFilter::new(cfg.runtime.safety.clone()),
        cfg: cfg.clone(),
        p,
        joints: ur5e::HOME,
        frame_t: env.world().time(),
        frame,
        target: None,
        last_cmd: Instant::now(),
        estop: false,
        tripped: false,
        running: None,
        grasped: false,
        pending: None,
        scored: Vec::new(),
        over: false,
        last_event: EpisodeEvent::default(),
        subtasks: Vec::new(),
        env,
    };
    sim.last_event = sim.event(0.0);
    sim.publish_frame()?;
    match cfg.mode {
        Mode::Realtime => sim.realtime(&rx, &stop)?,
        Mode::Lockstep => sim.lockstep(&rx, &stop)?,
    }
    // Before the liveliness token goes: nodes sharing `stop` know this is the end.
    stop.store(true, Ordering::Relaxed);
    Ok(EpisodeResult {
        task: cfg.task,
        seed: cfg.seed,
        total_reward: sim.env.total_reward(),
        success: sim.env.success(),
        steps: sim.env.steps_taken(),
        subtasks: sim.subtasks,
    })
}

impl Sim {
    fn now(&self) -> f64 {
        self.env.world().time()
    }

    fn header(&self) -> Header {
        Header::new(self.now(), FRAME)
    }

    fn diagnose(&self, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        tracing::warn!("sim: {what}: {why}");
        self.p.diagnostics.put(&DiagnosticArray::report(
            self.now(),
            level,
            "sim",
            what,
            why,
        ))
    }

    fn done(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed) || (self.over && self.cfg.exit_when_done)
    }

    fn handle(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Cmd(c) => {
                let p = &c.target;
                let pose = EePose::new(p.position.x, p.position.y, p.position.z, p.yaw());
                if self.estop {
                    return Ok(());
                }
                if let Err(r) = self.box_check.check_pose(&pose) {
                    // The driver's own last check: a bad setpoint never moves the arm.
                    self.diagnose(DiagnosticArray::ERROR, "command refused", &r.to_string())?;
                    return Ok(());
                }
                if !c.gripper.is_finite() {
                    self.diagnose(
                        DiagnosticArray::ERROR,
                        "command refused",
                        "gripper is not finite",
                    )?;
                    return Ok(());
                }
                self.target = Some((pose, c.gripper > 0.5));
                self.last_cmd = Instant::now();
                if self.tripped {
                    self.tripped = false;
                    self.diagnose(DiagnosticArray::WARN, "watchdog", "commands again")?;
                }
                if self.cfg.mode == Mode::Lockstep {
                    self.advance_to(c.header.stamp.as_secs_f64())?;
                }
            }
            Input::Status(s) => match s.state {
                ExecStatus::RUNNING => {
                    self.running = Some(s.chunk_id);
                    self.grasped = false;
                    self.subtasks.push(s.reason);
                }
                ExecStatus::DONE | ExecStatus::FAILED if !self.scored.contains(&s.chunk_id) => {
                    self.running = None;
                    self.scored.push(s.chunk_id);
                    self.pending = Some((s.chunk_id, self.now()));
                }
                ExecStatus::STOPPED => self.running = None,
                ExecStatus::COMPLETE if !self.over => {
                    self.subtasks.push(s.reason);
                    self.over = true;
                    self.last_event = self.event(0.0);
                    self.p.episode.put(&self.last_event)?;
                }
                _ => {}
            },
            Input::EStop(on) => {
                if on != self.estop {
                    self.estop = on;
                    // Holding means staying where the arm is, not going on to the target.
                    self.target = None;
                    let what = if on {
                        "e-stop: holding"
                    } else {
                        "e-stop cleared"
                    };
                    self.diagnose(DiagnosticArray::WARN, what, "estop topic")?;
                }
            }
            Input::Bad(topic, why) => {
                if topic == keys::ESTOP {
                    self.estop = true;
                    self.target = None;
                }
                self.diagnose(
                    DiagnosticArray::ERROR,
                    &format!("undecodable {topic}"),
                    &why,
                )?;
            }
        }
        Ok(())
    }

    /// One physics step in real time: toward the target at most at the speed limit, or
    /// holding when the watchdog or the e-stop says so.
    fn physics_step(&mut self) -> Result<(), BusError> {
        let timeout = Duration::from_millis(self.cfg.runtime.watchdog.timeout_ms);
        let stale = self.last_cmd.elapsed() > timeout;
        if stale && self.target.is_some() {
            if self.running.is_some() && !self.tripped {
                self.tripped = true;
                let ms = self.last_cmd.elapsed().as_millis();
                self.diagnose(
                    DiagnosticArray::WARN,
                    "watchdog",
                    &format!("no command for {ms} ms: holding"),
                )?;
            }
            self.target = None;
        }
        let tip = self.env.world().tip();
        let suction = self.env.world().suction();
        let (goal, suction) = match self.target {
            Some((g, s)) if !self.estop => (toward(tip, g, &self.cfg.runtime), s),
            _ => (tip, suction),
        };
        self.env.world_mut().servo(goal, suction);
        self.grasped |= self.env.world().held().is_some();
        Ok(())
    }

    fn realtime(&mut self, rx: &mpsc::Receiver<Input>, stop: &AtomicBool) -> Result<(), NodeError> {
        let start = Instant::now();
        let t0 = self.now();
        let frame_every = 1.0 / self.cfg.fps.max(0.1);
        let mut next_frame = t0 + frame_every;
        let mut steps = 0u64;
        while !self.done(stop) {
            let due = (start.elapsed().as_secs_f64() / DT) as u64;
            if due > steps + 240 {
                tracing::warn!(
                    "sim: {} physics steps behind real time; skipping",
                    due - steps
                );
                steps = due - 1;
            }
            while steps < due {
                self.physics_step()?;
                steps += 1;
                if steps.is_multiple_of(2) {
                    self.publish_state()?;
                }
            }
            if let Some((_, ended)) = self.pending {
                if self.env.world().is_still() || self.now() - ended > SETTLE_S {
                    self.score()?;
                }
            }
            if self.now() >= next_frame {
                next_frame = self.now() + frame_every;
                self.render();
                self.publish_frame()?;
            }
            let next = start + Duration::from_secs_f64((steps + 1) as f64 * DT);
            let wait = next.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(i) => self.handle(i)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(i) = rx.try_recv() {
                self.handle(i)?;
            }
        }
        Ok(())
    }

    fn lockstep(&mut self, rx: &mpsc::Receiver<Input>, stop: &AtomicBool) -> Result<(), NodeError> {
        let idle = Duration::from_secs_f64(1.0 / self.cfg.fps.max(0.1));
        self.p.clock.put(&Clock {
            clock: Time::from_secs_f64(self.now()),
        })?;
        while !self.done(stop) {
            match rx.recv_timeout(idle) {
                Ok(i) => self.handle(i)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.p.clock.put(&Clock {
                        clock: Time::from_secs_f64(self.now()),
                    })?;
                    self.publish_frame()?;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if self.pending.is_some() {
                self.env.world_mut().settle(SETTLE_S);
                self.score()?;
            }
        }
        Ok(())
    }

    /// Lockstep: physics from now to `t`, the tool moving in a straight line to the
    /// target (at least one step, so every command acts).
    fn advance_to(&mut self, t: f64) -> Result<(), BusError> {
        let Some((goal, suction)) = self.target else {
            return Ok(());
        };
        // Up to or just past `t`: the controller waits for the clock to reach it.
        let n = ((t - self.now()) / DT - 1e-6).ceil().clamp(1.0, 2400.0) as usize;
        let from = self.env.world().tip();
        for i in 1..=n {
            let pose = from.lerp(&goal, i as f64 / n as f64);
            self.env.world_mut().servo(pose, suction);
            self.grasped |= self.env.world().held().is_some();
        }
        self.publish_state()?;
        self.p.clock.put(&Clock {
            clock: Time::from_secs_f64(self.now()),
        })
    }

    fn score(&mut self) -> Result<(), NodeError> {
        let Some((id, _)) = self.pending.take() else {
            return Ok(());
        };
        if self.over || self.env.is_done() {
            return Ok(());
        }
        let outcome = if self.grasped {
            Outcome::Placed
        } else {
            Outcome::GraspFailed
        };
        let r = self.env.score_step(Ok(outcome))?;
        tracing::debug!(
            chunk = id,
            step = self.env.steps_taken(),
            reward = r.reward,
            total = r.total,
            "sim: scored"
        );
        self.over = r.done;
        self.last_event = self.event(r.reward);
        if self.cfg.mode == Mode::Lockstep {
            self.p.clock.put(&Clock {
                clock: Time::from_secs_f64(self.now()),
            })?;
        }
        // The event first: a policy deciding on the next frame then knows its reward.
        self.p.episode.put(&self.last_event)?;
        self.render();
        self.publish_frame()?;
        Ok(())
    }

    fn event(&self, reward: f64) -> EpisodeEvent {
        let ep = &self.env.episode;
        EpisodeEvent {
            header: self.header(),
            task: ep.task.name().into(),
            instruction: ep.instruction.clone(),
            seed: ep.seed,
            step: self.env.steps_taken() as u32,
            max_steps: self.env.max_steps() as u32,
            reward,
            total_reward: self.env.total_reward(),
            done: self.over || self.env.is_done(),
            success: self.env.success(),
        }
    }

    fn publish_state(&mut self) -> Result<(), BusError> {
        let w = self.env.world();
        let tip = w.tip();
        let (q, _) = ur5e::inverse(
            &ur5e::tip_target(tip.x, tip.y, tip.z, tip.yaw),
            &self.joints,
        );
        self.joints = q;
        self.p.state.put(&ArmState {
            header: self.header(),
            ee_pose: Pose::from_xyz_yaw(tip.x, tip.y, tip.z, tip.yaw),
            gripper: w.suction() as u8 as f64,
            holding: w.held().is_some(),
            joint_names: ur5e::JOINT_NAMES.iter().map(|s| s.to_string()).collect(),
            joint_positions: q.to_vec(),
        })
    }

    /// The current frame (with the instruction, the last episode event and the arm
    /// state, so that nodes joining late have everything).
    fn publish_frame(&mut self) -> Result<(), BusError> {
        let h = Header::new(self.frame_t, FRAME);
        let (w, ht) = (camera::WIDTH as u32, camera::HEIGHT as u32);
        self.p.instruction.put(&StringMsg {
            data: self.env.instruction().to_string(),
        })?;
        self.p.episode.put(&self.last_event)?;
        self.p
            .color
            .put(&Image::rgb8(h.clone(), w, ht, self.frame.rgb_bytes()))?;
        self.p
            .depth
            .put(&Image::f32c1(h.clone(), w, ht, &self.frame.height))?;
        self.p.info.put(&heightmap_info(h))?;
        self.publish_state()
    }

    fn render(&mut self) {
        self.frame = self.env.observe();
        self.frame_t = self.now();
    }
}

/// The pose one physics step from `tip` toward `goal` under the speed limits.
fn toward(tip: EePose, goal: EePose, rt: &RuntimeConfig) -> EePose {
    let d = ((goal.x - tip.x).powi(2) + (goal.y - tip.y).powi(2) + (goal.z - tip.z).powi(2)).sqrt();
    let s_lin = rt.safety.max_speed * DT / d.max(1e-12);
    let s_yaw = rt.safety.max_yaw_speed * DT / (goal.yaw - tip.yaw).abs().max(1e-12);
    tip.lerp(&goal, s_lin.min(s_yaw).min(1.0))
}

/// The heightmap's geometry as published on `camera/top/info`.
pub fn heightmap_info(header: Header) -> HeightmapInfo {
    HeightmapInfo {
        header,
        x_min: camera::X_MIN,
        x_max: camera::X_MAX,
        y_min: camera::Y_MIN,
        y_max: camera::Y_MAX,
        z_min: 0.0,
        z_max: camera::Z_MAX,
        pixel_size: camera::PIXEL,
        height: camera::HEIGHT as u32,
        width: camera::WIDTH as u32,
    }
}
