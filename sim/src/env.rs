//! A benchmark episode as an environment: observe, act with one pick-and-place, get the
//! reward, until success or the step limit.

use std::sync::Arc;

use loho_core::safety::{Rejection, SafetyFilter};
use loho_core::trajectory::{pick_place, PrimitiveParams, TrajectoryError};
use thiserror::Error;

use crate::camera::{self, Heightmap};
use crate::draw::Draw;
use crate::goal::{GoalStep, Goals, SUCCESS};
use crate::rgbd::{Cameras, Rig, Shot};
use crate::split::Split;
use crate::tasks::{self, Episode, TaskError, TaskId};
use crate::world::{Outcome, World};

/// Simulated seconds the scene may take to come to rest after an action (Ravens: 5 s).
pub const SETTLE_S: f64 = 5.0;

pub use loho_core::policy::{Action, Decision, Observation, Policy, PolicyError};

#[derive(Debug, Error)]
pub enum EnvError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("the episode is over")]
    Over,
    #[error("the policy gave no decision: {0}")]
    Policy(#[from] PolicyError),
}

/// Why an action was not executed (the step still counts).
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// A keypose ("pick" or "place") the safety filter refused: not finite, or outside
    /// the workspace (`configs/robots/ur5e.toml`).
    Unsafe(&'static str, Rejection),
    Trajectory(TrajectoryError),
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub reward: f64,
    pub total: f64,
    pub done: bool,
    pub success: bool,
    pub outcome: Result<Outcome, Rejected>,
}

pub struct Env {
    pub episode: Episode,
    goals: Goals,
    steps: usize,
    total: f64,
    pub params: PrimitiveParams,
    /// What every keypose passes before it is planned, as on the bus.
    filter: SafetyFilter,
    /// The sub-task of every step and the "done" text, in order; the re-picks among them.
    subtasks: Vec<String>,
    repicks: Repicks,
    /// Perspective cameras whose fused heightmap is the observation, or `None` for the
    /// ideal top-down heightmap.
    cameras: Option<Cameras>,
}

impl Env {
    pub fn new(task: TaskId, split: Split, seed: u64) -> Result<Self, EnvError> {
        Ok(Self::from_episode(tasks::generate(task, split, seed)?))
    }

    /// An environment over an episode built elsewhere (for example with another palette).
    pub fn from_episode(mut episode: Episode) -> Self {
        let robot = crate::world::robot();
        episode.world.settle(1.0);
        let mut goals = Goals::new(episode.steps.clone());
        let total = goals.update(&episode.world);
        Self {
            episode,
            goals,
            steps: 0,
            total,
            params: PrimitiveParams::for_robot(robot),
            filter: SafetyFilter::new(robot),
            subtasks: Vec::new(),
            repicks: Repicks::default(),
            cameras: None,
        }
    }

    pub fn world(&self) -> &World {
        &self.episode.world
    }
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.episode.world
    }
    pub fn instruction(&self) -> &str {
        &self.episode.instruction
    }
    pub fn max_steps(&self) -> usize {
        self.episode.max_steps
    }
    pub fn steps_taken(&self) -> usize {
        self.steps
    }
    pub fn total_reward(&self) -> f64 {
        self.total
    }
    pub fn success(&self) -> bool {
        self.total >= SUCCESS
    }
    pub fn is_done(&self) -> bool {
        self.goals.is_done(self.total) || self.steps >= self.episode.max_steps
    }
    /// The goal step being scored now (`None` once every step is complete).
    pub fn current_goal(&self) -> Option<&GoalStep> {
        self.goals.current_step()
    }

    /// Seen through `rig`'s perspective cameras (lit as this episode's seed draws it)
    /// instead of the ideal top-down camera.
    pub fn with_cameras(mut self, rig: Arc<Rig>) -> Self {
        let seed = self.episode.seed ^ ((self.episode.task as u64) << 48);
        self.cameras = Some(Cameras::new(rig, seed));
        self
    }

    /// The perspective pictures of the cameras, if the episode is seen through them.
    pub fn shoot(&self) -> Option<Vec<Shot>> {
        self.cameras.as_ref().map(|c| c.shoot(self.world()))
    }

    /// The heightmap a policy reads: ideal, or fused from the cameras.
    pub fn observe(&self) -> Heightmap {
        match &self.cameras {
            None => camera::render(&self.episode.world),
            Some(c) => c.observe(self.world()),
        }
    }

    /// What a policy sees of `frame` (its colour bytes `rgb`) at this point of the
    /// episode; the environment itself rides along for policies that read the scene.
    pub fn observation<'a>(&'a self, rgb: &'a [u8], frame: &'a Heightmap) -> Observation<'a> {
        Observation {
            instruction: self.instruction(),
            rgb,
            height: &frame.height,
            rows: camera::HEIGHT,
            cols: camera::WIDTH,
            total_reward: Some(self.total),
            step: self.steps,
            scene: Some(self),
        }
    }

    /// `policy`'s decision on the frame the camera shows now.
    pub fn ask(&self, policy: &mut dyn Policy) -> Result<Decision, PolicyError> {
        let frame = self.observe();
        let rgb = frame.rgb_bytes();
        policy.decide(&self.observation(&rgb, &frame))
    }

    /// Re-scores the world (after it was changed by hand).
    pub fn rescore(&mut self) -> f64 {
        self.total = self.goals.update(&self.episode.world);
        self.total
    }

    /// Executes one pick-and-place and scores the result.
    pub fn step(&mut self, action: &Action) -> Result<StepResult, EnvError> {
        if self.is_done() {
            return Err(EnvError::Over);
        }
        let outcome = self.execute(action);
        self.score_step(outcome)
    }

    /// Counts a step whose motion happened elsewhere (a driver streaming setpoints into
    /// [`World::servo`](crate::world::World::servo)) and scores the world as it is now.
    pub fn score_step(
        &mut self,
        outcome: Result<Outcome, Rejected>,
    ) -> Result<StepResult, EnvError> {
        if self.is_done() {
            return Err(EnvError::Over);
        }
        self.steps += 1;
        let before = self.total;
        self.total = self.goals.update(&self.episode.world);
        let picked = self.episode.world.take_picked();
        self.repicks.record(picked, self.total - before);
        Ok(StepResult {
            reward: self.total - before,
            total: self.total,
            done: self.is_done(),
            success: self.success(),
            outcome,
        })
    }

    fn execute(&mut self, a: &Action) -> Result<Outcome, Rejected> {
        for (name, k) in [("pick", a.pick.pose()), ("place", a.place.pose())] {
            self.filter
                .check_keypose(&k)
                .map_err(|r| Rejected::Unsafe(name, r))?;
        }
        let world = &mut self.episode.world;
        let sp = pick_place(world.tip(), a.pick.pose(), a.place.pose(), &self.params)
            .map_err(Rejected::Trajectory)?;
        Ok(world.execute(&sp, SETTLE_S))
    }
}

/// How one episode went.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeResult {
    pub task: TaskId,
    pub seed: u64,
    /// What the policy was told (an instruction file's words, if one was drawn).
    pub instruction: String,
    pub total_reward: f64,
    pub success: bool,
    pub steps: usize,
    /// The sub-task text of every step, in order.
    pub subtasks: Vec<String>,
    /// Steps that picked an object an earlier step had placed for reward ([`Repicks`]).
    pub repicks: usize,
}

/// Counts steps that pick an object which an earlier step had placed for reward: the
/// policy undoing its own progress, as B's "picks a block already in its bowl again".
/// By the object the tool took hold of, not by the name in the sub-task: two blocks of
/// one name (E's, K's) are two objects, and a name the policy got wrong still moved what
/// it touched.
#[derive(Debug, Default, Clone)]
struct Repicks {
    placed: Vec<usize>,
    count: usize,
}

impl Repicks {
    /// A scored step: the object it took hold of (none when the grasp failed) and its
    /// reward.
    fn record(&mut self, picked: Option<usize>, reward: f64) {
        let Some(object) = picked else {
            return;
        };
        if self.placed.contains(&object) {
            self.count += 1;
        }
        if reward > 0.0 {
            self.placed.push(object);
        }
    }
}

/// Runs a policy on one episode until success, the step limit, or the policy says done.
/// `cameras`: seen through these perspective cameras instead of the ideal heightmap.
pub fn run_episode(
    task: TaskId,
    split: Split,
    seed: u64,
    draw: &Draw,
    policy: &mut dyn Policy,
    cameras: Option<Arc<Rig>>,
) -> Result<EpisodeResult, EnvError> {
    let mut env = Env::from_episode(draw.episode(task, split, seed)?);
    if let Some(rig) = cameras {
        env = env.with_cameras(rig);
    }
    env.run(policy, |_, _| {})
}

impl Env {
    /// Lets `policy` act until success, the step limit, or it says done, calling
    /// `on_step` after every executed action.
    pub fn run(
        &mut self,
        policy: &mut dyn Policy,
        mut on_step: impl FnMut(&Action, &StepResult),
    ) -> Result<EpisodeResult, EnvError> {
        while !self.is_done() {
            match self.ask(policy)? {
                Decision::Done(text) => {
                    self.said(&text);
                    break;
                }
                Decision::Act(a) => {
                    self.said(&a.subtask);
                    let r = self.step(&a)?;
                    on_step(&a, &r);
                }
            }
        }
        Ok(self.result())
    }

    /// Records the sub-task the next step acts on, or the policy's "done": what
    /// [`EpisodeResult::subtasks`] lists.
    pub fn said(&mut self, subtask: &str) {
        self.subtasks.push(subtask.to_string());
    }

    /// How the episode went so far.
    pub fn result(&self) -> EpisodeResult {
        EpisodeResult {
            task: self.episode.task,
            seed: self.episode.seed,
            instruction: self.episode.instruction.clone(),
            total_reward: self.total_reward(),
            success: self.success(),
            steps: self.steps_taken(),
            subtasks: self.subtasks.clone(),
            repicks: self.repicks.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pick_of_an_object_placed_for_reward_is_a_repick() {
        let mut r = Repicks::default();
        let (red, blue, other_red) = (Some(0), Some(1), Some(2));
        r.record(blue, 0.0);
        r.record(red, 0.25);
        r.record(blue, 0.25);
        assert_eq!(r.count, 0, "blue failed once, then was placed: a retry");
        r.record(other_red, 0.25);
        assert_eq!(r.count, 0, "another object of red's name is not a re-pick");
        r.record(None, 0.0);
        r.record(red, 0.0);
        assert_eq!(r.count, 1, "red had been placed");
    }
}
