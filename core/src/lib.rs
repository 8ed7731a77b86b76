//! loho's ground floor: what every part of the system speaks, with no network under it.
//! Models, drivers and the simulator build on it; the bus (`loho-runtime`) sits above it.
//!
//! Main types: [`Message`] (a ROS 2 message in CDR), [`pose::EePose`] and
//! [`pose::Keypose`], [`robot::Robot`] with its [`kinematics::Kinematics`],
//! [`policy::Policy`] with its [`policy::Decision`], [`safety::SafetyFilter`].
//!
//! - [`cdr`]: CDR little-endian encoding, the bytes ROS 2 puts on the wire;
//! - [`msg`]: every message type of the system, field for field as its ROS 2 definition,
//!   and [`msgdef`], the definitions read into fields (MCAP schemas, type hashes);
//! - [`pose`]: end-effector poses and keyposes;
//! - [`robot`]: `configs/robots/*.toml` (workspace, limits, kinematics);
//! - [`kinematics`]: forward and inverse kinematics of a six-joint arm;
//! - [`config`]: `configs/runtime.toml` (control rate, watchdog, robot, each node's peers);
//!   [`config_file`]: what every config file shares (TOML, then checked);
//! - [`clock`]: the wall clock, and which clock a graph runs on;
//! - [`trajectory`]: the pick-and-place primitive as timed end-effector setpoints, shared
//!   by the simulator and the controller that drives real arms;
//! - [`safety`]: the filter every setpoint passes;
//! - [`policy`]: the [`Policy`](policy::Policy) trait every policy implements, LoHoVLA's
//!   closed loop, and the codec between decisions and their wire forms;
//! - [`subtask`]: the sub-task sentences, formatted and parsed;
//! - [`perception`]: the top-down heightmap every policy reads, calibrated RGB-D cameras
//!   and their fusion into it.

pub mod cdr;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod kinematics;
pub mod msg;
pub mod msgdef;
pub mod perception;
pub mod policy;
pub mod pose;
pub mod robot;
pub mod safety;
pub mod subtask;
pub mod trajectory;

pub use cdr::CdrError;
pub use msg::Message;
