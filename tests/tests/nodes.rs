//! The nodes in separate processes over loopback zenoh, and what happens when things go
//! wrong: bad chunks, garbage payloads, the e-stop, `policy/infer` queries good and bad,
//! the policy killed and restarted.
//!
//! This test binary is also the `loho` command line (`loho_tests::serve_as_child`: the
//! same code path as the `loho` binary), so a test starts a real node in another process
//! with `Node::spawn`.
//!
//! One graph serves every test, in order: a real-time simulator and a controller (each
//! listening on its own port, fully meshed), this process's own session, and from the
//! third test on a policy process with the shipped checkpoint.

use std::time::{Duration, Instant};

use loho_core::msg::{
    ActionChunk, ArmState, BoolMsg, DiagnosticArray, EeCommand, EpisodeEvent, ExecStatus, Header,
    Image, InferRequest, StringMsg,
};
use loho_core::policy::codec::chunk;
use loho_runtime::keys;
use loho_runtime::{Bus, BusConfig, BusError, Qos};
use loho_sim::camera::{HEIGHT, WIDTH};
use loho_sim::colors::TABLE;
use loho_sim::{Decision, Env, Oracle, Split, TaskId};
use loho_tests::{
    free_port, log, put_until, run_in_order, serve_as_child, wait_for, Log, Node, Test,
};

/// The watchdog timeout of `configs/runtime.toml`.
const WATCHDOG: Duration = Duration::from_millis(100);

fn main() {
    serve_as_child(loho::main_logged);
    let tests: [Test<Graph>; 8] = [
        (
            "frames_and_a_chunk_cross_processes",
            frames_and_a_chunk_cross_processes,
        ),
        (
            "a_recorder_killed_outright_leaves_all_but_its_last_second",
            recorder_killed_outright,
        ),
        (
            "bad_chunks_are_refused_with_their_reason",
            bad_chunks_are_refused_with_their_reason,
        ),
        (
            "garbage_on_every_key_is_diagnosed_and_moves_nothing",
            garbage_on_every_key,
        ),
        (
            "estop_stops_motion_until_cleared",
            estop_stops_motion_until_cleared,
        ),
        (
            "policy_infer_answers_queries_and_refuses_bad_ones",
            policy_infer_answers_queries_and_refuses_bad_ones,
        ),
        ("policy_killed_then_restarted", policy_killed_then_restarted),
        (
            "a_policy_started_under_a_latched_estop_backs_off",
            policy_started_under_a_latched_estop,
        ),
    ];
    run_in_order(&tests, Graph::start, Graph::assert_nodes_alive);
}

struct Graph {
    sim: Node,
    controller: Node,
    policy: Option<Node>,
    endpoints: [String; 3],
    bus: Bus,
    cmds: Log<EeCommand>,
    status: Log<ExecStatus>,
    diags: Log<DiagnosticArray>,
    events: Log<EpisodeEvent>,
    state: loho_runtime::bus::Latest<ArmState>,
    color: loho_runtime::bus::Latest<Image>,
    _subs: Vec<loho_runtime::bus::Subscription>,
}

impl Graph {
    fn start() -> Self {
        let sim_ep = format!("tcp/127.0.0.1:{}", free_port());
        let ctrl_ep = format!("tcp/127.0.0.1:{}", free_port());
        // zenoh peers do not forward for each other: every pair needs a link, so this
        // process listens too and every node connects to it.
        let test_ep = format!("tcp/127.0.0.1:{}", free_port());
        let bus = Bus::open(&BusConfig {
            listen: vec![test_ep.clone()],
            ..Default::default()
        })
        .unwrap();
        let sim = Node::spawn(&[
            "sim",
            "--task",
            "B",
            "--split",
            "test",
            "--episode",
            "2",
            "--fps",
            "20",
            "--listen",
            &sim_ep,
            "--connect",
            &test_ep,
        ]);
        let controller = Node::spawn(&[
            "controller",
            "--listen",
            &ctrl_ep,
            "--connect",
            &sim_ep,
            "--connect",
            &test_ep,
        ]);
        let (cmds, a) = log(&bus, keys::CMD_EE);
        let (status, b) = log(&bus, keys::EXEC_STATUS);
        let (diags, c) = log(&bus, keys::DIAGNOSTICS);
        let (events, d) = log(&bus, keys::EPISODE);
        let state = bus.latest::<ArmState>(keys::STATE).unwrap();
        let color = bus.latest::<Image>(keys::COLOR).unwrap();
        let g = Graph {
            sim,
            controller,
            policy: None,
            endpoints: [sim_ep, ctrl_ep, test_ep],
            bus,
            cmds,
            status,
            diags,
            events,
            state,
            color,
            _subs: vec![a, b, c, d],
        };
        for node in ["sim", "arm", "controller"] {
            wait_for(node, Duration::from_secs(60), || {
                g.bus
                    .is_alive(node, Duration::from_millis(500))
                    .unwrap()
                    .then_some(())
            });
        }
        g
    }

    fn start_policy(&mut self) {
        self.policy = Some(Node::spawn(&[
            "policy",
            "--connect",
            &self.endpoints[0],
            "--connect",
            &self.endpoints[1],
            "--connect",
            &self.endpoints[2],
        ]));
    }

    fn assert_nodes_alive(&mut self) {
        assert!(self.sim.running(), "the sim process died");
        assert!(self.controller.running(), "the controller process died");
    }

    fn tip(&self) -> [f64; 3] {
        let p = wait_for("arm state", Duration::from_secs(10), || self.state.get())
            .ee_pose
            .position;
        [p.x, p.y, p.z]
    }

    fn status_of(&self, id: u64, state: u8) -> Option<ExecStatus> {
        self.status
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .find(|s| s.chunk_id == id && s.state == state)
    }

    fn cmds_after(&self, t: Instant) -> usize {
        self.cmds
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > t)
            .count()
    }

    fn last_cmd(&self) -> Option<Instant> {
        self.cmds.lock().unwrap().last().map(|(t, _)| *t)
    }

    /// Sends a chunk until the controller answers it (the first put may beat the
    /// propagation of the subscription between processes); returns the answer.
    fn send(&self, chunk: &ActionChunk) -> ExecStatus {
        let publisher = self
            .bus
            .publisher::<ActionChunk>(keys::ACTION, Qos::Command)
            .unwrap();
        put_until(&publisher, chunk, "the controller's answer", || {
            self.status
                .lock()
                .unwrap()
                .iter()
                .map(|(_, s)| s.clone())
                .find(|s| s.chunk_id == chunk.chunk_id)
        })
    }

    fn estop(&self, on: bool) {
        let p = self
            .bus
            .publisher::<BoolMsg>(keys::ESTOP, Qos::Command)
            .unwrap();
        p.put(&BoolMsg { data: on }).unwrap();
    }
}

/// The oracle's first pick-and-place of the sim's episode, as a chunk.
fn oracle_chunk(id: u64) -> ActionChunk {
    let env = Env::new(TaskId::B, Split::Test, Split::Test.seed(2)).unwrap();
    let decision = env.ask(&mut Oracle).unwrap();
    assert!(matches!(decision, Decision::Act(_)), "oracle has work");
    chunk(&decision, 0.0, id)
}

fn frames_and_a_chunk_cross_processes(g: &mut Graph) {
    // A frame from the other process, decoded.
    let img = wait_for("a colour frame", Duration::from_secs(60), || g.color.get());
    img.check("rgb8", 3).unwrap();
    assert_eq!((img.width as usize, img.height as usize), (WIDTH, HEIGHT));
    let objects = img.data.chunks(3).filter(|c| *c != TABLE).count();
    assert!(objects > 500, "the scene shows objects ({objects} pixels)");

    // The oracle's first action: streamed as setpoints, executed, scored.
    let chunk = oracle_chunk(1);
    let first = g.send(&chunk);
    assert_eq!(first.state, ExecStatus::RUNNING, "{first:?}");
    let done = wait_for("the chunk done", Duration::from_secs(30), || {
        g.status_of(1, ExecStatus::DONE)
    });
    assert_eq!(done.reason, "");
    let n = g.cmds.lock().unwrap().len();
    assert!(
        n > 300,
        "a pick-and-place is hundreds of setpoints at 125 Hz, got {n}"
    );
    let ev = wait_for("the step scored", Duration::from_secs(30), || {
        g.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .find(|e| e.step == 1)
    });
    assert!(ev.reward > 0.0 && !ev.done, "{ev:?}");
    assert_eq!(ev.task, "put-block-into-matching-bowl");
}

fn recorder_killed_outright(g: &mut Graph) {
    let out = std::env::temp_dir().join(format!("loho-killed-{}.mcap", std::process::id()));
    let [sim, ctrl, test] = &g.endpoints;
    let recorder = Node::spawn(&[
        "record",
        "--out",
        out.to_str().unwrap(),
        "--connect",
        sim,
        "--connect",
        ctrl,
        "--connect",
        test,
    ]);
    std::thread::sleep(Duration::from_millis(3500));
    let killed = loho_core::clock::wall_ns();
    drop(recorder); // SIGKILL: no footer, no index, the open chunk lost
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    let options = mcap::read::Options::IgnoreEndMagic.into();
    let (mut frames, mut last) = (0, 0);
    // Every whole chunk decodes; the reader stops at the one the kill cut.
    for m in mcap::MessageStream::new_with_options(&bytes, options)
        .unwrap()
        .map_while(Result::ok)
    {
        frames += usize::from(m.channel.topic.ends_with("camera/top/color"));
        last = last.max(m.log_time);
    }
    let lost = Duration::from_nanos(killed.saturating_sub(last));
    eprintln!("  {frames} colour frames read back; the last message {lost:?} before the kill");
    assert!(frames > 20, "only {frames} frames in 3.5 s at 20 fps");
    assert!(lost <= Duration::from_secs(1), "lost the last {lost:?}");
}

fn bad_chunks_are_refused_with_their_reason(g: &mut Graph) {
    let before = g.tip();
    let t0 = Instant::now();
    let mut nan = oracle_chunk(2);
    nan.keyposes[0].pose.position.x = f64::NAN;
    let s = g.send(&nan);
    assert_eq!(s.state, ExecStatus::FAILED, "{s:?}");
    assert!(s.reason.contains("not finite"), "{s:?}");

    let mut outside = oracle_chunk(3);
    outside.keyposes[1].pose.position.y = 0.9;
    let s = g.send(&outside);
    assert_eq!(s.state, ExecStatus::FAILED, "{s:?}");
    assert!(s.reason.contains("outside the workspace"), "{s:?}");

    let mut short = oracle_chunk(4);
    short.keyposes.truncate(1);
    let s = g.send(&short);
    assert_eq!(s.state, ExecStatus::FAILED, "{s:?}");
    assert!(s.reason.contains("2 keyposes"), "{s:?}");

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(g.cmds_after(t0), 0, "a refused chunk sends no setpoint");
    assert_eq!(g.tip(), before, "the arm did not move");
    let diag = g.diags.lock().unwrap().iter().any(|(at, d)| {
        *at > t0 && d.status[0].message == "chunk rejected" && d.status[0].name == "controller"
    });
    assert!(diag, "refusals are on diagnostics");
}

fn garbage_on_every_key(g: &mut Graph) {
    let before = g.tip();
    let t0 = Instant::now();
    let garbage: [&[u8]; 3] = [
        &[],
        &[0, 1, 0, 0, 0xff, 0xff, 0xff, 0x7f],
        &[0, 1, 0, 0, 1, 2, 3],
    ];
    for (topic, _) in loho_runtime::keys::TOPICS {
        for bytes in garbage {
            g.bus.put_bytes(topic, bytes.to_vec()).unwrap();
        }
    }
    // Undecodable e-stop messages latch the e-stop; clear it.
    std::thread::sleep(Duration::from_millis(500));
    g.estop(false);
    std::thread::sleep(Duration::from_millis(300));
    let diags: Vec<(String, String)> = g
        .diags
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at > t0)
        .map(|(_, d)| (d.status[0].name.clone(), d.status[0].message.clone()))
        .collect();
    for (node, what) in [
        ("arm", "undecodable cmd/ee"),
        ("arm", "undecodable exec/status"),
        ("arm", "undecodable estop"),
        ("sim", "undecodable exec/status"),
        ("controller", "undecodable policy/action"),
        ("controller", "undecodable estop"),
        ("controller", "undecodable clock"),
        ("controller", "undecodable state"),
    ] {
        assert!(
            diags.iter().any(|(n, m)| n == node && m == what),
            "no {node} diagnostic {what:?} in {diags:?}"
        );
    }
    assert_eq!(g.cmds_after(t0), 0, "garbage sends no setpoint");
    assert_eq!(g.tip(), before, "the arm did not move");
}

fn estop_stops_motion_until_cleared(g: &mut Graph) {
    // From here on the shipped policy drives the loop.
    g.start_policy();
    let t_start = Instant::now();
    wait_for("a chunk from the policy", Duration::from_secs(120), || {
        (g.cmds_after(t_start) > 50).then_some(())
    });
    let t_stop = Instant::now();
    g.estop(true);
    std::thread::sleep(Duration::from_millis(200));
    let held = g.tip();
    let late = g
        .cmds
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at > t_stop)
        .map(|(at, _)| *at - t_stop)
        .max();
    eprintln!("  last setpoint {late:?} after the e-stop was sent");
    assert!(
        late.is_none_or(|d| d < Duration::from_millis(50)),
        "setpoints went on {late:?} after the e-stop"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(g.tip(), held, "the arm holds while the e-stop is latched");
    assert_eq!(g.cmds_after(t_stop + Duration::from_millis(50)), 0);
    let stopped = g
        .status
        .lock()
        .unwrap()
        .iter()
        .any(|(at, s)| *at > t_stop && s.state == ExecStatus::STOPPED && s.reason == "e-stop");
    assert!(stopped, "the chunk is reported stopped by the e-stop");

    let sent_while_latched =
        g.status.lock().unwrap().iter().any(|(at, s)| {
            *at > t_stop + Duration::from_millis(50) && s.reason == "e-stop is latched"
        });
    assert!(
        !sent_while_latched,
        "the policy decides nothing while the e-stop is latched"
    );
    let t_clear = Instant::now();
    g.estop(false);
    wait_for("motion after clearing", Duration::from_secs(60), || {
        (g.cmds_after(t_clear) > 20).then_some(())
    });
}

fn policy_infer_answers_queries_and_refuses_bad_ones(g: &mut Graph) {
    const TIMEOUT: Duration = Duration::from_secs(30);
    let env = Env::new(TaskId::B, Split::Test, Split::Test.seed(2)).unwrap();
    let obs = env.observe();
    let header = Header::new(0.0, "world");
    let (w, h) = (WIDTH as u32, HEIGHT as u32);
    let request = InferRequest {
        instruction: env.instruction().into(),
        color: Image::rgb8(header.clone(), w, h, obs.rgb_bytes()),
        depth: Image::f32c1(header, w, h, &obs.height),
        keep_subtask: String::new(),
        rewrite: false,
        seed: 5,
    };
    let ask = |q: &InferRequest| g.bus.query::<_, ActionChunk>(keys::INFER, q, TIMEOUT);
    // The policy process may still be loading its checkpoint.
    let first = wait_for(
        "an answer from policy/infer",
        Duration::from_secs(60),
        || ask(&request).ok(),
    );
    assert!(!first.subtask.is_empty());
    assert_eq!(first.keyposes.len(), 2, "{first:?}");
    assert_eq!(
        [first.keyposes[0].gripper, first.keyposes[1].gripper],
        [1.0, 0.0],
        "suction on at the pick, off at the place"
    );
    for k in &first.keyposes {
        let p = &k.pose.position;
        assert!(
            (0.25..=0.75).contains(&p.x) && (-0.5..=0.5).contains(&p.y),
            "{p:?}"
        );
    }
    // The server keeps no state between queries: the same query gets the same answer,
    // whatever the node did in between.
    let again = ask(&request).unwrap();
    assert_eq!(again.keyposes, first.keyposes);
    assert_eq!(again.subtask, first.subtask);
    let kept = "pick up the red block and place it on the red bowl.";
    let keep = ask(&InferRequest {
        keep_subtask: kept.into(),
        ..request.clone()
    })
    .unwrap();
    assert_eq!(keep.subtask, kept);
    assert_eq!(keep.keyposes.len(), 2);

    // Bad queries get an error reply saying why; the node goes on serving.
    let refused = |r: Result<ActionChunk, BusError>, why: &str| match r {
        Err(BusError::Refused { reason, .. }) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a refusal ({why}), got {other:?}"),
    };
    let garbage = StringMsg {
        data: "not an observation".into(),
    };
    refused(
        g.bus
            .query::<_, ActionChunk>(keys::INFER, &garbage, TIMEOUT),
        "undecodable",
    );
    let mut truncated = request.clone();
    truncated.color.data.truncate(100);
    refused(ask(&truncated), "colour");
    let mut small = request.clone();
    small.depth = Image::f32c1(Header::new(0.0, "world"), 2, 2, &[0.0; 4]);
    refused(ask(&small), "sizes differ");
    let mut wrong = request.clone();
    wrong.color.encoding = "bgr8".into();
    refused(ask(&wrong), "encoding");
    assert_eq!(ask(&request).unwrap().keyposes, first.keyposes);
    let diagnosed = g
        .diags
        .lock()
        .unwrap()
        .iter()
        .any(|(_, d)| d.status.iter().any(|s| s.message.contains("policy/infer")));
    assert!(diagnosed, "refusals are reported on diagnostics");
}

fn policy_killed_then_restarted(g: &mut Graph) {
    // Wait for the policy's next chunk to be under way, then kill the policy.
    let t0 = Instant::now();
    wait_for("a running chunk", Duration::from_secs(120), || {
        let running = g
            .status
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(at, _)| *at > t0)
            .is_some_and(|(_, s)| s.state == ExecStatus::RUNNING);
        (running && g.cmds_after(t0) > 30).then_some(())
    });
    let policy = g.policy.take().expect("the policy runs");
    let t_kill = Instant::now();
    drop(policy);
    std::thread::sleep(WATCHDOG * 4);
    let last = g.last_cmd().expect("setpoints were sent");
    let after = last.saturating_duration_since(t_kill);
    eprintln!("  last setpoint {after:?} after the kill");
    assert!(
        after < WATCHDOG,
        "setpoints went on {after:?} after the policy died"
    );
    let held = g.tip();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(g.tip(), held, "the arm holds");
    assert_eq!(g.cmds_after(t_kill + WATCHDOG), 0);
    let stopped =
        g.status.lock().unwrap().iter().any(|(at, s)| {
            *at > t_kill && s.state == ExecStatus::STOPPED && s.reason == "policy lost"
        });
    assert!(stopped, "the chunk is reported stopped: policy lost");

    let t_restart = Instant::now();
    g.start_policy();
    wait_for("the loop resuming", Duration::from_secs(120), || {
        let running = g
            .status
            .lock()
            .unwrap()
            .iter()
            .any(|(at, s)| *at > t_restart && s.state == ExecStatus::RUNNING);
        (running && g.cmds_after(t_restart) > 20).then_some(())
    });
}

fn policy_started_under_a_latched_estop(g: &mut Graph) {
    // The e-stop latches while no policy runs: the one that starts never hears of it, and
    // the controller stops each of its chunks.
    drop(g.policy.take().expect("the policy runs"));
    g.estop(true);
    std::thread::sleep(Duration::from_millis(300));
    let t_start = Instant::now();
    g.start_policy();
    // When the controller stopped a chunk for the latched e-stop, since the start.
    let stopped = || -> Vec<Instant> {
        g.status
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, s)| *at >= t_start && s.reason == "e-stop is latched")
            .map(|(at, _)| *at)
            .collect()
    };
    let first = wait_for("a stopped chunk", Duration::from_secs(120), || {
        stopped().first().copied()
    });
    std::thread::sleep(Duration::from_secs(2));
    let window = first..=first + Duration::from_secs(2);
    let n = stopped()
        .into_iter()
        .filter(|at| window.contains(at))
        .count();
    // Half a second between tries: 5 at most (the sim's 20 frames a second, without it).
    assert!(
        n <= 5,
        "{n} chunks stopped in 2 s: the policy does not back off"
    );
    assert_eq!(g.cmds_after(t_start), 0, "nothing moves");
    let t_clear = Instant::now();
    g.estop(false);
    wait_for("motion after clearing", Duration::from_secs(60), || {
        (g.cmds_after(t_clear) > 20).then_some(())
    });
}
