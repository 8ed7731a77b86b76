//! The simulated arm's side of the world: the setpoint the tool servos to and its suction,
//! in one [`Stage`] with the episode. The scene node ([`node`](crate::node)) steps physics,
//! renders and scores it; the arm driver (`loho_drivers::sim_arm::SimArm`, behind the generic
//! arm node) takes setpoints into it. Both hold the same [`SharedStage`], so there is one
//! `World`, and a lockstep episode stays one deterministic sequence of physics steps.

use std::sync::{Arc, Mutex, MutexGuard};

use loho_core::pose::EePose;
use loho_core::robot::Limits;

use crate::env::Env;
use crate::world::DT;

/// The episode with the arm's commanded setpoint.
pub struct Stage {
    pub env: Env,
    /// Where the tool is servoing to; `None` holds it where it is.
    target: Option<EePose>,
    suction: bool,
}

/// One stage for the scene node and the arm driver.
#[derive(Clone)]
pub struct SharedStage(Arc<Mutex<Stage>>);

impl SharedStage {
    pub fn new(env: Env) -> Self {
        let suction = env.world().suction();
        Self(Arc::new(Mutex::new(Stage {
            env,
            target: None,
            suction,
        })))
    }

    /// The stage, for one short piece of work (a node never holds it across a wait). A
    /// node that panicked holding it leaves the stage as it was: still usable.
    pub fn lock(&self) -> MutexGuard<'_, Stage> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Stage {
    /// Servo toward `pose` (`None`: hold where the tool is).
    pub fn set_target(&mut self, pose: Option<EePose>) {
        self.target = pose;
    }

    pub fn set_suction(&mut self, on: bool) {
        self.suction = on;
    }

    /// Whether the arm holds still: no setpoint to servo to (the arm node holds it once
    /// setpoints stop).
    pub fn holding(&self) -> bool {
        self.target.is_none()
    }

    /// Real time: one physics step, the tool moving toward the target at most at the
    /// speed limits (or holding).
    pub fn physics_step(&mut self, limits: &Limits) {
        let tip = self.env.world().tip();
        let goal = self.target.map_or(tip, |g| toward(tip, g, limits));
        let suction = self.suction;
        self.servo(goal, suction);
    }

    /// Lockstep: physics from now to `t` (s), the tool in a straight line to the target,
    /// at least one step, so every command acts.
    pub fn advance_to(&mut self, t: f64) {
        let Some(goal) = self.target else {
            return;
        };
        let now = self.env.world().time();
        // Up to or just past `t`: the controller waits for the clock to reach it.
        let n = ((t - now) / DT - 1e-6).ceil().clamp(1.0, 2400.0) as usize;
        let from = self.env.world().tip();
        for i in 1..=n {
            let pose = from.lerp(&goal, i as f64 / n as f64);
            self.servo(pose, self.suction);
        }
    }

    fn servo(&mut self, pose: EePose, suction: bool) {
        self.env.world_mut().servo(pose, suction);
    }
}

/// The pose one physics step from `tip` toward `goal` under the speed limits.
fn toward(tip: EePose, goal: EePose, limits: &Limits) -> EePose {
    let d = ((goal.x - tip.x).powi(2) + (goal.y - tip.y).powi(2) + (goal.z - tip.z).powi(2)).sqrt();
    let s_lin = limits.max_speed * DT / d.max(1e-12);
    let s_yaw = limits.max_yaw_speed * DT / (goal.yaw - tip.yaw).abs().max(1e-12);
    tip.lerp(&goal, s_lin.min(s_yaw).min(1.0))
}
