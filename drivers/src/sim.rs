//! The simulator's arm as an [`Arm`]: setpoints go into the [`SharedStage`] the scene
//! node steps; the state is the tool of that world, with UR5e joint angles from inverse
//! kinematics (the simulator moves the tip, not the joints).
//!
//! In lockstep a setpoint advances physics to its stamp and publishes `clock`, which
//! the controller waits for before its next setpoint (ROS 2's `use_sim_time`).

use loho_runtime::bus::{BusError, Publisher};
use loho_runtime::msg::{ArmState, Clock, Header, Time};
use loho_runtime::trajectory::EePose;
use loho_sim::arm::SharedStage;
use loho_sim::node::FRAME;
use loho_sim::ur5e;

use crate::arm::{Arm, ArmError};

pub struct SimArm {
    stage: SharedStage,
    /// In lockstep: where the advanced time goes.
    clock: Option<Publisher<Clock>>,
    /// The last inverse-kinematics solution, the seed of the next (continuous joints).
    joints: [f64; 6],
}

impl SimArm {
    /// An arm servoed in real time: the scene node's physics moves it.
    pub fn realtime(stage: SharedStage) -> Self {
        Self {
            stage,
            clock: None,
            joints: ur5e::home(),
        }
    }

    /// An arm whose setpoints advance physics to their stamps, publishing the time on
    /// `clock`.
    pub fn lockstep(stage: SharedStage, clock: Publisher<Clock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::realtime(stage)
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
        let (q, _) = ur5e::inverse(
            &ur5e::tip_target(tip.x, tip.y, tip.z, tip.yaw),
            &self.joints,
        );
        self.joints = q;
        Ok(ArmState {
            header: Header::new(t, FRAME),
            ee_pose: tip.to_pose(),
            gripper: suction as u8 as f64,
            holding,
            joint_names: ur5e::params().joint_names.clone(),
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
