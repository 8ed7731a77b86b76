//! The simulator's scene as a zenoh node: it steps physics, renders the camera, scores the
//! episode and keeps the clock; the arm in that scene is driven by the generic arm node
//! (`loho_drivers`) through the same [`SharedStage`].
//!
//! A benchmark step is one chunk: when the controller reports it done or refused
//! (`exec/status`) and the arm holds again, the scene settles and is scored, and the event goes out before the
//! frame that shows the result, so a policy deciding on that frame knows its reward.
//!
//! Two modes: **real time** (physics at 240 Hz of wall-clock time, the tool moving toward
//! the arm's setpoint under the speed limits) and **lockstep** (the arm's commands advance
//! physics to their stamps, and `clock` says so: as fast as the loop allows, and the same
//! episode whatever the machine's load).
//!
//! The node is one event loop: zenoh callbacks only push `Event`s into a channel, and
//! the loop selects between them and its tick (a physics step in real time, a repeat of
//! the last frame and the clock at the camera rate in lockstep).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};
use loho_runtime::bus::{Bus, BusError, Publisher, Qos};
use loho_runtime::clock::ClockSource;
use loho_runtime::config::RuntimeConfig;
use loho_runtime::diagnostics::Diagnostics;
use loho_runtime::keys;
use loho_runtime::msg::{
    CameraInfo, Clock, DiagnosticArray, EpisodeEvent, ExecStatus, Header, HeightmapInfo, Image,
    StringMsg, Time,
};
use thiserror::Error;

use crate::arm::{SharedStage, Stage};
use crate::camera::{self, Heightmap};
use crate::colors::Split;
use crate::env::{EnvError, EpisodeResult, Repicks, SETTLE_S};
use crate::rgbd::{Rig, Shot};
use crate::tasks::TaskId;
use crate::world::{Outcome, DT};

/// The frame id of every pose the simulator publishes.
pub use loho_runtime::perception::grid::FRAME;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Env(#[from] EnvError),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub task: TaskId,
    pub split: Split,
    /// The benchmark seed of the episode (`Split::seed` of its episode number).
    pub seed: u64,
    /// Camera frames per second in real time; in lockstep, how often the last frame is
    /// repeated while nothing happens (for nodes that join late).
    pub fps: f64,
    /// Real time (`Wall`) or lockstep (`Sim`).
    pub clock: ClockSource,
    /// The arm's speed limits (real time) and the arm node's watchdog and workspace box.
    pub runtime: RuntimeConfig,
    /// Return once the episode is over (instead of serving frames until `stop`).
    pub exit_when_done: bool,
    /// Publish these perspective cameras (`camera/<name>/{color,depth,info}`) instead of
    /// the ideal heightmap on `camera/top/*`.
    pub cameras: Option<Arc<Rig>>,
}

/// What reaches the loop from the bus.
enum Event {
    Status(ExecStatus),
    Bad(&'static str, String),
}

/// Where frames go: the ideal heightmap, or each perspective camera.
#[allow(clippy::large_enum_variant)] // one per node
enum Eyes {
    Top {
        color: Publisher<Image>,
        depth: Publisher<Image>,
        info: Publisher<HeightmapInfo>,
    },
    Cameras(Vec<CameraPubs>),
}

struct CameraPubs {
    frame_id: String,
    color: Publisher<Image>,
    depth: Publisher<Image>,
    info: Publisher<CameraInfo>,
}

/// The last picture, as the eyes take it.
enum Frame {
    Top(Heightmap),
    Cameras(Vec<Shot>),
}

struct Pubs {
    eyes: Eyes,
    instruction: Publisher<StringMsg>,
    episode: Publisher<EpisodeEvent>,
    clock: Publisher<Clock>,
}

struct Scene {
    cfg: SimConfig,
    stage: SharedStage,
    p: Pubs,
    diag: Diagnostics,
    frame: Frame,
    /// When `frame` was rendered (simulated seconds): its stamp.
    frame_t: f64,
    /// A chunk that ended, to be scored once the scene is at rest, and when it ended
    /// (simulated seconds).
    pending: Option<(u64, f64)>,
    scored: Vec<u64>,
    over: bool,
    last_event: EpisodeEvent,
    subtasks: Vec<String>,
    repicks: Repicks,
}

/// The episode of `cfg` on a stage for this node and the arm driver.
pub fn stage(cfg: &SimConfig) -> Result<SharedStage, NodeError> {
    let env = crate::env::Env::new(cfg.task, cfg.split, cfg.seed)?;
    Ok(SharedStage::new(match &cfg.cameras {
        Some(rig) => env.with_cameras(rig.clone()),
        None => env,
    }))
}

/// The publisher of `clock`, which the arm driver also uses in lockstep (its commands
/// advance time there).
pub fn clock_publisher(bus: &Bus) -> Result<Publisher<Clock>, BusError> {
    bus.publisher(keys::CLOCK, Qos::Command)
}

/// Runs the node until `stop` is set (or the episode is over, with `exit_when_done`).
pub fn run(
    bus: &Bus,
    cfg: &SimConfig,
    stage: SharedStage,
    stop: Arc<AtomicBool>,
) -> Result<EpisodeResult, NodeError> {
    let _alive = bus.alive("sim")?;
    let _peers = bus.log_peers("sim", &["controller", "policy"], stop.clone())?;
    let eyes = match &cfg.cameras {
        None => Eyes::Top {
            color: bus.publisher(keys::COLOR, Qos::Frames)?,
            depth: bus.publisher(keys::DEPTH, Qos::Frames)?,
            info: bus.publisher(keys::INFO, Qos::Stream)?,
        },
        Some(rig) => Eyes::Cameras(
            rig.config()
                .cameras
                .iter()
                .map(|c| {
                    let [color, depth, info] = c.topics();
                    Ok(CameraPubs {
                        frame_id: c.frame_id.clone(),
                        color: bus.publisher(&color, Qos::Frames)?,
                        depth: bus.publisher(&depth, Qos::Frames)?,
                        info: bus.publisher(&info, Qos::Stream)?,
                    })
                })
                .collect::<Result<_, BusError>>()?,
        ),
    };
    let p = Pubs {
        eyes,
        instruction: bus.publisher(keys::INSTRUCTION, Qos::Command)?,
        episode: bus.publisher(keys::EPISODE, Qos::Command)?,
        clock: clock_publisher(bus)?,
    };
    let (tx, events) = crossbeam_channel::unbounded();
    let _status = bus.forward(keys::EXEC_STATUS, &tx, Event::Status, Event::Bad)?;
    let (frame, frame_t) = {
        let s = stage.lock();
        tracing::info!(
            task = cfg.task.name(),
            seed = cfg.seed,
            "sim: {}",
            s.env.instruction()
        );
        (look(&s), s.env.world().time())
    };
    let mut scene = Scene {
        cfg: cfg.clone(),
        stage,
        p,
        diag: Diagnostics::new(bus, "sim")?,
        frame,
        frame_t,
        pending: None,
        scored: Vec::new(),
        over: false,
        last_event: EpisodeEvent::default(),
        subtasks: Vec::new(),
        repicks: Repicks::default(),
    };
    scene.last_event = scene.event(&scene.stage.lock(), 0.0);
    scene.publish_frame()?;
    match cfg.clock {
        ClockSource::Wall => scene.realtime(&events, &stop)?,
        ClockSource::Sim => scene.lockstep(&events, &stop)?,
    }
    // Before the liveliness token goes: nodes sharing `stop` know this is the end.
    stop.store(true, Ordering::Relaxed);
    let s = scene.stage.lock();
    Ok(EpisodeResult {
        task: cfg.task,
        seed: cfg.seed,
        total_reward: s.env.total_reward(),
        success: s.env.success(),
        steps: s.env.steps_taken(),
        subtasks: std::mem::take(&mut scene.subtasks),
        repicks: scene.repicks.count,
    })
}

impl Scene {
    fn now(&self) -> f64 {
        self.stage.lock().env.world().time()
    }

    fn done(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed) || (self.over && self.cfg.exit_when_done)
    }

    fn handle(&mut self, event: Event) -> Result<(), NodeError> {
        match event {
            Event::Status(s) => match s.state {
                ExecStatus::RUNNING => self.subtasks.push(s.reason),
                ExecStatus::DONE | ExecStatus::FAILED if !self.scored.contains(&s.chunk_id) => {
                    self.scored.push(s.chunk_id);
                    self.pending = Some((s.chunk_id, self.now()));
                }
                ExecStatus::COMPLETE if !self.over => {
                    self.subtasks.push(s.reason);
                    self.over = true;
                    self.last_event = self.event(&self.stage.lock(), 0.0);
                    self.p.episode.put(&self.last_event)?;
                }
                _ => {}
            },
            Event::Bad(topic, why) => self.diag.report(
                self.now(),
                DiagnosticArray::ERROR,
                &format!("undecodable {topic}"),
                &why,
            )?,
        }
        Ok(())
    }

    fn realtime(&mut self, events: &Receiver<Event>, stop: &AtomicBool) -> Result<(), NodeError> {
        let start = Instant::now();
        let frame_every = 1.0 / self.cfg.fps.max(0.1);
        let mut next_frame = self.now() + frame_every;
        let mut steps = 0u64;
        let ticks = crossbeam_channel::tick(Duration::from_secs_f64(DT));
        while !self.done(stop) {
            select! {
                recv(events) -> e => match e {
                    Ok(e) => self.handle(e)?,
                    Err(_) => break,
                },
                recv(ticks) -> _ => {}
            }
            let due = (start.elapsed().as_secs_f64() / DT) as u64;
            if due > steps + 240 {
                tracing::warn!(
                    "sim: {} physics steps behind real time; skipping",
                    due - steps
                );
                steps = due - 1;
            }
            let now = {
                let mut s = self.stage.lock();
                while steps < due {
                    s.physics_step(&self.cfg.runtime.robot.limits);
                    steps += 1;
                }
                s.env.world().time()
            };
            if let Some((_, ended)) = self.pending {
                // The arm node streams in parallel with this one: the chunk is over once
                // the arm holds (its watchdog, after the last setpoint) and the scene rests.
                let rest = {
                    let s = self.stage.lock();
                    s.holding() && s.env.world().is_still()
                };
                if rest || now - ended > SETTLE_S {
                    self.score()?;
                }
            }
            if now >= next_frame {
                next_frame = now + frame_every;
                self.render();
                self.publish_frame()?;
            }
        }
        Ok(())
    }

    fn lockstep(&mut self, events: &Receiver<Event>, stop: &AtomicBool) -> Result<(), NodeError> {
        // A tick, not a wait for a quiet spell: payloads that do not decode arrive as
        // events too, and a flood of them once kept the first frame and clock from being
        // repeated to nodes that subscribed after they went out (the policy waited ~10 s,
        // the controller gave a chunk up for "no sim clock").
        let ticks = crossbeam_channel::tick(Duration::from_secs_f64(1.0 / self.cfg.fps.max(0.1)));
        self.publish_clock()?;
        while !self.done(stop) {
            select! {
                recv(events) -> e => match e {
                    Ok(e) => self.handle(e)?,
                    Err(_) => break,
                },
                recv(ticks) -> _ => {
                    self.publish_clock()?;
                    self.publish_frame()?;
                }
            }
            if self.pending.is_some() {
                self.stage.lock().env.world_mut().settle(SETTLE_S);
                self.score()?;
            }
        }
        Ok(())
    }

    fn publish_clock(&self) -> Result<(), BusError> {
        self.p.clock.put(&Clock {
            clock: Time::from_secs_f64(self.now()),
        })
    }

    fn score(&mut self) -> Result<(), NodeError> {
        let Some((id, _)) = self.pending.take() else {
            return Ok(());
        };
        {
            let mut s = self.stage.lock();
            if self.over || s.env.is_done() {
                return Ok(());
            }
            let outcome = if s.take_grasped() {
                Outcome::Placed
            } else {
                Outcome::GraspFailed
            };
            let r = s.env.score_step(Ok(outcome))?;
            let subtask = self.subtasks.last().map_or("", String::as_str);
            self.repicks.record(subtask, r.reward);
            tracing::debug!(
                chunk = id,
                step = s.env.steps_taken(),
                reward = r.reward,
                total = r.total,
                "sim: scored"
            );
            self.over = r.done;
            self.last_event = self.event(&s, r.reward);
        }
        if self.cfg.clock == ClockSource::Sim {
            self.publish_clock()?;
        }
        // The event first: a policy deciding on the next frame then knows its reward.
        self.p.episode.put(&self.last_event)?;
        self.render();
        self.publish_frame()?;
        Ok(())
    }

    fn event(&self, s: &Stage, reward: f64) -> EpisodeEvent {
        let ep = &s.env.episode;
        EpisodeEvent {
            header: Header::new(s.env.world().time(), FRAME),
            task: ep.task.name().into(),
            instruction: ep.instruction.clone(),
            seed: ep.seed,
            step: s.env.steps_taken() as u32,
            max_steps: s.env.max_steps() as u32,
            reward,
            total_reward: s.env.total_reward(),
            done: self.over || s.env.is_done(),
            success: s.env.success(),
        }
    }

    /// The current frame (with the instruction and the last episode event, so that nodes
    /// joining late have everything).
    fn publish_frame(&mut self) -> Result<(), BusError> {
        let instruction = self.stage.lock().env.instruction().to_string();
        self.p.instruction.put(&StringMsg { data: instruction })?;
        self.p.episode.put(&self.last_event)?;
        match (&self.p.eyes, &self.frame) {
            (Eyes::Top { color, depth, info }, Frame::Top(hm)) => {
                let h = Header::new(self.frame_t, FRAME);
                let (w, ht) = (camera::WIDTH as u32, camera::HEIGHT as u32);
                color.put(&Image::rgb8(h.clone(), w, ht, hm.rgb_bytes()))?;
                depth.put(&Image::f32c1(h.clone(), w, ht, &hm.height))?;
                info.put(&camera::info(h))
            }
            (Eyes::Cameras(pubs), Frame::Cameras(shots)) => {
                let rig = self.cfg.cameras.as_ref().expect("cameras publish shots");
                for (i, (p, shot)) in pubs.iter().zip(shots).enumerate() {
                    let h = Header::new(self.frame_t, &p.frame_id);
                    let m = rig.intrinsics(i);
                    p.color
                        .put(&Image::rgb8(h.clone(), m.width, m.height, shot.rgb.clone()))?;
                    p.depth
                        .put(&Image::u16c1(h.clone(), m.width, m.height, &shot.depth_mm))?;
                    p.info.put(&m.info(h))?;
                }
                Ok(())
            }
            _ => unreachable!("frames are taken by the eyes they go to"),
        }
    }

    fn render(&mut self) {
        let s = self.stage.lock();
        self.frame = look(&s);
        self.frame_t = s.env.world().time();
    }
}

/// What the simulator's eyes see now.
fn look(s: &Stage) -> Frame {
    match s.env.shoot() {
        Some(shots) => Frame::Cameras(shots),
        None => Frame::Top(s.env.observe()),
    }
}
