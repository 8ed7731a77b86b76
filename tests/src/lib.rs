//! Helpers of loho's tests over zenoh: waiting for what a peer says, logging a topic, a
//! free loopback port. Used by the end-to-end tests here (`tests/cli.rs`, the command
//! line; `tests/nodes.rs`, the nodes as processes, with faults) and by the crates' own
//! integration tests (as a dev-dependency; this library needs only `loho-runtime`).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loho_runtime::bus::{Publisher, Subscription};
use loho_runtime::{Bus, Message};

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
