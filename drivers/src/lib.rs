//! Arm drivers of loho (docs/deploy.md): what it takes to put an arm on the bus.
//!
//! - [`Arm`]: the small trait a driver implements (read the measured state, take one
//!   end-effector setpoint, suction on/off, hold);
//! - [`node`]: the generic arm node wrapped around any [`Arm`]: `cmd/ee`, the watchdog,
//!   the e-stop latch, the workspace check, `state`, liveliness and diagnostics, so a
//!   driver holds none of them;
//! - [`sim_arm`] (feature `sim`, on by default): the simulator's arm, the first
//!   implementation, and the simulator's stage as the tool a UR emulator moves;
//! - [`ur`]: Universal Robots e-Series arms over RTDE, and a controller emulator.
//!
//! A driver does not know about chunks, policies or the episode: it follows setpoints,
//! and the node decides when it must not.

pub mod arm;
pub mod node;
#[cfg(feature = "sim")]
pub mod sim_arm;
pub mod ur;

pub use arm::{Arm, ArmError, ToolFollower};
pub use node::{ArmNodeConfig, NodeError};
#[cfg(feature = "sim")]
pub use sim_arm::SimArm;
