//! Helpers of loho's tests over zenoh: waiting for what a peer says, logging a topic, a
//! free loopback port, a node in a child process. Used by the end-to-end tests here (`tests/cli.rs`, the command
//! line; `tests/nodes.rs`, the nodes as processes, with faults) and by the crates' own
//! integration tests (as a dev-dependency; this library needs only `loho-runtime`), and
//! the decoders' fuzzer ([`fuzz`]).

pub mod fuzz;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loho_core::Message;
use loho_runtime::bus::{Publisher, Subscription};
use loho_runtime::Bus;

/// Set in a child's environment: the `loho` arguments it runs, joined by U+001F.
const CHILD: &str = "LOHO_CHILD_ARGS";
/// The children's `RUST_LOG` (default `warn`): to see what a node did in a failed test.
const CHILD_LOG: &str = "LOHO_CHILD_LOG";

/// For a test binary that is also the `loho` command line (`harness = false`): in a child
/// started by [`Node::spawn`], runs `main` on its arguments and exits; elsewhere returns.
/// A test can then start a real node in another process without knowing where cargo put
/// the binary.
pub fn serve_as_child<E: std::fmt::Display>(main: impl FnOnce(Vec<String>) -> Result<(), E>) {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let argv = std::iter::once("loho".to_string())
        .chain(args.split('\u{1f}').map(String::from))
        .collect();
    if let Err(e) = main(argv) {
        eprintln!("child failed: {e:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// One test of a harness run by [`run_in_order`]: its name and body.
pub type Test<G> = (&'static str, fn(&mut G));

/// Runs `tests` in order on one fixture made by `start` (`check` after each), printing the
/// same lines as libtest so the suite's summary counts this harness too. After a failure
/// the rest are not run, and the process exits with 101.
pub fn run_in_order<G>(tests: &[Test<G>], start: impl FnOnce() -> G, check: fn(&mut G)) {
    println!("\nrunning {} tests", tests.len());
    let t0 = Instant::now();
    let mut g = start();
    let mut passed = 0;
    for (name, t) in tests {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t(&mut g);
            check(&mut g);
        }))
        .is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            break;
        }
        passed += 1;
    }
    // Before exiting, which runs no destructor: the fixture's child processes are killed.
    drop(g);
    let failed = usize::from(passed < tests.len());
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; {} not run; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        tests.len() - passed - failed,
        t0.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

/// A child process running `loho <args>` (this test binary, see [`serve_as_child`]);
/// killed when dropped.
pub struct Node(pub Child);

impl Node {
    pub fn spawn(args: &[&str]) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, args.join("\u{1f}"))
            .env(
                "RUST_LOG",
                std::env::var(CHILD_LOG).unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .expect("spawn child node");
        Node(child)
    }

    pub fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on loopback that nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first `Some` of `f`, asked every 5 ms; panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Puts `msg` every 3 s until `answered` gives `Some` (panics after 30 s): the first put
/// may beat the propagation of the subscription between sessions.
pub fn put_until<T: Message, R>(
    publisher: &Publisher<T>,
    msg: &T,
    what: &str,
    mut answered: impl FnMut() -> Option<R>,
) -> R {
    let mut last_put: Option<Instant> = None;
    wait_for(what, Duration::from_secs(30), || {
        if last_put.is_none_or(|t| t.elapsed() > Duration::from_secs(3)) {
            publisher.put(msg).unwrap();
            last_put = Some(Instant::now());
        }
        answered()
    })
}

/// Waits until `f` holds, asking every 5 ms; panics after 20 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(20), || f().then_some(()));
}

/// Everything a subscriber saw, with when it arrived.
pub type Log<T> = Arc<Mutex<Vec<(Instant, T)>>>;

/// Logs every well-formed message on `topic` (keep the subscription).
pub fn log<T: Message + Send + 'static>(bus: &Bus, topic: &str) -> (Log<T>, Subscription) {
    let l: Log<T> = Arc::new(Mutex::new(Vec::new()));
    let sink = l.clone();
    let sub = bus
        .subscribe::<T, _>(topic, move |m| {
            if let Ok(m) = m {
                sink.lock().unwrap().push((Instant::now(), m))
            }
        })
        .unwrap();
    (l, sub)
}

/// The last event of val episode 0 of task B through a lockstep sim, a controller and a
/// policy (the shipped one) as `loho` processes started together, as a launch file would,
/// linked over `scheme` (`tcp`, `tls`) with `args` added to each. Each node connects to
/// each of `observers` as it starts (one linking to the sim could come after the end);
/// the episode's events are read from `events`, a log one of them keeps.
pub fn lockstep_episode(
    scheme: &str,
    args: &[&str],
    observers: &[String],
    events: &Log<loho_core::msg::EpisodeEvent>,
) -> loho_core::msg::EpisodeEvent {
    let ep = || format!("{scheme}/127.0.0.1:{}", free_port());
    let [sim, controller, policy] = [ep(), ep(), ep()];
    let connect: Vec<&str> = observers
        .iter()
        .flat_map(|o| ["--connect", o.as_str()])
        .collect();
    let node = |own: &[&str]| Node::spawn(&[own, &connect, args].concat());
    let mut nodes = [
        node(&[
            "sim",
            "--task",
            "B",
            "--split",
            "val",
            "--episode",
            "0",
            "--lockstep",
            "--exit-when-done",
            "--listen",
            &sim,
        ]),
        node(&[
            "controller",
            "--sim-time",
            "--listen",
            &controller,
            "--connect",
            &sim,
        ]),
        node(&[
            "policy",
            "--policy",
            "default",
            "--listen",
            &policy,
            "--connect",
            &sim,
            "--connect",
            &controller,
        ]),
    ];
    let end = wait_for("the episode's end", Duration::from_secs(180), || {
        let events = events.lock().unwrap();
        events.iter().map(|(_, e)| e).find(|e| e.done).cloned()
    });
    wait_for("the sim to exit", Duration::from_secs(30), || {
        (!nodes[0].running()).then_some(())
    });
    assert!(nodes[0].0.wait().unwrap().success(), "the sim failed");
    end
}
