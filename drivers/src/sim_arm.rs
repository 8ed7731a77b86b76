//! The simulator's arm as an [`Arm`], and its stage as the [`ToolFollower`] a UR emulator
//! moves: setpoints go into the [`SharedStage`] the scene node steps; the state is the
//! tool of that world, with the robot's joint angles from inverse kinematics (the
//! simulator moves the tip, not the joints).
//!
//! In lockstep a setpoint advances physics to its stamp and publishes `clock`, which
//! the controller waits for before its next setpoint (ROS 2's `use_sim_time`).

use loho_core::kinematics::{tip_target, Kinematics};
use loho_core::msg::{ArmState, Clock, Header, Time};
use loho_core::pose::EePose;
use loho_runtime::bus::{BusError, Publisher};
use loho_sim::arm::SharedStage;
use loho_sim::node::FRAME;

use crate::arm::{Arm, ArmError, ToolFollower};

pub struct SimArm {
    stage: SharedStage,
    /// In lockstep: where the advanced time goes.
    clock: Option<Publisher<Clock>>,
    /// The arm whose joint angles `state` reports.
    kinematics: Kinematics,
    /// The last inverse-kinematics solution, the seed of the next (continuous joints).
    joints: [f64; 6],
}

impl SimArm {
    /// An arm servoed in real time: the scene node's physics moves it; its joints are
    /// those of `kinematics`.
    pub fn realtime(stage: SharedStage, kinematics: &Kinematics) -> Self {
        Self {
            stage,
            clock: None,
            joints: kinematics.home,
            kinematics: kinematics.clone(),
        }
    }

    /// An arm whose setpoints advance physics to their stamps, publishing the time on
    /// `clock`.
    pub fn lockstep(stage: SharedStage, kinematics: &Kinematics, clock: Publisher<Clock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::realtime(stage, kinematics)
        }
    }
}

fn bus_error(e: BusError) -> ArmError {
    ArmError::Disconnected(format!("clock: {e}"))
}

impl Arm for SimArm {
    fn state(&mut self) -> Result<ArmState, ArmError> {
        let (tip, suction, holding, t) = {
            let s = self.stage.lock();
            let w = s.env.world();
            (w.tip(), w.suction(), w.held().is_some(), w.time())
        };
        let (q, _) = self
            .kinematics
            .inverse(&tip_target(tip.x, tip.y, tip.z, tip.yaw), &self.joints);
        self.joints = q;
        Ok(ArmState {
            header: Header::new(t, FRAME),
            ee_pose: tip.to_pose(),
            gripper: suction as u8 as f64,
            holding,
            joint_names: self.kinematics.joint_names.clone(),
            joint_positions: q.to_vec(),
            fault: String::new(),
        })
    }

    fn servo(&mut self, target: EePose, stamp: f64) -> Result<(), ArmError> {
        let mut s = self.stage.lock();
        s.set_target(Some(target));
        let Some(clock) = &self.clock else {
            return Ok(());
        };
        s.advance_to(stamp);
        let t = s.env.world().time();
        drop(s);
        clock
            .put(&Clock {
                clock: Time::from_secs_f64(t),
            })
            .map_err(bus_error)
    }

    fn suction(&mut self, on: bool) -> Result<(), ArmError> {
        self.stage.lock().set_suction(on);
        Ok(())
    }

    fn hold(&mut self) -> Result<(), ArmError> {
        let mut s = self.stage.lock();
        let on = s.env.world().suction();
        s.set_target(None);
        s.set_suction(on);
        Ok(())
    }
}

/// The simulator's tool behind a UR emulator: it follows the emulated TCP and suction.
impl ToolFollower for SharedStage {
    fn tip(&self) -> EePose {
        self.lock().env.world().tip()
    }

    fn follow(&self, target: Option<EePose>, on: bool) {
        let mut s = self.lock();
        s.set_target(target);
        s.set_suction(on);
    }
}
