//! The simulator as a zenoh node: publishes camera frames, arm state, the instruction and
//! episode events under `loho/<robot>/`, and executes the action chunks it receives on
//! `policy/action` through the trajectory module.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loho_runtime::bus::{Bus, BusConfig, BusError, Qos};
use loho_runtime::keys;
use loho_runtime::msg::{
    ActionChunk, ArmState, DiagnosticArray, DiagnosticStatus, EpisodeEvent, Header, HeightmapInfo,
    Image, KeyValue, Pose, StringMsg,
};
use loho_runtime::trajectory::EePose;
use thiserror::Error;

use crate::camera::{self, Heightmap};
use crate::colors::Split;
use crate::env::{Action, Env, EnvError};
use crate::tasks::TaskId;
use crate::ur5e;

/// The frame id of every pose the simulator publishes.
pub const FRAME: &str = "world";

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Env(#[from] EnvError),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub bus: BusConfig,
    pub task: TaskId,
    pub split: Split,
    pub seed: u64,
    /// Camera frames per second of wall-clock time while waiting for actions.
    pub fps: f64,
}

/// The pick and place keyposes of a chunk, or why it is not a pick-and-place.
fn chunk_to_action(c: &ActionChunk) -> Result<Action, String> {
    if c.keyposes.len() != 2 {
        return Err(format!(
            "a pick-and-place chunk has 2 keyposes, this one {}",
            c.keyposes.len()
        ));
    }
    let ee = |k: usize| {
        let p = &c.keyposes[k].pose;
        EePose::new(p.position.x, p.position.y, p.position.z, p.yaw())
    };
    Ok(Action {
        subtask: c.subtask.clone(),
        pick: ee(0),
        place: ee(1),
    })
}

struct Publishers {
    color: loho_runtime::bus::Publisher<Image>,
    depth: loho_runtime::bus::Publisher<Image>,
    info: loho_runtime::bus::Publisher<HeightmapInfo>,
    state: loho_runtime::bus::Publisher<ArmState>,
    instruction: loho_runtime::bus::Publisher<StringMsg>,
    episode: loho_runtime::bus::Publisher<EpisodeEvent>,
    diagnostics: loho_runtime::bus::Publisher<DiagnosticArray>,
}

/// Runs the node until `stop` is set. Each received chunk is one benchmark step.
pub fn run(cfg: &SimConfig, stop: Arc<AtomicBool>) -> Result<(), NodeError> {
    let bus = Bus::open(&cfg.bus)?;
    let _alive = bus.alive("sim")?;
    let p = Publishers {
        color: bus.publisher(keys::COLOR, Qos::Stream)?,
        depth: bus.publisher(keys::DEPTH, Qos::Stream)?,
        info: bus.publisher(keys::INFO, Qos::Stream)?,
        state: bus.publisher(keys::STATE, Qos::Stream)?,
        instruction: bus.publisher(keys::INSTRUCTION, Qos::Command)?,
        episode: bus.publisher(keys::EPISODE, Qos::Command)?,
        diagnostics: bus.publisher(keys::DIAGNOSTICS, Qos::Stream)?,
    };
    let (tx, rx) = mpsc::channel();
    let _sub = bus.subscribe::<ActionChunk, _>(keys::ACTION, move |m| {
        let _ = tx.send(m);
    })?;
    let mut env = Env::new(cfg.task, cfg.split, cfg.seed)?;
    let mut joints = ur5e::HOME;
    tracing::info!(
        task = cfg.task.name(),
        seed = cfg.seed,
        "sim: {}",
        env.instruction()
    );
    let period = Duration::from_secs_f64(1.0 / cfg.fps.max(0.1));
    let mut next_frame = Instant::now();
    let mut frame = env.observe();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_frame {
            publish_frame(&p, &env, &frame, &mut joints)?;
            next_frame += period;
        }
        let wait = next_frame.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait.min(Duration::from_millis(50))) {
            Ok(Ok(chunk)) => {
                let result = chunk_to_action(&chunk).and_then(|a| {
                    if env.is_done() {
                        Err("the episode is over".into())
                    } else {
                        env.step(&a).map_err(|e| e.to_string())
                    }
                });
                match result {
                    Ok(r) => {
                        if let Err(why) = &r.outcome {
                            diagnose(&p, &env, 1, "chunk rejected", &format!("{why:?}"))?;
                        }
                        tracing::info!(
                            step = env.steps_taken(),
                            reward = r.reward,
                            total = r.total,
                            "{}",
                            chunk.subtask
                        );
                        frame = env.observe();
                        p.episode.put(&episode_event(&env, r.reward))?;
                        publish_frame(&p, &env, &frame, &mut joints)?;
                    }
                    Err(e) => diagnose(&p, &env, 1, "chunk rejected", &e)?,
                }
            }
            Ok(Err(e)) => diagnose(&p, &env, 2, "undecodable action chunk", &e.to_string())?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

fn header(env: &Env) -> Header {
    Header::new(env.world().time(), FRAME)
}

fn publish_frame(
    p: &Publishers,
    env: &Env,
    hm: &Heightmap,
    joints: &mut [f64; 6],
) -> Result<(), BusError> {
    let h = header(env);
    let (w, ht) = (camera::WIDTH as u32, camera::HEIGHT as u32);
    p.color
        .put(&Image::rgb8(h.clone(), w, ht, hm.rgb_bytes()))?;
    p.depth.put(&Image::f32c1(h.clone(), w, ht, &hm.height))?;
    p.info.put(&heightmap_info(h.clone()))?;
    let tip = env.world().tip();
    let (q, _) = ur5e::inverse(&ur5e::tip_target(tip.x, tip.y, tip.z, tip.yaw), joints);
    *joints = q;
    p.state.put(&ArmState {
        header: h,
        ee_pose: Pose::from_xyz_yaw(tip.x, tip.y, tip.z, tip.yaw),
        gripper: env.world().suction() as u8 as f64,
        holding: env.world().held().is_some(),
        joint_names: ur5e::JOINT_NAMES.iter().map(|s| s.to_string()).collect(),
        joint_positions: q.to_vec(),
    })?;
    p.instruction.put(&StringMsg {
        data: env.instruction().to_string(),
    })
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

fn episode_event(env: &Env, reward: f64) -> EpisodeEvent {
    let ep = &env.episode;
    EpisodeEvent {
        header: header(env),
        task: ep.task.name().into(),
        instruction: ep.instruction.clone(),
        seed: ep.seed,
        step: env.steps_taken() as u32,
        max_steps: env.max_steps() as u32,
        reward,
        total_reward: env.total_reward(),
        done: env.is_done(),
        success: env.success(),
    }
}

fn diagnose(p: &Publishers, env: &Env, level: u8, what: &str, why: &str) -> Result<(), BusError> {
    tracing::warn!("sim: {what}: {why}");
    p.diagnostics.put(&DiagnosticArray {
        header: header(env),
        status: vec![DiagnosticStatus {
            level,
            name: "sim".into(),
            message: what.into(),
            hardware_id: String::new(),
            values: vec![KeyValue {
                key: "reason".into(),
                value: why.into(),
            }],
        }],
    })
}
