//! `--policy openpi://HOST:PORT`: loho's closed loop around a policy an openpi server
//! serves (`loho serve-openpi`, or a π0 on a GPU machine), its keys as a [`KeyMap`] says.

use std::net::TcpStream;
use std::path::Path;

use rmpv::Value;
use serde::Deserialize;
use tungstenite::{Message, WebSocket};

use super::{get, pack, unpack, NdArray, OpenpiError};
use loho_core::config_file::{ConfigError, ConfigFile};
use loho_core::policy::codec::plan_flags;
use loho_core::policy::{Action, ClosedLoop, Decision, Observation, Plan, Policy, PolicyError};
use loho_core::pose::{EePose, Keypose};

/// The compiled-in key map: `loho serve-openpi`'s.
pub const DEFAULT_KEYS: &str = include_str!("../../../../configs/openpi/loho.toml");

/// Which observation keys a served model reads, and how a row of its action chunk
/// becomes loho's end-effector commands (`configs/openpi/*.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMap {
    pub observation: ObservationKeys,
    pub action: ActionKeys,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationKeys {
    pub prompt: String,
    pub image: String,
    /// `""`: the model reads no height.
    pub height: String,
    /// Send the closed loop's plan and seed under `loho/*`.
    pub loho_plan: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionKeys {
    pub key: String,
    /// Each row's columns: `x`, `y`, `z`, `yaw`, `suction`, or `_`.
    pub columns: Vec<String>,
    /// `""`: none sent.
    pub subtask: String,
    pub done: String,
}

const NEEDED: [&str; 5] = ["x", "y", "z", "yaw", "suction"];

impl ConfigFile for KeyMap {
    fn validate(&self) -> Result<(), ConfigError> {
        let cols = &self.action.columns;
        for need in NEEDED {
            if cols.iter().filter(|c| *c == need).count() != 1 {
                return Err(ConfigError::Invalid(format!(
                    "[action] columns {cols:?}: {need:?} must appear exactly once"
                )));
            }
        }
        if let Some(bad) = cols
            .iter()
            .find(|c| *c != "_" && !NEEDED.contains(&c.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "[action] columns: {bad:?} is none of x, y, z, yaw, suction, _"
            )));
        }
        Ok(())
    }
}

impl Default for KeyMap {
    fn default() -> Self {
        Self::parse(DEFAULT_KEYS).expect("the shipped configs/openpi/loho.toml is valid")
    }
}

impl KeyMap {
    /// The key map in `path`, or the compiled-in one.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// The pick and place in a served action dict, or "done", or why it is neither.
    fn decision(&self, reply: &Value) -> Result<Decision, String> {
        let a = &self.action;
        let text = |key: &str| get(reply, key).and_then(Value::as_str).unwrap_or("");
        let subtask = text(&a.subtask).to_string();
        if !a.done.is_empty() && get(reply, &a.done).and_then(Value::as_bool) == Some(true) {
            return Ok(Decision::Done(subtask));
        }
        let chunk = NdArray::from_value(
            get(reply, &a.key).ok_or_else(|| format!("no {:?} in the reply", a.key))?,
        )?;
        let values = chunk
            .as_f32()
            .ok_or_else(|| format!("{}: float32 expected, got {}", a.key, chunk.dtype))?;
        let width = a.columns.len();
        if chunk.shape.len() != 2 || chunk.shape[1] != width {
            return Err(format!(
                "{}: shape {:?}, expected (rows, {width}) as [action] columns say",
                a.key, chunk.shape
            ));
        }
        if values.is_empty() {
            return Ok(Decision::Done(subtask));
        }
        let col = |name: &str| a.columns.iter().position(|c| c == name).unwrap_or(0);
        let rows: Vec<Keypose> = values
            .chunks_exact(width)
            .map(|r| {
                let v = |name| r[col(name)] as f64;
                Keypose::new(
                    EePose::new(v("x"), v("y"), v("z"), v("yaw")),
                    v("suction") > 0.5,
                )
            })
            .collect();
        Action::from_keyposes(subtask, &rows)
            .map(Decision::Act)
            .map_err(|why| format!("{}: {why}", a.key))
    }
}

/// A policy served over openpi, with loho's closed loop on this side.
pub struct OpenpiPolicy {
    ws: WebSocket<TcpStream>,
    keys: KeyMap,
    closed_loop: ClosedLoop,
    seed: u64,
    addr: String,
}

impl OpenpiPolicy {
    /// Connects to the server at `addr` (`HOST:PORT`) and reads its metadata. Action
    /// samples are seeded from `seed` and the step, as with `policy/infer`.
    pub fn connect(addr: &str, keys: KeyMap, seed: u64) -> Result<Self, OpenpiError> {
        let stream = TcpStream::connect(addr)?;
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}"), stream)
            .map_err(|e| OpenpiError::Handshake(format!("{addr}: {e}")))?;
        match ws.read()? {
            Message::Binary(b) => {
                let meta = unpack(&b)?;
                tracing::info!("openpi server at {addr}: {meta}");
            }
            other => {
                return Err(OpenpiError::Msgpack(format!(
                    "{addr} sent {other:?} where openpi's metadata comes first"
                )))
            }
        }
        Ok(Self {
            ws,
            keys,
            closed_loop: ClosedLoop::default(),
            seed,
            addr: addr.into(),
        })
    }

    fn observation(&self, obs: &Observation, plan: &Plan, seed: u64) -> Value {
        let k = &self.keys.observation;
        let s = |v: &str| Value::String(v.into());
        let image = NdArray {
            dtype: "|u1".into(),
            shape: vec![obs.rows, obs.cols, 3],
            data: obs.rgb.to_vec(),
        };
        let mut map = vec![
            (s(&k.prompt), s(obs.instruction)),
            (s(&k.image), image.to_value()),
        ];
        if !k.height.is_empty() {
            let height = NdArray::f32(vec![obs.rows, obs.cols], obs.height);
            map.push((s(&k.height), height.to_value()));
        }
        if k.loho_plan {
            let (keep, rewrite) = plan_flags(plan);
            map.push((s(super::keys::KEEP_SUBTASK), s(&keep)));
            map.push((s(super::keys::REWRITE), Value::Boolean(rewrite)));
            map.push((s(super::keys::SEED), Value::from(seed)));
        }
        Value::Map(map)
    }
}

impl Policy for OpenpiPolicy {
    fn reset(&mut self) {
        self.closed_loop = ClosedLoop::default();
    }

    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let failed = |why: String| PolicyError(format!("openpi server {}: {why}", self.addr));
        let plan = self.closed_loop.plan(obs.total_reward);
        let seed = self.seed.wrapping_mul(1_000_003) ^ obs.step as u64;
        let frame = pack(&self.observation(obs, &plan, seed));
        self.ws
            .send(Message::Binary(frame.into()))
            .map_err(|e| failed(e.to_string()))?;
        let reply = loop {
            match self.ws.read().map_err(|e| failed(e.to_string()))? {
                Message::Binary(b) => break unpack(&b).map_err(|e| failed(e.to_string()))?,
                Message::Text(t) => return Err(failed(format!("refused: {t}"))),
                Message::Close(f) => return Err(failed(format!("closed the connection: {f:?}"))),
                _ => continue,
            }
        };
        let d = self.keys.decision(&reply).map_err(failed)?;
        self.closed_loop.acted(&d);
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_maps_check_their_columns_and_read_rows_into_pick_and_place() {
        let keys = KeyMap::default();
        let rows = [0.5, -0.1, 0.02, 0.3, 1.0, 0.4, 0.2, 0.03, 0.0, 0.0];
        let reply = Value::Map(vec![
            ("actions".into(), NdArray::f32(vec![2, 5], &rows).to_value()),
            ("subtask".into(), "pick up the red block.".into()),
            ("done".into(), false.into()),
        ]);
        let Decision::Act(a) = keys.decision(&reply).unwrap() else {
            panic!("not an action");
        };
        assert_eq!(a.subtask, "pick up the red block.");
        assert!((a.pick.yaw - 0.3).abs() < 1e-6 && (a.place.y - 0.2).abs() < 1e-6);
        let flat = Value::Map(vec![(
            "actions".into(),
            NdArray::f32(vec![1, 5], &rows[..5]).to_value(),
        )]);
        assert!(keys.decision(&flat).unwrap_err().contains("suction"));
        let wide = Value::Map(vec![(
            "actions".into(),
            NdArray::f32(vec![1, 10], &rows).to_value(),
        )]);
        assert!(keys.decision(&wide).unwrap_err().contains("shape"));
        let bad = DEFAULT_KEYS.replace(r#""yaw", "suction""#, r#""yaw", "yaw""#);
        assert!(KeyMap::parse(&bad).is_err());
    }
}
