//! The learned policy in LoHoVLA's closed loop (Algorithm 1 of the paper).
//!
//! The sub-task is written anew at the first step, after a step that earned reward, and
//! after more than [`MAX_FAILURES`] steps in a row that earned none; otherwise the model
//! keeps its sub-task and only samples a new action. The episode ends when the model
//! writes a "done …" sentence (or at the step limit, which the environment enforces).

use std::path::{Path, PathBuf};

use loho_models::vla::Output;
use loho_models::{Keypose, ModelError, Vla};
use loho_runtime::policy::{Decide, Observation};
use loho_runtime::trajectory::EePose;
use loho_sim::camera::Heightmap;
use loho_sim::{Action, Decision, Env, Policy};

/// Failed steps tolerated before the sub-task is written again (LoHoVLA's K).
pub const MAX_FAILURES: usize = 2;

/// The checkpoint `--policy default` loads: the one shipped in the repository.
pub fn default_checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/checkpoints/loho-tiny")
}

pub struct ModelPolicy {
    vla: Vla,
    subtask: Option<String>,
    failures: usize,
    last_total: f64,
    /// The outputs of every decision, for latency reports.
    pub outputs: Vec<Output>,
}

impl ModelPolicy {
    pub fn new(vla: Vla) -> Self {
        Self {
            vla,
            subtask: None,
            failures: 0,
            last_total: 0.0,
            outputs: Vec::new(),
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
    fn try_decide(
        &mut self,
        instruction: &str,
        total_reward: f64,
        rgb: &[u8],
        height: &[f32],
    ) -> Result<Decision, ModelError> {
        let replan = match &self.subtask {
            None => {
                self.vla.start(instruction)?;
                if self.vla.truncated {
                    tracing::warn!("instruction longer than the model's window; cut");
                }
                true
            }
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
        let keep = if replan { None } else { self.subtask.clone() };
        let out = self.vla.decide(rgb, height, keep.as_deref())?;
        self.subtask = Some(out.subtask.clone());
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
        self.outputs.push(out);
        Ok(d)
    }
}

impl Policy for ModelPolicy {
    fn decide(&mut self, env: &Env, obs: &Heightmap) -> Decision {
        match self.try_decide(
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
        self.subtask = None;
        self.failures = 0;
        self.last_total = 0.0;
    }
    fn decide(&mut self, obs: &Observation) -> Result<Decision, String> {
        self.try_decide(obs.instruction, obs.total_reward, obs.rgb, obs.height)
            .map_err(|e| e.to_string())
    }
}
