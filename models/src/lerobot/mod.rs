//! Demonstrations as a LeRobotDataset v3.0, the format of Hugging Face LeRobot: written
//! ([`Writer`]) and read back ([`read`]), so loho's data trains LeRobot policies and
//! LeRobot's tools (`LeRobotDataset(repo_id, root=DIR)`) open loho's data.
//!
//! A frame is one decision, as in loho's own format ([`data`](crate::data)); an episode is
//! one (task, seed). Its columns:
//!
//! | feature | dtype, shape | what |
//! | --- | --- | --- |
//! | `observation.images.top` | image, rows × cols × 3 | the colour heightmap, PNG |
//! | `observation.images.height` | image, rows × cols × 1 | heights as 8-bit grey, PNG: 0–254 over [0, [`HEIGHT_MAX`]], 255 = no camera saw it |
//! | `observation.state` | float32, 5 | the tool: x, y, z (m), yaw (rad), suction (0/1) |
//! | `action` | float32, 10 | pick then place, each x, y, z, yaw, suction; a "done" frame holds the state twice |
//! | `action.done` | bool | the decision is the task's "done" sentence: no pick and place |
//! | `action.subtask` | string | the sub-task text |
//! | `action.alternatives` | string | other sub-tasks as right here, one per line |
//!
//! with LeRobot's own `timestamp`, `frame_index`, `episode_index`, `index` and
//! `task_index`; the task is the instruction. The episodes file adds `loho/task` (the
//! benchmark's letter) and `loho/seed`. `fps` is nominal ([`FPS`]): a frame is a decision,
//! not a tick of a clock.
//!
//! Images are PNG inside the parquet files (LeRobot's `image` dtype), not AV1 video: a
//! decision frame is 10–20 kB as PNG and a few per episode, so video saves little; PNG is
//! lossless, which the heights need (a video codec's 4:2:0 chroma and quantisation would
//! move them by centimetres); and neither writing nor reading needs an encoder outside
//! the Rust toolchain.

mod read;
mod stats;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::data::HEIGHT_MAX;
pub use read::read;
pub use write::{Summary, Writer};

/// The format version LeRobot checks (`CODEBASE_VERSION`).
pub const CODEBASE_VERSION: &str = "v3.0";
/// Frames per second: nominal, one frame per decision.
pub const FPS: u32 = 1;
/// The robot whose frames these are (LeRobot's `robot_type`).
pub const ROBOT_TYPE: &str = "ur5e";

pub const TOP: &str = "observation.images.top";
pub const HEIGHT: &str = "observation.images.height";
pub const STATE: &str = "observation.state";
pub const ACTION: &str = "action";
pub const DONE: &str = "action.done";
pub const SUBTASK: &str = "action.subtask";
pub const ALTERNATIVES: &str = "action.alternatives";

/// LeRobot's defaults: files per chunk folder, and the size at which a data file is
/// closed and the next begun.
pub const CHUNK_SIZE: usize = 1000;
pub const DATA_FILE_MB: u64 = 100;

pub const INFO_PATH: &str = "meta/info.json";
pub const STATS_PATH: &str = "meta/stats.json";
pub const TASKS_PATH: &str = "meta/tasks.parquet";
const DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";

/// The `n`th data file's path.
pub fn data_path(n: usize) -> String {
    format!(
        "data/chunk-{:03}/file-{:03}.parquet",
        n / CHUNK_SIZE,
        n % CHUNK_SIZE
    )
}

/// The `n`th episodes file's path.
pub fn episodes_path(n: usize) -> String {
    format!(
        "meta/episodes/chunk-{:03}/file-{:03}.parquet",
        n / CHUNK_SIZE,
        n % CHUNK_SIZE
    )
}

/// One entry of `info.json`'s `features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub names: Value,
}

impl Feature {
    fn new(dtype: &str, shape: &[usize], names: &[&str]) -> Self {
        Self {
            dtype: dtype.into(),
            shape: shape.to_vec(),
            names: match names {
                [] => Value::Null,
                n => n.iter().map(|s| Value::from(*s)).collect(),
            },
        }
    }

    /// The Arrow type Hugging Face `datasets` stores this feature as: an image is a
    /// struct of PNG bytes and a path, shape `[1]` a scalar, `[n]` a fixed-size list.
    pub fn arrow_type(&self) -> Option<DataType> {
        if self.dtype == "image" {
            return Some(DataType::Struct(image_fields()));
        }
        let scalar = match self.dtype.as_str() {
            "string" => DataType::Utf8,
            "bool" => DataType::Boolean,
            "int64" => DataType::Int64,
            "float32" => DataType::Float32,
            _ => return None,
        };
        match self.shape[..] {
            [1] => Some(scalar),
            [n] => Some(DataType::FixedSizeList(
                Arc::new(Field::new("item", scalar, true)),
                n as i32,
            )),
            _ => None,
        }
    }
}

fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

/// Every feature of a loho dataset whose frames are `rows` × `cols`.
pub fn features(rows: usize, cols: usize) -> BTreeMap<String, Feature> {
    let image = |c| Feature::new("image", &[rows, cols, c], &["height", "width", "channels"]);
    let pose = ["x", "y", "z", "yaw", "suction"];
    let action: Vec<String> = ["pick", "place"]
        .iter()
        .flat_map(|k| pose.iter().map(move |p| format!("{k}.{p}")))
        .collect();
    let action: Vec<&str> = action.iter().map(String::as_str).collect();
    [
        ("timestamp", Feature::new("float32", &[1], &[])),
        ("frame_index", Feature::new("int64", &[1], &[])),
        ("episode_index", Feature::new("int64", &[1], &[])),
        ("index", Feature::new("int64", &[1], &[])),
        ("task_index", Feature::new("int64", &[1], &[])),
        (TOP, image(3)),
        (HEIGHT, image(1)),
        (STATE, Feature::new("float32", &[5], &pose)),
        (ACTION, Feature::new("float32", &[10], &action)),
        (DONE, Feature::new("bool", &[1], &[])),
        (SUBTASK, Feature::new("string", &[1], &[])),
        (ALTERNATIVES, Feature::new("string", &[1], &[])),
    ]
    .into_iter()
    .map(|(k, f)| (k.to_string(), f))
    .collect()
}

/// `meta/info.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub codebase_version: String,
    pub robot_type: String,
    pub total_episodes: usize,
    pub total_frames: usize,
    pub total_tasks: usize,
    pub chunks_size: usize,
    pub data_files_size_in_mb: u64,
    pub video_files_size_in_mb: u64,
    pub fps: u32,
    pub splits: BTreeMap<String, String>,
    pub data_path: String,
    pub video_path: Option<String>,
    pub features: BTreeMap<String, Feature>,
}
