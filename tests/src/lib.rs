//! Helpers of loho's end-to-end tests (`tests/`): real zenoh sessions over loopback,
//! real processes. The tests themselves are `tests/cli.rs` (the command line) and
//! `tests/nodes.rs` (the nodes as processes, with faults).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loho_runtime::bus::Subscription;
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
