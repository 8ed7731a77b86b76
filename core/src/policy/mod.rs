//! The one policy idea of loho: what a policy sees ([`Observation`]), what it decides
//! ([`Decision`]), the trait every policy implements ([`Policy`]), and LoHoVLA's closed
//! loop ([`ClosedLoop`]) that the learned policy runs wherever it runs.
//!
//! The same trait serves the simulator's in-process evaluation (`loho_sim::Env::run`) and
//! the policy node (`loho_runtime::policy::node`), so the learned model, a remote policy
//! (`loho_runtime::policy::remote`), the oracle and the random baseline are
//! interchangeable. The trait lives here, with no candle and no network in sight, so that
//! a controller-only build does not pull the model: `loho-models` implements it.
//! [`codec`] turns decisions and observations into their wire forms and back.

pub mod codec;
mod renamed;

pub use renamed::Renamed;

use std::any::Any;

use thiserror::Error;

use crate::pose::{EePose, Keypose};

/// Failed steps tolerated before the sub-task is written again (LoHoVLA's K). Chosen on
/// the val split (docs/model.md): 0, with the words sampled when written again, beats
/// LoHoVLA's 2 with greedy words.
pub const MAX_FAILURES: usize = 0;

/// How the next decision gets its sub-task.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Re-read this sub-task and only sample a new action.
    Keep(String),
    /// Write it (first step, after progress, or where nothing scores): greedily.
    Write,
    /// Write it again after failed steps: sampling the words, since the greedy text is
    /// the one that just failed.
    Rewrite,
}

/// One pick-and-place decision: the sub-task written and the primitive's two keyposes,
/// suction on at the pick and off at the place.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub subtask: String,
    pub pick: Keypose,
    pub place: Keypose,
}

impl Action {
    /// The pick-and-place from `pick` (suction on) to `place` (suction off).
    pub fn pick_place(subtask: impl Into<String>, pick: EePose, place: EePose) -> Self {
        Self {
            subtask: subtask.into(),
            pick: Keypose::new(pick, true),
            place: Keypose::new(place, false),
        }
    }

    /// The pick-and-place in a sequence of keyposes: the first with suction on and the
    /// first after it with suction off (a chunk's two, openpi's rows), or why there is none.
    pub fn from_keyposes(subtask: impl Into<String>, k: &[Keypose]) -> Result<Self, String> {
        let pick = k.iter().position(|k| k.suction);
        let place = pick.and_then(|p| k[p..].iter().position(|k| !k.suction).map(|q| p + q));
        match (pick, place) {
            (Some(p), Some(q)) => Ok(Self {
                subtask: subtask.into(),
                pick: k[p],
                place: k[q],
            }),
            _ => Err("no keypose with suction on followed by one with it off".into()),
        }
    }

    /// Its two keyposes in the order the primitive visits them.
    pub fn keyposes(&self) -> [Keypose; 2] {
        [self.pick, self.place]
    }
}

/// What a policy decides at a decision point.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Act(Action),
    /// The policy says the task is complete (its "completed" sentence).
    Done(String),
}

impl Decision {
    /// The sub-task text the decision carries.
    pub fn subtask(&self) -> &str {
        match self {
            Decision::Act(a) => &a.subtask,
            Decision::Done(text) => text,
        }
    }

    /// Its keyposes in order: the pick and the place, none for "done".
    pub fn keyposes(&self) -> Vec<Keypose> {
        match self {
            Decision::Act(a) => a.keyposes().to_vec(),
            Decision::Done(_) => vec![],
        }
    }
}

/// A frame as a policy reads it and datasets store it: RGB bytes and heights (m) above
/// the table, row-major, `rows` × `cols` (from a colour + depth pair:
/// [`Frame::from_images`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub rgb: Vec<u8>,
    pub height: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl Frame {
    /// What a policy sees of it, told the instruction and, where something scores the
    /// steps, the reward so far.
    pub fn observation<'a>(
        &'a self,
        instruction: &'a str,
        total_reward: Option<f64>,
        step: usize,
    ) -> Observation<'a> {
        Observation {
            instruction,
            rgb: &self.rgb,
            height: &self.height,
            rows: self.rows,
            cols: self.cols,
            total_reward,
            step,
            scene: None,
        }
    }
}

/// What a policy sees at a decision point.
pub struct Observation<'a> {
    pub instruction: &'a str,
    /// Row-major `rgb8`, `rows` × `cols`.
    pub rgb: &'a [u8],
    /// Height above the table (m), row-major.
    pub height: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    /// Reward earned so far in the episode; `None` where nothing scores the steps (a
    /// robot, or an evaluation run with `--feedback none`).
    pub total_reward: Option<f64>,
    /// Steps taken so far in the episode.
    pub step: usize,
    /// The simulator's own state, for a policy that reads it instead of the frame (the
    /// oracle). `None` wherever the observation came over the bus.
    pub scene: Option<&'a dyn Any>,
}

/// Why a policy gave no decision. Nothing moves on one.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A policy: the learned model in its closed loop, a remote one, the oracle, anything.
pub trait Policy: Send {
    /// Forgets the episode (a new instruction begins).
    fn reset(&mut self) {}

    /// The decision at this point of the episode.
    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError>;

    /// Whether it reads [`Observation::scene`] (the oracle): a node in the simulator's
    /// process then lends it the scene at each decision.
    fn reads_scene(&self) -> bool {
        false
    }

    /// One decision outside the policy's own closed loop (a `policy/infer` query), its
    /// sub-task as `plan` says, sampling with `seed`. Only a policy that can be served
    /// implements it.
    fn infer(
        &mut self,
        obs: &Observation,
        plan: &Plan,
        seed: u64,
    ) -> Result<Decision, PolicyError> {
        let _ = (obs, plan, seed);
        Err(PolicyError(
            "this policy does not serve policy/infer".into(),
        ))
    }
}

/// `policy` as it runs on a robot, where nothing scores its steps: it is told no reward,
/// whatever the simulator measured (`loho eval --feedback none`).
pub struct Unscored(pub Box<dyn Policy>);

impl Policy for Unscored {
    fn reset(&mut self) {
        self.0.reset();
    }

    fn reads_scene(&self) -> bool {
        self.0.reads_scene()
    }

    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        self.0.decide(&Observation {
            total_reward: None,
            ..*obs
        })
    }

    fn infer(
        &mut self,
        obs: &Observation,
        plan: &Plan,
        seed: u64,
    ) -> Result<Decision, PolicyError> {
        self.0.infer(obs, plan, seed)
    }
}

/// LoHoVLA's closed loop (Algorithm 1 of the paper): the sub-task is written anew at the
/// first step, after a step that earned reward, and after more than [`MAX_FAILURES`]
/// steps in a row that earned none (then sampled: [`Plan::Rewrite`]); otherwise it is
/// kept and only a new action sampled.
/// Without a reward (a robot: nothing scores its steps) there is no failure to count, so
/// the sub-task is written anew at every decision from what the camera shows, instead of
/// taking every step for a failure and repeating one sub-task three times.
/// Kept apart from the model so a caller of a remote policy runs the same loop.
#[derive(Debug, Clone, Default)]
pub struct ClosedLoop {
    subtask: Option<String>,
    failures: usize,
    last_total: f64,
}

impl ClosedLoop {
    /// How this step gets its sub-task, given the reward so far (if anything scores).
    pub fn plan(&mut self, total_reward: Option<f64>) -> Plan {
        let Some(total_reward) = total_reward else {
            self.failures = 0;
            return Plan::Write;
        };
        let progress = total_reward > self.last_total + 1e-9;
        self.last_total = total_reward;
        let Some(kept) = &self.subtask else {
            return Plan::Write;
        };
        if progress {
            self.failures = 0;
            return Plan::Write;
        }
        self.failures += 1;
        if self.failures > MAX_FAILURES {
            self.failures = 0;
            return Plan::Rewrite;
        }
        Plan::Keep(kept.clone())
    }

    /// Records the sub-task the step acted on.
    pub fn acted(&mut self, decision: &Decision) {
        self.subtask = Some(decision.subtask().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_loop_writes_on_reward_and_rewrites_after_k_failures() {
        let mut l = ClosedLoop::default();
        let act = |s: &str| Decision::Done(s.into());
        assert_eq!(l.plan(Some(0.0)), Plan::Write);
        l.acted(&act("a"));
        // K failures keep the sub-task; the next one has it written again, sampled.
        let mut kept = 0;
        let next = loop {
            match l.plan(Some(0.0)) {
                Plan::Keep(text) if kept < 10 => {
                    assert_eq!(text, "a");
                    kept += 1;
                }
                other => break other,
            }
        };
        assert_eq!((kept, next), (MAX_FAILURES, Plan::Rewrite));
        l.acted(&act("b"));
        // Reward: a new one at once, greedily.
        assert_eq!(l.plan(Some(0.2)), Plan::Write);
        l.acted(&act("c"));
        assert_ne!(l.plan(Some(0.2)), Plan::Write, "no progress this time");
    }

    #[test]
    fn without_a_reward_the_closed_loop_writes_at_every_decision() {
        let mut l = ClosedLoop::default();
        for s in ["a", "b", "c", "d"] {
            assert_eq!(l.plan(None), Plan::Write);
            l.acted(&Decision::Done(s.into()));
        }
    }
}
