//! The learned policy in LoHoVLA's closed loop (Algorithm 1 of the paper).
//!
//! The sub-task is written anew at the first step, after a step that earned reward, and
//! after more than [`MAX_FAILURES`] steps in a row that earned none; otherwise the model
//! keeps its sub-task and only samples a new action. The episode ends when the model
//! writes a "done …" sentence (or at the step limit, which the environment enforces).

use std::path::{Path, PathBuf};
use std::time::Duration;

use loho_models::vla::Output;
use loho_models::{Keypose, ModelError, Vla};
use loho_runtime::msg::{ActionChunk, Header, Image, InferRequest};
use loho_runtime::policy::{chunk_action, Decide, Observation};
use loho_runtime::trajectory::EePose;
use loho_runtime::{keys, Bus, BusError};
use loho_sim::camera::{self, Heightmap};
use loho_sim::{Action, Decision, Env, Policy};

/// Failed steps tolerated before the sub-task is written again (LoHoVLA's K).
pub const MAX_FAILURES: usize = 2;

/// The checkpoint `--policy default` loads: the one shipped in the repository.
pub fn default_checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/checkpoints/loho-tiny")
}

/// LoHoVLA's closed loop: when the sub-task is written anew and when it is kept. Kept
/// apart from the model so a caller of a remote policy (`policy/infer`) runs the same loop.
#[derive(Debug, Clone, Default)]
pub struct ClosedLoop {
    subtask: Option<String>,
    failures: usize,
    last_total: f64,
}

impl ClosedLoop {
    /// The sub-task to keep at this step given the reward so far, or `None` to write a
    /// new one.
    pub fn keep(&mut self, total_reward: f64) -> Option<String> {
        let replan = match &self.subtask {
            None => true,
            Some(_) if total_reward > self.last_total + 1e-9 => true,
            Some(_) => {
                self.failures += 1;
                self.failures > MAX_FAILURES
            }
        };
        if replan {
            self.failures = 0;
        }
        self.last_total = total_reward;
        if replan {
            None
        } else {
            self.subtask.clone()
        }
    }

    /// Records the sub-task the step acted on.
    pub fn acted(&mut self, decision: &Decision) {
        self.subtask = Some(match decision {
            Decision::Act(a) => a.subtask.clone(),
            Decision::Done(text) => text.clone(),
        });
    }
}

pub struct ModelPolicy {
    vla: Vla,
    closed_loop: ClosedLoop,
    /// The instruction whose tokens are in the model's cache.
    started: Option<String>,
    /// The latest decision's output, for latency reports.
    pub last: Option<Output>,
}

impl ModelPolicy {
    pub fn new(vla: Vla) -> Self {
        Self {
            vla,
            closed_loop: ClosedLoop::default(),
            started: None,
            last: None,
        }
    }

    pub fn load(dir: &Path, seed: u64) -> Result<Self, ModelError> {
        Ok(Self::new(Vla::load(dir, seed)?))
    }

    pub fn vla_mut(&mut self) -> &mut Vla {
        &mut self.vla
    }

    /// One decision of the closed loop from what any node can see: the instruction, the
    /// reward so far and the frame.
    fn closed_loop_step(
        &mut self,
        instruction: &str,
        total_reward: f64,
        rgb: &[u8],
        height: &[f32],
    ) -> Result<Decision, ModelError> {
        let keep = self.closed_loop.keep(total_reward);
        let d = self.act(instruction, rgb, height, keep.as_deref())?;
        self.closed_loop.acted(&d);
        Ok(d)
    }

    /// One model call: writes a sub-task (or re-reads `keep`) and samples its keyposes.
    fn act(
        &mut self,
        instruction: &str,
        rgb: &[u8],
        height: &[f32],
        keep: Option<&str>,
    ) -> Result<Decision, ModelError> {
        if self.started.as_deref() != Some(instruction) {
            self.started = None;
            self.vla.start(instruction)?;
            if self.vla.truncated {
                tracing::warn!("instruction longer than the model's window; cut");
            }
            self.started = Some(instruction.to_string());
        }
        let out = self.vla.decide(rgb, height, keep)?;
        let pose = |k: &Keypose| EePose::new(k.x, k.y, k.z, k.yaw);
        let d = match &out.keyposes[..] {
            [] => Decision::Done(out.subtask.clone()),
            [pick, place] => Decision::Act(Action {
                subtask: out.subtask.clone(),
                pick: pose(pick),
                place: pose(place),
            }),
            other => {
                return Err(ModelError::Data(format!(
                    "the model gives {} keyposes; pick-and-place needs 2",
                    other.len()
                )))
            }
        };
        self.last = Some(out);
        Ok(d)
    }
}

impl Policy for ModelPolicy {
    fn decide(&mut self, env: &Env, obs: &Heightmap) -> Decision {
        match self.closed_loop_step(
            env.instruction(),
            env.total_reward(),
            &obs.rgb_bytes(),
            &obs.height,
        ) {
            Ok(d) => d,
            Err(e) => {
                // A model that cannot decide stops the episode: nothing moves.
                tracing::error!("policy: {e}");
                Decision::Done(format!("error: {e}"))
            }
        }
    }
}

impl Decide for ModelPolicy {
    fn reset(&mut self) {
        self.closed_loop = ClosedLoop::default();
    }
    fn decide(&mut self, obs: &Observation) -> Result<Decision, String> {
        self.closed_loop_step(obs.instruction, obs.total_reward, obs.rgb, obs.height)
            .map_err(|e| e.to_string())
    }
    fn infer(
        &mut self,
        obs: &Observation,
        keep: Option<&str>,
        seed: u64,
    ) -> Result<Decision, String> {
        self.vla.reseed(seed);
        self.act(obs.instruction, obs.rgb, obs.height, keep)
            .map_err(|e| e.to_string())
    }
}

/// A policy served by a policy node elsewhere: each decision is one `policy/infer` query,
/// and the closed loop runs on this side (the server keeps nothing per caller).
pub struct RemotePolicy {
    bus: Bus,
    closed_loop: ClosedLoop,
    seed: u64,
    timeout: Duration,
    /// Why the last query got no usable answer (the episode stopped there).
    pub error: Option<BusError>,
}

impl RemotePolicy {
    /// Action samples are seeded from `seed` and the step, so an episode is reproducible
    /// whichever server answers.
    pub fn new(bus: Bus, seed: u64, timeout: Duration) -> Self {
        Self {
            bus,
            closed_loop: ClosedLoop::default(),
            seed,
            timeout,
            error: None,
        }
    }

    fn query(&mut self, env: &Env, obs: &Heightmap) -> Result<Decision, BusError> {
        let keep = self.closed_loop.keep(env.total_reward());
        let (w, h) = (camera::WIDTH as u32, camera::HEIGHT as u32);
        let header = Header::new(env.steps_taken() as f64, "world");
        let request = InferRequest {
            instruction: env.instruction().to_string(),
            color: Image::rgb8(header.clone(), w, h, obs.rgb_bytes()),
            depth: Image::f32c1(header, w, h, &obs.height),
            keep_subtask: keep.unwrap_or_default(),
            seed: self.seed.wrapping_mul(1_000_003) ^ env.steps_taken() as u64,
        };
        let chunk: ActionChunk = self.bus.query(keys::INFER, &request, self.timeout)?;
        let d = if chunk.keyposes.is_empty() {
            Decision::Done(chunk.subtask)
        } else {
            Decision::Act(chunk_action(&chunk).map_err(|reason| BusError::Refused {
                key: keys::INFER.into(),
                reason,
            })?)
        };
        self.closed_loop.acted(&d);
        Ok(d)
    }
}

impl Policy for RemotePolicy {
    fn decide(&mut self, env: &Env, obs: &Heightmap) -> Decision {
        self.query(env, obs).unwrap_or_else(|e| {
            // No answer, no motion: the episode stops here and the error is kept.
            let d = Decision::Done(format!("error: {e}"));
            self.error = Some(e);
            d
        })
    }
}
