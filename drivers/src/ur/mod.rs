//! Universal Robots e-Series (the benchmark's UR5e) over its published interfaces:
//!
//! - [`rtde`]: the RTDE wire protocol, both ends;
//! - [`program`]: loho's URScript control program and the registers it shares with the
//!   driver;
//! - [`frames`]: loho's tool poses ↔ the controller's TCP poses;
//! - [`driver`]: [`UrArm`], the [`Arm`](crate::Arm) that drives a controller
//!   (`loho driver ur`);
//! - [`emulator`]: a controller for tests and for deployment rehearsals without an arm
//!   (`loho ur-emulator`, `loho sim --arm ur-emulator`).

pub mod driver;
pub mod emulator;
pub mod frames;
pub mod program;
pub mod rtde;

pub use driver::{UrArm, UrConfig};
pub use emulator::{Emulator, EmulatorConfig};

/// The secondary interface's port: URScript programs in clear text.
pub const SECONDARY_PORT: u16 = 30002;
