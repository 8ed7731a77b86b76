//! openpi's remote policy protocol (Physical-Intelligence/openpi), so that openpi's robot
//! clients can drive their robot with a loho policy: a websocket server of binary frames,
//! the server's metadata first, then one msgpack observation in and one msgpack action
//! dict out per frame; numpy arrays as maps with binary keys (`__ndarray__`, `data`,
//! `dtype`, `shape`); an error as a text frame and close code 1011; `GET /healthz` for a
//! load balancer. docs/openpi.md has the keys and a client.
//!
//! The server keeps nothing per caller, as openpi's does: each frame is one
//! [`Policy::infer`], its sub-task as the frame's optional `loho/*` keys say (a client
//! that sends none gets a sub-task written from what the frame shows).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmpv::Value;
use thiserror::Error;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::{Decision, Observation, Plan, Policy};

#[derive(Debug, Error)]
pub enum OpenpiError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("not msgpack: {0}")]
    Msgpack(String),
    #[error("observation: {0}")]
    Observation(String),
    #[error("the policy failed: {0}")]
    Policy(String),
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
    let rows: Vec<f32> = match d {
        Decision::Act(a) => [(&a.pick, 1.0), (&a.place, 0.0)]
            .iter()
            .flat_map(|(p, s)| [p.x, p.y, p.z, p.yaw, *s].map(|v| v as f32))
            .collect(),
        Decision::Done(_) => vec![],
    };
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

/// Serves `policy` over openpi's protocol.
pub struct Server {
    listener: TcpListener,
    policy: Arc<Mutex<Box<dyn Policy>>>,
    metadata: Value,
}

impl Server {
    pub fn bind(addr: impl ToSocketAddrs, policy: Box<dyn Policy>) -> Result<Self, OpenpiError> {
        let s = |k: &str| Value::String(k.into());
        Ok(Self {
            listener: TcpListener::bind(addr)?,
            policy: Arc::new(Mutex::new(policy)),
            metadata: Value::Map(vec![
                (s("server"), s("loho")),
                (s("action_layout"), s("x, y, z, yaw, suction")),
            ]),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves each connection on a thread of its own until `stop` is set.
    pub fn serve(&self, stop: &AtomicBool) -> Result<(), OpenpiError> {
        self.listener.set_nonblocking(true)?;
        while !stop.load(Ordering::Relaxed) {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let (policy, metadata) = (self.policy.clone(), self.metadata.clone());
            std::thread::spawn(move || {
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                match connection(stream, &policy, &metadata) {
                    Ok(()) => tracing::debug!("openpi: {peer} done"),
                    Err(e) => tracing::warn!("openpi: {peer}: {e}"),
                }
            });
        }
        Ok(())
    }
}

/// One client: `GET /healthz`, or a websocket session.
fn connection(
    stream: TcpStream,
    policy: &Mutex<Box<dyn Policy>>,
    metadata: &Value,
) -> Result<(), OpenpiError> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    if is_healthz(&stream)? {
        // Read the whole request first: closing on unread bytes resets the connection.
        let mut s = &stream;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 && s.read(&mut byte)? == 1 {
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")?;
        return Ok(());
    }
    stream.set_read_timeout(None)?;
    let mut ws = tungstenite::accept(stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => OpenpiError::Ws(e),
        tungstenite::HandshakeError::Interrupted(_) => {
            OpenpiError::Io(std::io::ErrorKind::WouldBlock.into())
        }
    })?;
    ws.send(Message::Binary(pack(metadata).into()))?;
    loop {
        let reply = match ws.read() {
            Ok(Message::Binary(b)) => answer(&b, policy),
            Ok(Message::Text(_)) => Err(OpenpiError::Msgpack(
                "a text frame: observations are msgpack in binary frames".into(),
            )),
            Ok(Message::Close(_))
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(())
            }
            Ok(_) => continue,
            Err(e) => return Err(e.into()),
        };
        match reply {
            Ok(r) => ws.send(Message::Binary(r.into()))?,
            Err(e) => {
                // As openpi's server: the error as text, then close 1011, this
                // connection only.
                ws.send(Message::Text(e.to_string().into()))?;
                ws.close(Some(CloseFrame {
                    code: CloseCode::Error,
                    reason: "internal error".into(),
                }))?;
                while ws.read().is_ok() {}
                return Err(e);
            }
        }
    }
}

/// Whether the request waiting on `stream` is `GET /healthz` (read without taking it).
fn is_healthz(stream: &TcpStream) -> Result<bool, OpenpiError> {
    let mut buf = [0u8; 64];
    let t0 = Instant::now();
    loop {
        let n = stream.peek(&mut buf)?;
        let head = &buf[..n];
        if n == buf.len()
            || head.contains(&b'\n')
            || n == 0
            || t0.elapsed() > Duration::from_secs(5)
        {
            return Ok(head.starts_with(b"GET /healthz ") || head.starts_with(b"GET /healthz?"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One observation frame in, one action frame out.
fn answer(frame: &[u8], policy: &Mutex<Box<dyn Policy>>) -> Result<Vec<u8>, OpenpiError> {
    let bad = |why: String| OpenpiError::Observation(why);
    let v = unpack(frame)?;
    if v.as_map().is_none() {
        return Err(bad("expected a map of observation keys".into()));
    }
    let prompt = get(&v, keys::PROMPT)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("no {:?} string", keys::PROMPT)))?;
    let array = |key: &str| {
        get(&v, key)
            .ok_or_else(|| bad(format!("no {key:?}")))
            .and_then(|a| NdArray::from_value(a).map_err(|e| bad(format!("{key}: {e}"))))
    };
    let image = array(keys::IMAGE)?;
    let height = array(keys::HEIGHT)?;
    let (rows, cols) = match (image.shape.as_slice(), height.shape.as_slice()) {
        ([r, c, 3], [hr, hc]) if image.dtype == "|u1" && r == hr && c == hc => (*r, *c),
        _ => {
            return Err(bad(format!(
                "{} must be |u1 (rows, cols, 3) and {} <f4 (rows, cols); got {} {:?} and {} {:?}",
                keys::IMAGE,
                keys::HEIGHT,
                image.dtype,
                image.shape,
                height.dtype,
                height.shape
            )))
        }
    };
    let heights = height
        .as_f32()
        .ok_or_else(|| bad(format!("{} must be <f4", keys::HEIGHT)))?;
    let plan = match get(&v, keys::KEEP_SUBTASK).and_then(Value::as_str) {
        Some(kept) if !kept.is_empty() => Plan::Keep(kept.to_string()),
        _ if get(&v, keys::REWRITE).and_then(Value::as_bool) == Some(true) => Plan::Rewrite,
        _ => Plan::Write,
    };
    let seed = get(&v, keys::SEED).and_then(Value::as_u64).unwrap_or(0);
    let obs = Observation {
        instruction: prompt,
        rgb: &image.data,
        height: &heights,
        rows,
        cols,
        total_reward: None,
        step: 0,
        scene: None,
    };
    let t0 = Instant::now();
    let decision = policy
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .infer(&obs, &plan, seed)
        .map_err(|e| OpenpiError::Policy(e.0))?;
    Ok(pack(&action_dict(
        &decision,
        t0.elapsed().as_secs_f64() * 1e3,
    )))
}
