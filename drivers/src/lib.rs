//! Arm drivers of loho (DESIGN §8): what it takes to put an arm on the bus.
//!
//! - [`Arm`]: the small trait a driver implements (read the measured state, take one
//!   end-effector setpoint, suction on/off, hold);
//! - [`node`]: the generic arm node wrapped around any [`Arm`]: `cmd/ee`, the watchdog,
//!   the e-stop latch, the workspace check, `state`, liveliness and diagnostics, so a
//!   driver holds none of them;
//! - [`sim`]: the simulator's arm, the first implementation;
//! - [`ur`]: Universal Robots e-Series arms over RTDE, and a controller emulator.
//!
//! A driver does not know about chunks, policies or the episode: it follows setpoints,
//! and the node decides when it must not.

pub mod arm;
pub mod node;
pub mod sim;
pub mod ur;

pub use arm::{Arm, ArmError};
pub use node::{ArmNodeConfig, NodeError};
pub use sim::SimArm;
