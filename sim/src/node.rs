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
//! The loop is the runtime's (`loho_runtime::node`): after each `exec/status` and each
//! tick (a physics step in real time, a repeat of the last frame and the clock at the
//! camera rate in lockstep) the scene moves on as far as it can.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::msg::{
    CameraInfo, Clock, EpisodeEvent, ExecStatus, Header, HeightmapInfo, Image, StringMsg, Time,
};
use loho_runtime::bus::{Bus, BusError, Publisher, Qos};
use loho_runtime::keys;
use loho_runtime::node::{self as runner, Context, Node, NodeSpec};
use thiserror::Error;

use crate::arm::{SharedStage, Stage};
use crate::camera::{self, Heightmap};
use crate::draw::Draw;
use crate::env::{EnvError, EpisodeResult, SETTLE_S};
use crate::rgbd::{Rig, Shot};
use crate::split::Split;
use crate::tasks::TaskId;
use crate::world::{Outcome, DT};

/// The frame id of every pose the simulator publishes.
pub use loho_core::perception::grid::FRAME;

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
    /// How the episode is drawn (its instruction's words).
    pub draw: Draw,
}

/// Where frames go: the ideal heightmap, or each perspective camera.
#[allow(clippy::large_enum_variant)] // one per node
enum FrameOutputs {
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

/// The last picture, as the outputs take it.
enum Frame {
    Top(Heightmap),
    Cameras(Vec<Shot>),
}

struct Pubs {
    outputs: FrameOutputs,
    instruction: Publisher<StringMsg>,
    episode: Publisher<EpisodeEvent>,
    clock: Publisher<Clock>,
}

struct Scene {
    cfg: SimConfig,
    stage: SharedStage,
    p: Pubs,
    /// Real time: when physics started, the physics steps taken since, and the
    /// simulated time of the next frame.
    start: Instant,
    steps: u64,
    next_frame: f64,
    frame: Frame,
    /// When `frame` was rendered (simulated seconds): its stamp.
    frame_t: f64,
    /// A chunk that ended, to be scored once the scene is at rest, and when it ended
    /// (simulated seconds).
    pending: Option<(u64, f64)>,
    scored: Vec<u64>,
    over: bool,
    last_event: EpisodeEvent,
}

/// The episode of `cfg` on a stage for this node and the arm driver.
pub fn stage(cfg: &SimConfig) -> Result<SharedStage, NodeError> {
    let episode = (cfg.draw.episode(cfg.task, cfg.split, cfg.seed)).map_err(EnvError::from)?;
    let env = crate::env::Env::from_episode(episode);
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
    let period = match cfg.clock {
        ClockSource::Wall => DT,
        // A tick, not a wait for a quiet spell: payloads that do not decode arrive as
        // events too, and a flood of them once kept the first frame and clock from being
        // repeated to nodes that subscribed after they went out (the policy waited ~10 s,
        // the controller gave a chunk up for "no sim clock").
        ClockSource::Sim => 1.0 / cfg.fps.max(0.1),
    };
    let spec = NodeSpec::new("sim", &cfg.runtime, Duration::from_secs_f64(period));
    let scene = runner::run(bus, &spec, stop, |inputs| {
        inputs.forward(keys::EXEC_STATUS, |s: ExecStatus| s)?;
        Scene::new(inputs.bus(), cfg, stage)
    })?;
    let result = scene.stage.lock().env.result();
    Ok(result)
}

impl Node for Scene {
    type Event = ExecStatus;
    type Error = NodeError;

    fn now(&self) -> f64 {
        self.stage.lock().env.world().time()
    }

    fn event(&mut self, _: &mut Context<ExecStatus>, s: ExecStatus) -> Result<(), NodeError> {
        self.status(s)?;
        self.go_on()
    }

    fn tick(&mut self, _: &mut Context<ExecStatus>) -> Result<(), NodeError> {
        if self.cfg.clock == ClockSource::Sim {
            self.publish_clock()?;
            self.publish_frame()?;
        }
        self.go_on()
    }

    fn finished(&self) -> bool {
        self.over && self.cfg.exit_when_done
    }
}

impl Scene {
    /// The scene of `stage` with its publishers, its first frame out.
    fn new(bus: &Bus, cfg: &SimConfig, stage: SharedStage) -> Result<Self, NodeError> {
        let outputs = match &cfg.cameras {
            None => FrameOutputs::Top {
                color: bus.publisher(keys::COLOR, Qos::Frames)?,
                depth: bus.publisher(keys::DEPTH, Qos::Frames)?,
                info: bus.publisher(keys::INFO, Qos::Stream)?,
            },
            Some(rig) => FrameOutputs::Cameras(
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
            outputs,
            instruction: bus.publisher(keys::INSTRUCTION, Qos::Command)?,
            episode: bus.publisher(keys::EPISODE, Qos::Command)?,
            clock: clock_publisher(bus)?,
        };
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
            start: Instant::now(),
            steps: 0,
            next_frame: frame_t + 1.0 / cfg.fps.max(0.1),
            frame,
            frame_t,
            pending: None,
            scored: Vec::new(),
            over: false,
            last_event: EpisodeEvent::default(),
        };
        scene.last_event = scene.episode_event(&scene.stage.lock(), 0.0);
        scene.publish_frame()?;
        if cfg.clock == ClockSource::Sim {
            scene.publish_clock()?;
        }
        Ok(scene)
    }

    fn status(&mut self, s: ExecStatus) -> Result<(), NodeError> {
        match s.state {
            ExecStatus::RUNNING => self.stage.lock().env.said(&s.reason),
            ExecStatus::DONE | ExecStatus::FAILED if !self.scored.contains(&s.chunk_id) => {
                self.scored.push(s.chunk_id);
                self.pending = Some((s.chunk_id, self.now()));
            }
            ExecStatus::COMPLETE if !self.over => {
                self.stage.lock().env.said(&s.reason);
                self.over = true;
                self.last_event = self.episode_event(&self.stage.lock(), 0.0);
                self.p.episode.put(&self.last_event)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// As far as the scene can go now: in real time, physics up to the wall clock, the
    /// ended chunk scored once the scene rests, a frame when one is due; in lockstep (the
    /// arm's setpoints advance physics), the ended chunk settled and scored.
    fn go_on(&mut self) -> Result<(), NodeError> {
        if self.cfg.clock == ClockSource::Sim {
            if self.pending.is_some() {
                self.stage.lock().env.world_mut().settle(SETTLE_S);
                self.score()?;
            }
            return Ok(());
        }
        let due = (self.start.elapsed().as_secs_f64() / DT) as u64;
        if due > self.steps + 240 {
            tracing::warn!(
                "sim: {} physics steps behind real time; skipping",
                due - self.steps
            );
            self.steps = due - 1;
        }
        let now = {
            let mut s = self.stage.lock();
            while self.steps < due {
                s.physics_step(&self.cfg.runtime.robot.limits);
                self.steps += 1;
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
        if now >= self.next_frame {
            self.next_frame = now + 1.0 / self.cfg.fps.max(0.1);
            self.render();
            self.publish_frame()?;
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
            // Scoring the step takes the picked object (re-picks are counted by it).
            let outcome = if s.env.world().picked().is_some() {
                Outcome::Placed
            } else {
                Outcome::GraspFailed
            };
            let r = s.env.score_step(Ok(outcome))?;
            tracing::debug!(
                chunk = id,
                step = s.env.steps_taken(),
                reward = r.reward,
                total = r.total,
                "sim: scored"
            );
            self.over = r.done;
            self.last_event = self.episode_event(&s, r.reward);
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

    fn episode_event(&self, s: &Stage, reward: f64) -> EpisodeEvent {
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
        match (&self.p.outputs, &self.frame) {
            (FrameOutputs::Top { color, depth, info }, Frame::Top(hm)) => {
                let h = Header::new(self.frame_t, FRAME);
                let (w, ht) = (camera::WIDTH as u32, camera::HEIGHT as u32);
                color.put(&Image::rgb8(h.clone(), w, ht, hm.rgb_bytes()))?;
                depth.put(&Image::f32c1(h.clone(), w, ht, &hm.height))?;
                info.put(&camera::grid().info(h))
            }
            (FrameOutputs::Cameras(pubs), Frame::Cameras(shots)) => {
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
            _ => unreachable!("frames are taken by the outputs they go to"),
        }
    }

    fn render(&mut self) {
        let s = self.stage.lock();
        self.frame = look(&s);
        self.frame_t = s.env.world().time();
    }
}

/// What the simulator's outputs see now.
fn look(s: &Stage) -> Frame {
    match s.env.shoot() {
        Some(shots) => Frame::Cameras(shots),
        None => Frame::Top(s.env.observe()),
    }
}
