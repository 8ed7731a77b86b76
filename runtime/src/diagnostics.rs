//! What every node says when something goes wrong: one line in the log and one status on
//! `diagnostics` (`diagnostic_msgs/DiagnosticArray`), named for the node.
//!
//! Each kind of report (its `what`) goes out at most [`PER_SECOND`] times a second; the
//! rest are counted and the count rides on the next one that goes out. A flood of bad
//! payloads from a foreign session would otherwise be answered by one log line and one
//! message per payload and per node: the bus would carry more than the attacker sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bus::{Bus, BusError, Publisher, Qos};
use crate::keys;
use loho_core::msg::DiagnosticArray;

/// Reports of one kind a node sends in a second, at most.
pub const PER_SECOND: u32 = 10;

/// A node's voice on `diagnostics`.
pub struct Diagnostics {
    node: &'static str,
    out: Publisher<DiagnosticArray>,
    kinds: Mutex<HashMap<String, Window>>,
}

/// One kind of report's current second.
struct Window {
    start: Instant,
    sent: u32,
    held: u64,
}

impl Diagnostics {
    pub fn new(bus: &Bus, node: &'static str) -> Result<Self, BusError> {
        Ok(Self {
            node,
            out: bus.publisher(keys::DIAGNOSTICS, Qos::Stream)?,
            kinds: Mutex::default(),
        })
    }

    /// Reports `what` happened and `why`, stamped with the node's clock (s); `level` is
    /// one of [`DiagnosticArray`]'s `WARN`, `ERROR`.
    pub fn report(&self, stamp: f64, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        let Some(held) = self.admit(what) else {
            return Ok(());
        };
        let why = match held {
            0 => why.to_string(),
            n => format!("{why} (and {n} more held back)"),
        };
        tracing::warn!("{}: {what}: {why}", self.node);
        self.out.put(&DiagnosticArray::report(
            stamp, level, self.node, what, &why,
        ))
    }

    /// Whether a report of `what` may go out now, and how many were held back before it.
    fn admit(&self, what: &str) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let w = kinds.entry(what.to_string()).or_insert(Window {
            start: now,
            sent: 0,
            held: 0,
        });
        if now.duration_since(w.start) >= Duration::from_secs(1) {
            w.start = now;
            w.sent = 0;
        }
        if w.sent >= PER_SECOND {
            w.held += 1;
            return None;
        }
        w.sent += 1;
        Some(std::mem::take(&mut w.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_flood_of_one_kind_is_held_back_and_counted_and_other_kinds_still_go_out() {
        let (a, b) = Bus::loopback_pair().unwrap();
        let got = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let sink = got.clone();
        let _sub = b
            .subscribe::<DiagnosticArray, _>(keys::DIAGNOSTICS, move |m| {
                let s = &m.unwrap().status[0];
                sink.lock()
                    .unwrap()
                    .push((s.message.clone(), s.values[0].value.clone()));
            })
            .unwrap();
        let diag = Diagnostics::new(&a, "test").unwrap();
        // The subscription's route reaches `a` before anything that counts is sent.
        let start = Instant::now();
        while got.lock().unwrap().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "no link");
            diag.report(0.0, DiagnosticArray::WARN, "link", "").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        for k in 0..1000 {
            diag.report(0.0, DiagnosticArray::ERROR, "flood", &k.to_string())
                .unwrap();
        }
        diag.report(0.0, DiagnosticArray::ERROR, "other", "x")
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        diag.report(0.0, DiagnosticArray::ERROR, "flood", "last")
            .unwrap();
        let start = Instant::now();
        let of = |what: &str| -> Vec<String> {
            let got = got.lock().unwrap();
            got.iter()
                .filter(|(m, _)| m == what)
                .map(|(_, v)| v.clone())
                .collect()
        };
        while of("flood").len() < PER_SECOND as usize + 1 || of("other").is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{:?}",
                of("flood")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let flood = of("flood");
        let first: Vec<String> = (0..PER_SECOND).map(|k| k.to_string()).collect();
        assert_eq!(flood[..PER_SECOND as usize], first[..]);
        assert_eq!(flood[PER_SECOND as usize], "last (and 990 more held back)");
        assert_eq!(of("other"), ["x"]);
    }
}
