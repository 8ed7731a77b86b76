//! openpi's remote policy protocol (Physical-Intelligence/openpi), so that openpi's robot
//! clients can drive their robot with a loho policy: a websocket server of binary frames,
//! the server's metadata first, then one msgpack observation in and one msgpack action
//! dict out per frame; numpy arrays as maps with binary keys (`__ndarray__`, `data`,
//! `dtype`, `shape`); an error as a text frame and close code 1011; `GET /healthz` for a
//! load balancer. docs/openpi.md has the keys and a client.
//!
//! The server ([`Server`]) keeps nothing per caller, as openpi's does: each frame is one
//! [`super::Policy::infer`], its sub-task as the frame's optional `loho/*` keys say (a
//! client that sends none gets a sub-task written from what the frame shows). The client
//! ([`OpenpiPolicy`], `--policy openpi://HOST:PORT`) runs loho's closed loop against any
//! openpi server, with a [`KeyMap`] saying what the served model reads and returns.

mod client;
mod server;

use rmpv::Value;
use thiserror::Error;

pub use client::{KeyMap, OpenpiPolicy};
pub use server::Server;

use loho_core::policy::codec::action_rows;
use loho_core::policy::Decision;

#[derive(Debug, Error)]
pub enum OpenpiError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("websocket handshake with {0} (is an openpi server listening there?)")]
    Handshake(String),
    #[error("not msgpack: {0}")]
    Msgpack(String),
    #[error("observation: {0}")]
    Observation(String),
    #[error("the policy failed: {0}")]
    Policy(String),
    #[error("{0}")]
    Config(#[from] loho_core::config_file::ConfigError),
}

/// Observation keys of a loho policy served over openpi.
pub mod keys {
    /// The instruction (str).
    pub const PROMPT: &str = "prompt";
    /// The colour heightmap, `uint8` `(rows, cols, 3)`.
    pub const IMAGE: &str = "observation/image";
    /// Height above the table in metres, `float32` `(rows, cols)`.
    pub const HEIGHT: &str = "observation/height";
    /// Optional: the sub-task to keep (re-read it, sample only the action).
    pub const KEEP_SUBTASK: &str = "loho/keep_subtask";
    /// Optional: write the sub-task again, sampling its words.
    pub const REWRITE: &str = "loho/rewrite";
    /// Optional: the seed of this decision's samples.
    pub const SEED: &str = "loho/seed";
}

/// A numpy array as openpi's `msgpack_numpy` packs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    /// numpy's `dtype.str`, e.g. `|u1`, `<f4`.
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NdArray {
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Self {
            dtype: "<f4".into(),
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn to_value(&self) -> Value {
        let key = |k: &str| Value::Binary(k.as_bytes().to_vec());
        Value::Map(vec![
            (key("__ndarray__"), Value::Boolean(true)),
            (key("data"), Value::Binary(self.data.clone())),
            (key("dtype"), Value::String(self.dtype.clone().into())),
            (
                key("shape"),
                Value::Array(self.shape.iter().map(|&n| Value::from(n as u64)).collect()),
            ),
        ])
    }

    /// The array a map packs, or why it is not one.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        if get(v, "__ndarray__").and_then(Value::as_bool) != Some(true) {
            return Err("not a packed numpy array (no __ndarray__)".into());
        }
        let data = match get(v, "data") {
            Some(Value::Binary(b)) => b.clone(),
            _ => return Err("a packed array without binary data".into()),
        };
        let dtype = match get(v, "dtype") {
            Some(Value::String(s)) => s.as_str().unwrap_or("").to_string(),
            Some(Value::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => return Err("a packed array without a dtype".into()),
        };
        let shape = match get(v, "shape") {
            Some(Value::Array(dims)) => dims
                .iter()
                .map(|d| d.as_u64().map(|n| n as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or("a shape of non-negative integers")?,
            _ => return Err("a packed array without a shape".into()),
        };
        let item = match dtype.as_str() {
            "|u1" | "|i1" | "|b1" => 1,
            "<f4" | "<i4" | "<u4" => 4,
            "<f8" | "<i8" | "<u8" => 8,
            other => return Err(format!("dtype {other:?} is not read here")),
        };
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count.and_then(|n| n.checked_mul(item)) != Some(data.len()) {
            return Err(format!(
                "{} bytes of data for shape {shape:?} of {dtype}",
                data.len()
            ));
        }
        Ok(Self { dtype, shape, data })
    }

    /// The values of a `<f4` array.
    pub fn as_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == "<f4").then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
}

/// The value of `key` in a msgpack map, whether the key is packed as str or bin.
pub fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?.iter().find_map(|(k, v)| {
        let name = match k {
            Value::String(s) => s.as_str()?.as_bytes(),
            Value::Binary(b) => b.as_slice(),
            _ => return None,
        };
        (name == key.as_bytes()).then_some(v)
    })
}

pub fn pack(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

pub fn unpack(bytes: &[u8]) -> Result<Value, OpenpiError> {
    let mut r = bytes;
    let v = rmpv::decode::read_value(&mut r).map_err(|e| OpenpiError::Msgpack(e.to_string()))?;
    if !r.is_empty() {
        return Err(OpenpiError::Msgpack(format!(
            "{} bytes after the value",
            r.len()
        )));
    }
    Ok(v)
}

/// A decision as openpi's action dict: `actions` `float32` `(n, 5)`, each row
/// `x, y, z, yaw, suction` in the base frame (pick with suction 1 then place with 0; no
/// rows when the policy says the task is done), the sub-task, `done`, and the server's
/// time.
pub fn action_dict(d: &Decision, infer_ms: f64) -> Value {
    let rows: Vec<f32> = action_rows(d).concat();
    let s = |k: &str| Value::String(k.into());
    Value::Map(vec![
        (
            s("actions"),
            NdArray::f32(vec![rows.len() / 5, 5], &rows).to_value(),
        ),
        (s("subtask"), s(d.subtask())),
        (s("done"), Value::Boolean(matches!(d, Decision::Done(_)))),
        (
            s("server_timing"),
            Value::Map(vec![(s("infer_ms"), Value::F64(infer_ms))]),
        ),
    ])
}
