//! Nodes in separate processes over loopback zenoh.
//!
//! This test binary is also the `loho` command line: started with `LOHO_CHILD_ARGS` set,
//! it runs `loho::main_with` on those arguments (the same code path as the `loho`
//! binary), so a test can start a real node in another process without knowing where
//! cargo put the binary.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use loho_runtime::keys;
use loho_runtime::msg::{ActionChunk, DiagnosticArray, EpisodeEvent, Header, Image, Keypose, Pose};
use loho_runtime::{Bus, BusConfig};
use loho_sim::camera::{HEIGHT, WIDTH};
use loho_sim::colors::TABLE;
use loho_sim::{Decision, Env, Oracle, Policy, Split, TaskId};

const CHILD: &str = "LOHO_CHILD_ARGS";

fn main() {
    if let Ok(args) = std::env::var(CHILD) {
        let argv =
            std::iter::once("loho".to_string()).chain(args.split('\u{1f}').map(String::from));
        if let Err(e) = loho::main_with(argv) {
            eprintln!("child failed: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let tests: [(&str, fn()); 1] = [(
        "sim_frames_and_chunks_cross_processes",
        sim_frames_and_chunks_cross_processes,
    )];
    for (name, t) in tests {
        eprintln!("test {name} ...");
        t();
        eprintln!("test {name} ok");
    }
}

/// A child process running `loho <args>`; killed when dropped.
struct Node(Child);

impl Node {
    fn spawn(args: &[&str]) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, args.join("\u{1f}"))
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawn child node");
        Node(child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sim_frames_and_chunks_cross_processes() {
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let _sim = Node::spawn(&[
        "sim", "--task", "B", "--split", "test", "--seed", "2", "--fps", "20", "--listen",
        &endpoint,
    ]);
    let bus = Bus::open(&BusConfig {
        connect: vec![endpoint.clone()],
        ..Default::default()
    })
    .unwrap();
    let color = bus.latest::<Image>(keys::COLOR).unwrap();
    let depth = bus.latest::<Image>(keys::DEPTH).unwrap();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    let _events_sub = bus
        .subscribe::<EpisodeEvent, _>(keys::EPISODE, move |e| {
            sink.lock().unwrap().push(e.unwrap())
        })
        .unwrap();
    let diags = bus.latest::<DiagnosticArray>(keys::DIAGNOSTICS).unwrap();

    // A frame from the other process, decoded.
    let img = wait_for("a colour frame", Duration::from_secs(60), || color.get());
    img.check("rgb8", 3).unwrap();
    assert_eq!((img.width as usize, img.height as usize), (WIDTH, HEIGHT));
    let objects = img.data.chunks(3).filter(|c| *c != TABLE).count();
    assert!(objects > 500, "the scene shows objects ({objects} pixels)");
    let d = wait_for("a depth frame", Duration::from_secs(10), || depth.get());
    assert_eq!(d.to_f32().unwrap().len(), WIDTH * HEIGHT);
    assert!(sim_alive(&bus), "the sim declares its liveliness token");

    // Garbage on the action topic: a diagnostic, no crash.
    bus.put_bytes(keys::ACTION, vec![0, 1, 0, 0, 0xff, 0xff, 0xff, 0x7f])
        .unwrap();
    let diag = wait_for("a diagnostic", Duration::from_secs(10), || diags.get());
    assert!(diag.status[0].message.contains("undecodable"), "{diag:?}");

    // The oracle's first action for the same episode, as a chunk: the sim executes it.
    let env = Env::new(TaskId::B, Split::Test, Split::Test.seed(2)).unwrap();
    let Decision::Act(a) = Oracle.decide(&env, &env.observe()) else {
        panic!("oracle has work")
    };
    let pose = |p: &loho_runtime::trajectory::EePose| Pose::from_xyz_yaw(p.x, p.y, p.z, p.yaw);
    let chunk = ActionChunk {
        header: Header::new(0.0, "world"),
        chunk_id: 1,
        subtask: a.subtask.clone(),
        keyposes: vec![
            Keypose {
                pose: pose(&a.pick),
                gripper: 1.0,
                duration: 0.0,
            },
            Keypose {
                pose: pose(&a.place),
                gripper: 0.0,
                duration: 0.0,
            },
        ],
        ..Default::default()
    };
    let publisher = bus
        .publisher::<ActionChunk>(keys::ACTION, loho_runtime::Qos::Command)
        .unwrap();
    let mut last_put: Option<Instant> = None;
    let ev = wait_for("an episode event", Duration::from_secs(30), || {
        // Re-send now and then until the sim has seen it: the first put may beat the
        // propagation of the subscription between the processes.
        if last_put.is_none_or(|t| t.elapsed() > Duration::from_secs(3)) {
            publisher.put(&chunk).unwrap();
            last_put = Some(Instant::now());
        }
        events.lock().unwrap().first().cloned()
    });
    assert_eq!(ev.step, 1);
    assert!(ev.reward > 0.0 && !ev.done, "{ev:?}");
    assert_eq!(ev.task, "put-block-into-matching-bowl");

    // A chunk that is not a pick and a place: rejected, no step.
    let mut short = chunk.clone();
    short.keyposes.truncate(1);
    publisher.put(&short).unwrap();
    wait_for("a rejection", Duration::from_secs(10), || {
        diags
            .get()
            .filter(|d| d.status[0].message == "chunk rejected")
    });
    // A NaN keypose: rejected with its reason; the step is spent, nothing earned.
    let mut nan = chunk.clone();
    nan.keyposes[1].pose.position.x = f64::NAN;
    publisher.put(&nan).unwrap();
    let ev = wait_for("the NaN step", Duration::from_secs(10), || {
        events.lock().unwrap().get(1).cloned()
    });
    assert_eq!((ev.step, ev.reward), (2, 0.0));
    wait_for("the NaN diagnostic", Duration::from_secs(10), || {
        diags
            .get()
            .filter(|d| d.status[0].values[0].value.contains("NotFinite"))
    });
    assert_eq!(
        events.lock().unwrap().len(),
        2,
        "the short chunk took no step"
    );
}

fn sim_alive(bus: &Bus) -> bool {
    bus.is_alive("sim", Duration::from_secs(5)).unwrap()
}
