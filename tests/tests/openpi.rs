//! `loho serve-openpi` driven by a client written here against openpi's protocol as its
//! repository documents it (websocket binary frames, metadata first, msgpack with numpy
//! arrays as `__ndarray__` maps with binary keys, errors as a text frame and close 1011,
//! `GET /healthz`).
//!
//! This test binary is also the `loho` command line (`loho_tests::serve_as_child`), so
//! the server is a real `loho` process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use loho_core::perception::grid::{HEIGHT, WIDTH};
use loho_core::policy::{Decision, Observation, Plan, Policy};
use loho_models::{default_checkpoint, Device, ModelPolicy};
use loho_runtime::policy::openpi::{get, keys, pack, unpack, NdArray};
use loho_sim::{Env, Split, TaskId};
use loho_tests::{free_port, run_in_order, serve_as_child, Node, Test};
use rmpv::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

fn main() {
    serve_as_child(loho::main_logged);
    let tests: [Test<Served>; 4] = [
        ("healthz_answers_ok", healthz),
        (
            "a_served_decision_is_the_policys_own",
            decisions_are_the_policys,
        ),
        (
            "a_malformed_frame_gets_a_text_error_and_close_1011_and_the_server_serves_on",
            malformed_frames,
        ),
        (
            "eval_through_openpi_succeeds_as_the_policy_in_process_does",
            eval_through_openpi,
        ),
    ];
    run_in_order(&tests, Served::start, |s| {
        assert!(s.server.running(), "the server died")
    });
}

struct Served {
    server: Node,
    port: u16,
    /// The shipped checkpoint deciding without chance (below), which the server serves.
    policy: PathBuf,
}

/// A copy of the shipped checkpoint whose decisions draw nothing: no action noise, each
/// pointer on its likeliest object, rewrites written greedily. Through any path it decides
/// the same, whatever random stream it is given, so paths can be compared exactly.
fn deterministic_checkpoint() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loho-openpi-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "config.json"] {
        std::fs::copy(default_checkpoint().join(f), dir.join(f)).unwrap();
    }
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["head"]["noise_scale"] = 0.0.into();
    cfg["head"]["pointing"] = "argmax".into();
    cfg["replan_temperature"] = 0.0.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    dir
}

impl Served {
    fn start() -> Self {
        let port = free_port();
        let policy = deterministic_checkpoint();
        let server = Node::spawn(&[
            "serve-openpi",
            "--port",
            &port.to_string(),
            "--policy",
            policy.to_str().unwrap(),
        ]);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no server on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            server,
            port,
            policy,
        }
    }

    /// A client session, past the server's metadata (which it checks).
    fn connect(&self) -> WebSocket<TcpStream> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let (mut ws, _) =
            tungstenite::client(format!("ws://127.0.0.1:{}", self.port), stream).unwrap();
        match ws.read().unwrap() {
            Message::Binary(b) => {
                let meta = unpack(&b).unwrap();
                assert_eq!(get(&meta, "server").and_then(Value::as_str), Some("loho"));
            }
            other => panic!("expected the metadata first, got {other:?}"),
        }
        ws
    }
}

/// An observation as an openpi client packs it: str keys, arrays as `__ndarray__` maps.
fn observation(env: &Env) -> Value {
    let hm = env.observe();
    let image = NdArray {
        dtype: "|u1".into(),
        shape: vec![HEIGHT, WIDTH, 3],
        data: hm.rgb_bytes(),
    };
    let height = NdArray::f32(vec![HEIGHT, WIDTH], &hm.height);
    Value::Map(vec![
        (keys::PROMPT.into(), env.instruction().into()),
        (keys::IMAGE.into(), image.to_value()),
        (keys::HEIGHT.into(), height.to_value()),
    ])
}

fn healthz(s: &mut Served) {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nOK"), "{reply}");
}

/// The served action dict of three val frames equals what the served policy decides
/// in this process on the same frame.
fn decisions_are_the_policys(s: &mut Served) {
    let mut local = ModelPolicy::load(&s.policy, 0, &Device::Cpu).unwrap();
    let mut ws = s.connect();
    for episode in 0..3 {
        let env = Env::new(TaskId::B, Split::Val, Split::Val.seed(episode)).unwrap();
        ws.send(Message::Binary(pack(&observation(&env)).into()))
            .unwrap();
        let reply = match ws.read().unwrap() {
            Message::Binary(b) => unpack(&b).unwrap(),
            other => panic!("expected an action dict, got {other:?}"),
        };
        let actions = NdArray::from_value(get(&reply, "actions").unwrap()).unwrap();
        let subtask = get(&reply, "subtask").and_then(Value::as_str).unwrap();
        let hm = env.observe();
        let rgb = hm.rgb_bytes();
        let obs = Observation {
            instruction: env.instruction(),
            rgb: &rgb,
            height: &hm.height,
            rows: HEIGHT,
            cols: WIDTH,
            total_reward: None,
            step: 0,
            scene: None,
        };
        let want = local.infer(&obs, &Plan::Write, 0).unwrap();
        assert_eq!(subtask, want.subtask(), "episode {episode}");
        let Decision::Act(a) = want else {
            assert_eq!(actions.shape, [0, 5]);
            continue;
        };
        assert_eq!(actions.shape, [2, 5]);
        let got = actions.as_f32().unwrap();
        let rows = [
            [a.pick.x, a.pick.y, a.pick.z, a.pick.yaw, 1.0],
            [a.place.x, a.place.y, a.place.z, a.place.yaw, 0.0],
        ];
        for (g, w) in got.iter().zip(rows.iter().flatten()) {
            assert!((*g as f64 - w).abs() < 1e-5, "{got:?} vs {rows:?}");
        }
        assert!(get(&reply, "server_timing")
            .and_then(|t| get(t, "infer_ms"))
            .and_then(Value::as_f64)
            .is_some_and(|ms| ms > 0.0));
    }
}

/// The frame's error comes back as text, then close 1011.
fn refused(ws: &mut WebSocket<TcpStream>, frame: Message, why: &str) {
    ws.send(frame).unwrap();
    match ws.read().unwrap() {
        Message::Text(t) => assert!(t.contains(why), "{t:?} does not say {why:?}"),
        other => panic!("expected a text error, got {other:?}"),
    }
    match ws.read().unwrap() {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Error),
        other => panic!("expected close 1011, got {other:?}"),
    }
}

fn malformed_frames(s: &mut Served) {
    let env = Env::new(TaskId::B, Split::Val, Split::Val.seed(0)).unwrap();
    let cases = [
        (Message::Binary(vec![0xc1, 0, 1].into()), "not msgpack"),
        (Message::Text("{}".into()), "text frame"),
        (
            Message::Binary(pack(&Value::Map(vec![(keys::PROMPT.into(), "hi".into())])).into()),
            "observation/image",
        ),
        (
            Message::Binary(
                pack(&Value::Map(vec![
                    (keys::PROMPT.into(), "hi".into()),
                    (
                        keys::IMAGE.into(),
                        NdArray::f32(vec![2, 2], &[0.0; 3]).to_value(),
                    ),
                ]))
                .into(),
            ),
            "12 bytes of data for shape [2, 2]",
        ),
    ];
    for (frame, why) in cases {
        refused(&mut s.connect(), frame, why);
    }
    // Still serving.
    let mut ws = s.connect();
    ws.send(Message::Binary(pack(&observation(&env)).into()))
        .unwrap();
    assert!(matches!(ws.read().unwrap(), Message::Binary(_)));
}

/// `loho eval`'s table (per task: score, success) with `args`.
fn eval(args: &[&str]) -> Vec<(f64, f64)> {
    let json = std::env::temp_dir().join(format!("loho-openpi-eval-{}.json", free_port()));
    let base = [
        "eval",
        "--tasks",
        "B,D,G,J",
        "--split",
        "val",
        "--episodes",
        "2",
        "--json",
    ];
    let mut node = Node::spawn(&[&base[..], &[json.to_str().unwrap()], args].concat());
    assert!(
        node.0.wait().unwrap().success(),
        "loho eval {args:?} failed"
    );
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    table["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let f = |k: &str| t[k].as_f64().unwrap();
            (f("score"), f("success_rate"))
        })
        .collect()
}

/// The client path (`--policy openpi://…`) against the server: the same episodes, step
/// for step, as the loho-native remote path (`--transport infer`) and as the policy in
/// process — the policy draws nothing, so every path decides alike.
fn eval_through_openpi(s: &mut Served) {
    let url = format!("openpi://127.0.0.1:{}", s.port);
    let policy = s.policy.to_str().unwrap();
    let openpi = eval(&["--policy", &url]);
    let infer = eval(&["--policy", policy, "--transport", "infer"]);
    let local = eval(&["--policy", policy]);
    assert_eq!(openpi, infer);
    assert_eq!(openpi, local);
    assert!(
        local.iter().any(|t| t.1 > 0.0),
        "the policy succeeds somewhere: {local:?}"
    );
    std::fs::remove_dir_all(&s.policy).unwrap();
}
