//! The LoHoRavens tabletop, rebuilt in Rust (docs/simulator.md).
//!
//! Main types: [`Env`] (an episode: observe, act, score), [`TaskId`], [`Oracle`],
//! [`world::World`], [`arm::SharedStage`] (the world shared by the scene node and the
//! simulated arm's driver).
//!
//! - [`world`]: rapier3d physics at 240 Hz: blocks, bowls, zones and the suction tool;
//! - [`camera`]: the ideal top-down RGB-D heightmap and a perspective view for people;
//!   [`rgbd`]: the benchmark's perspective RGB-D cameras with a realistic camera model;
//! - [`tasks`]: tasks A–K, their scenes, texts and goals; [`goal`]: how they are scored;
//!   [`instructions`]: instruction files, the tasks' instructions in other words;
//!   [`paraphrase`]: other words for training data, generated;
//! - [`colors`]: the palette and palette files; [`split`]: the seeds and colours of train,
//!   val and test; [`draw`]: how an episode is drawn (palette, instruction, paraphrase);
//! - [`env`]: an episode as an environment; [`oracle`]: the scripted expert and a random
//!   baseline;
//! - [`arm`]: the simulated arm's setpoint, shared by the scene and the arm driver;
//! - [`node`]: the simulator's scene as a zenoh node.
//!
//! Same (task, split, seed) → same episode, bit for bit: scenes come from a seeded
//! ChaCha stream and rapier runs single-threaded in a fixed order.

pub mod arm;
pub mod camera;
pub mod colors;
pub mod draw;
pub mod env;
pub mod goal;
pub mod instructions;
pub mod node;
pub mod oracle;
pub mod paraphrase;
pub mod rgbd;
pub mod scene;
pub mod split;
pub mod tasks;
pub(crate) mod vec3;
pub mod world;

pub use env::{run_episode, Action, Decision, Env, EpisodeResult, Policy};
pub use oracle::{Oracle, RandomPolicy};
pub use split::Split;
pub use tasks::{TaskId, ALL_TASKS, FAMILIES};
