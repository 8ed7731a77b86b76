//! loho's runtime: what travels between nodes and how.
//!
//! - [`cdr`]: CDR little-endian encoding, the bytes ROS 2 puts on the wire;
//! - [`msg`]: every message type of the system, field for field as its ROS 2 definition;
//! - [`keys`]: key expressions under `loho/<robot>/`;
//! - [`bus`]: a typed zenoh bus (publishers, subscribers, latest-value slots, liveliness);
//! - [`trajectory`]: the pick-and-place primitive as timed end-effector setpoints, shared
//!   by the simulator and the controller that drives real arms.

pub mod bus;
pub mod cdr;
pub mod keys;
pub mod msg;
pub mod trajectory;

pub use bus::{Bus, BusConfig, BusError, Qos};
pub use cdr::CdrError;
pub use msg::Message;
