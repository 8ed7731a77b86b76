//! `loho serve-openpi`: a policy behind openpi's protocol ([`super`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmpv::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::{action_dict, get, keys, pack, unpack, NdArray, OpenpiError};
use loho_core::policy::codec::plan_of_flags;
use loho_core::policy::{Observation, Policy};

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
    let mut ws = match tungstenite::accept(stream) {
        Ok(ws) => ws,
        Err(e) => {
            // A port probe or a plain HTTP client: nothing worth a warning.
            tracing::debug!("openpi: no websocket handshake: {e}");
            return Ok(());
        }
    };
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
    let plan = plan_of_flags(
        get(&v, keys::KEEP_SUBTASK)
            .and_then(Value::as_str)
            .unwrap_or(""),
        get(&v, keys::REWRITE).and_then(Value::as_bool) == Some(true),
    );
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
