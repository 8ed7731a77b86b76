//! The learned model as a [`Policy`]: LoHoVLA's [`ClosedLoop`] around [`Vla`] decisions,
//! for the simulator's evaluation and the policy node alike.

use std::path::{Path, PathBuf};

use candle_core::Device;
use loho_core::policy::{Action, ClosedLoop, Decision, Observation, Plan, Policy, PolicyError};

use crate::vla::Output;
use crate::{ModelError, Vla};

/// The checkpoint `--policy default` loads: the one shipped in the repository.
pub fn default_checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints/loho-open")
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

    pub fn load(dir: &Path, seed: u64, device: &Device) -> Result<Self, ModelError> {
        Ok(Self::new(Vla::load(dir, seed, device)?))
    }

    pub fn vla_mut(&mut self) -> &mut Vla {
        &mut self.vla
    }

    /// One model call: writes a sub-task (or re-reads `keep`) and samples its keyposes.
    fn act(&mut self, obs: &Observation, plan: &Plan) -> Result<Decision, ModelError> {
        if self.started.as_deref() != Some(obs.instruction) {
            self.started = None;
            self.vla.start(obs.instruction)?;
            if self.vla.truncated {
                tracing::warn!("instruction longer than the model's window; cut");
            }
            self.started = Some(obs.instruction.to_string());
        }
        let out = self.vla.decide(obs.rgb, obs.height, plan)?;
        let d = match &out.keyposes[..] {
            [] => Decision::Done(out.subtask.clone()),
            // The primitive's roles by position: suction on at the first, off at the second.
            [pick, place] => Decision::Act(Action::pick_place(
                out.subtask.clone(),
                pick.pose(),
                place.pose(),
            )),
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
    fn reset(&mut self) {
        self.closed_loop = ClosedLoop::default();
    }

    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let plan = self.closed_loop.plan(obs.total_reward);
        let d = self
            .act(obs, &plan)
            .map_err(|e| PolicyError(e.to_string()))?;
        self.closed_loop.acted(&d);
        Ok(d)
    }

    fn infer(
        &mut self,
        obs: &Observation,
        plan: &Plan,
        seed: u64,
    ) -> Result<Decision, PolicyError> {
        self.vla.reseed(seed);
        self.act(obs, plan).map_err(|e| PolicyError(e.to_string()))
    }
}
