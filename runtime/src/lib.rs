//! loho's runtime: what travels between nodes and how.
//!
//! - [`cdr`]: CDR little-endian encoding, the bytes ROS 2 puts on the wire;
//! - [`msg`]: every message type of the system, field for field as its ROS 2 definition;
//! - [`keys`]: key expressions under `loho/<robot>/`;
//! - [`bus`]: a typed zenoh bus (publishers, subscribers, latest-value slots, liveliness);
//! - [`trajectory`]: the pick-and-place primitive as timed end-effector setpoints, shared
//!   by the simulator and the controller that drives real arms;
//! - [`config`]: `configs/runtime.toml` (control rate, limits, watchdog);
//! - [`safety`]: the filter every setpoint passes;
//! - [`diagnostics`]: what a node reports on `diagnostics`;
//! - [`policy`]: the [`Policy`](policy::Policy) trait every policy implements, LoHoVLA's
//!   closed loop, the policy node and a remote policy over `policy/infer`;
//! - [`controller`]: the controller node (chunks → safe setpoints at the control rate);
//! - [`record`]: every topic into an MCAP file with its ROS 2 schema.

pub mod bus;
pub mod cdr;
pub mod config;
pub mod controller;
pub mod diagnostics;
pub mod keys;
pub mod msg;
pub mod policy;
pub mod record;
pub mod safety;
pub mod trajectory;

pub use bus::{Bus, BusConfig, BusError, Qos};
pub use cdr::CdrError;
pub use msg::Message;

/// Nanoseconds since the Unix epoch on this machine's clock: MCAP log times and the
/// stamps of wall-clock nodes (processes on one machine share it).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// [`wall_ns`] in seconds.
pub fn wall_s() -> f64 {
    wall_ns() as f64 * 1e-9
}
