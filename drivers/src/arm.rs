//! The [`Arm`] trait: the few things the arm node asks of any arm, in the spirit of
//! openrr's `arci` (one small trait per concern; this one is an end-effector-servoed arm
//! with a suction tool).

use loho_core::msg::ArmState;
use loho_core::pose::EePose;
use thiserror::Error;

/// Why an arm did not do what it was asked. The arm node reports it on `diagnostics` and
/// holds.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ArmError {
    /// The connection to the arm is gone (a real arm's controller stopped answering).
    #[error("arm disconnected: {0}")]
    Disconnected(String),
    /// The arm refused the request (protective stop, out of reach, …).
    #[error("arm refused: {0}")]
    Refused(String),
}

/// An arm whose tool the node servos in Cartesian space.
///
/// Every method returns quickly: a driver with slow I/O buffers it. Setpoints reach
/// [`servo`](Arm::servo) only after the node has checked them (finite, inside the
/// workspace, e-stop clear).
pub trait Arm: Send {
    /// The measured state: tool pose, suction, what it holds, joints, stamped with the
    /// arm's clock (s), and `fault`: why the arm cannot move now (empty when it can).
    fn state(&mut self) -> Result<ArmState, ArmError>;

    /// Move the tool toward `target`, the setpoint of time `stamp` (s): the newest one
    /// wins. A simulated arm in lockstep advances its physics to `stamp`.
    fn servo(&mut self, target: EePose, stamp: f64) -> Result<(), ArmError>;

    /// Switch the suction on or off.
    fn suction(&mut self, on: bool) -> Result<(), ArmError>;

    /// Stop and hold the pose the tool has now (watchdog, end of a chunk).
    fn hold(&mut self) -> Result<(), ArmError>;

    /// The e-stop: stop as hard as the arm may, and hold. An arm without a harder stop
    /// holds.
    fn estop(&mut self) -> Result<(), ArmError> {
        self.hold()
    }
}

/// A tool moved by an emulated controller rather than by the arm node: the simulator's
/// tool behind a UR emulator, which follows the emulated arm's TCP and suction.
pub trait ToolFollower: Send + Sync {
    /// Where the tool is now: the emulated arm starts there.
    fn tip(&self) -> EePose;

    /// The tool goes toward `target` (`None`: it holds where it is), suction `on`.
    fn follow(&self, target: Option<EePose>, on: bool);
}
