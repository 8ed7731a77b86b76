//! loho's runtime: what travels between nodes and how, and the nodes that need no
//! simulator and no model (controller, policy node around any [`policy::Policy`]).
//!
//! Main types: [`Bus`] (a typed zenoh session), [`Message`] (a ROS 2 message in CDR),
//! [`policy::Policy`], [`config::RuntimeConfig`] with its [`robot::Robot`],
//! [`safety::SafetyFilter`].
//!
//! - [`cdr`]: CDR little-endian encoding, the bytes ROS 2 puts on the wire;
//! - [`msg`]: every message type of the system, field for field as its ROS 2 definition;
//! - [`keys`]: key expressions under `loho/<robot>/`;
//! - [`bus`]: a typed zenoh bus (publishers, subscribers, latest-value slots, liveliness);
//! - [`trajectory`]: the pick-and-place primitive as timed end-effector setpoints, shared
//!   by the simulator and the controller that drives real arms;
//! - [`clock`]: the wall clock, and which clock a graph runs on;
//! - [`pacing`]: the control thread's deadline wait and real-time priority;
//! - [`config`]: `configs/runtime.toml` (control rate, watchdog, robot);
//! - [`robot`]: `configs/robots/*.toml` (workspace, limits, kinematics);
//! - [`safety`]: the filter every setpoint passes;
//! - [`diagnostics`]: what a node reports on `diagnostics`;
//! - [`policy`]: the [`Policy`](policy::Policy) trait every policy implements, LoHoVLA's
//!   closed loop, the policy node and a remote policy over `policy/infer`;
//! - [`controller`]: the controller node (chunks → safe setpoints at the control rate);
//! - [`record`]: every topic into an MCAP file with its ROS 2 schema;
//! - [`replay`]: a recording published back with its timing;
//! - [`perception`]: the top-down heightmap every policy reads, calibrated RGB-D cameras
//!   and their fusion into it (`loho heightmap`).

pub mod bus;
pub mod cdr;
pub mod clock;
pub mod config;
pub mod controller;
pub mod diagnostics;
pub mod keys;
pub mod msg;
pub mod msgdef;
pub mod pacing;
pub mod perception;
pub mod policy;
pub mod record;
pub mod replay;
pub mod ring;
pub mod rmw;
pub mod robot;
pub mod safety;
pub(crate) mod same_host;
pub mod secure;
pub mod trajectory;

pub use bus::{Bus, BusConfig, BusError, Qos};
pub use cdr::CdrError;
pub use msg::Message;
