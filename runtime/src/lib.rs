//! loho's runtime: how messages travel between nodes (zenoh, same-host rings, ROS 2 over
//! rmw_zenoh, TLS, recording), and the nodes that need no simulator and no model. What
//! travels (messages, poses, decisions, the `Policy` trait) is `loho-core`, below it.
//!
//! Main types: [`Bus`] (a typed zenoh session), [`node::Node`] (what every node is) and
//! [`node::run`] (the loop that runs it), the controller and the policy node
//! ([`policy::node`]) around any `loho_core::policy::Policy`.
//!
//! - [`keys`]: key expressions under `loho/<robot>/`;
//! - [`node`]: the one shape of a node and the loop that runs every node;
//! - [`bus`]: a typed zenoh bus (publishers, subscribers, latest-value slots, liveliness);
//! - [`ring`]: same-host frame rings in shared memory;
//! - [`rmw`]: ROS 2's keys, attachments and graph tokens on rmw_zenoh;
//! - [`secure`]: mutual TLS and access control;
//! - [`pacing`]: the control thread's deadline wait and real-time priority;
//! - [`diagnostics`]: what a node reports on `diagnostics`;
//! - [`policy`]: the policy node, a remote policy over `policy/infer`, openpi both ways;
//! - [`controller`]: the controller node (chunks → safe setpoints at the control rate);
//! - [`heightmap`]: the node fusing calibrated RGB-D cameras into the heightmap
//!   (`loho heightmap`);
//! - [`record`]: every topic into an MCAP file with its ROS 2 schema;
//! - [`replay`]: a recording published back with its timing.

pub mod bus;
pub mod controller;
pub mod diagnostics;
pub mod heightmap;
pub mod keys;
pub mod node;
pub mod pacing;
pub mod policy;
pub mod record;
pub mod replay;
pub mod ring;
pub mod rmw;
pub(crate) mod same_host;
pub mod secure;

pub use bus::{Bus, BusConfig, BusError, Qos};
