//! The node runner with a node of the test's own, over two zenoh sessions on loopback:
//! its events arrive in order and undecodable ones never reach it, the e-stop latches
//! (also on garbage) and releases, watched peers are followed, the liveliness token comes
//! after the subscriptions and goes at the end, and a finished node stops the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loho_core::config::RuntimeConfig;
use loho_core::msg::{BoolMsg, DiagnosticArray, StringMsg};
use loho_runtime::bus::BusError;
use loho_runtime::node::{self, Context, Node, NodeSpec};
use loho_runtime::{keys, Bus, Qos};
use loho_tests::{eventually, log};

/// What the test node saw, shared with the test.
#[derive(Debug, Default)]
struct Seen {
    texts: Vec<String>,
    ticks: usize,
    /// Each e-stop change the node was told of.
    estops: Vec<bool>,
    /// Whether the watched peer was up at the last tick, and whether one was lost.
    all_up: bool,
    lost: Option<String>,
    stopped: bool,
}

struct Probe {
    seen: Arc<Mutex<Seen>>,
}

impl Node for Probe {
    type Event = String;
    type Error = BusError;

    fn now(&self) -> f64 {
        1.5
    }

    fn event(&mut self, _: &mut Context<String>, text: String) -> Result<(), BusError> {
        self.seen.lock().unwrap().texts.push(text);
        Ok(())
    }

    fn tick(&mut self, cx: &mut Context<String>) -> Result<(), BusError> {
        let mut s = self.seen.lock().unwrap();
        s.ticks += 1;
        s.all_up = cx.all_up();
        s.lost = cx.lost().map(str::to_string);
        Ok(())
    }

    fn estop(&mut self, cx: &mut Context<String>, on: bool) -> Result<(), BusError> {
        assert_eq!(
            cx.estop(),
            on,
            "the node hears of a change the context holds"
        );
        self.seen.lock().unwrap().estops.push(on);
        Ok(())
    }

    fn finished(&self) -> bool {
        self.seen
            .lock()
            .unwrap()
            .texts
            .iter()
            .any(|t| t == "finish")
    }

    fn stop(&mut self, cx: &mut Context<String>) -> Result<(), BusError> {
        assert!(cx.stopping(), "`stop` is set before the node's last words");
        self.seen.lock().unwrap().stopped = true;
        Ok(())
    }
}

#[test]
fn the_runner_owns_events_estop_peers_liveliness_and_the_stop() {
    let (here, there) = Bus::loopback_pair().unwrap();
    let spec = NodeSpec {
        watch: vec!["peer".into()],
        ..NodeSpec::new("probe", &RuntimeConfig::default(), Duration::from_millis(5))
    }
    .with_estop();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            node::run(&here, &spec, stop, |inputs| {
                inputs.forward(keys::INSTRUCTION, |m: StringMsg| m.data)?;
                Ok(Probe { seen })
            })
            .map(|_| ())
        })
    };
    let (diags, _d) = log::<DiagnosticArray>(&there, keys::DIAGNOSTICS);
    let said = |what: &str| {
        diags.lock().unwrap().iter().any(|(_, d)| {
            d.status
                .iter()
                .any(|s| s.name == "probe" && s.message == what)
        })
    };
    // The token comes once the node is subscribed: what is sent now reaches it.
    eventually("the node's token", || {
        there.is_alive("probe", Duration::from_millis(200)).unwrap()
    });
    let texts = there
        .publisher::<StringMsg>(keys::INSTRUCTION, Qos::Command)
        .unwrap();
    let send = |t: &str| texts.put(&StringMsg { data: t.into() }).unwrap();
    eventually("an event through the route", || {
        send("hello");
        !seen.lock().unwrap().texts.is_empty()
    });
    for t in ["one", "two", "three"] {
        send(t);
    }
    eventually("events in order", || {
        seen.lock()
            .unwrap()
            .texts
            .ends_with(&["one".into(), "two".into(), "three".into()])
    });

    // Garbage is reported by the runtime, named for its topic, and never reaches the node.
    let before = seen.lock().unwrap().texts.len();
    there
        .put_bytes(keys::INSTRUCTION, vec![0, 1, 0, 0, 200, 0, 0, 0])
        .unwrap();
    eventually("the undecodable report", || said("undecodable instruction"));
    assert_eq!(seen.lock().unwrap().texts.len(), before);

    // The e-stop latches and releases (not secured); garbage on it latches it too.
    let estop = there
        .publisher::<BoolMsg>(keys::ESTOP, Qos::Command)
        .unwrap();
    estop.put(&BoolMsg { data: true }).unwrap();
    eventually("the latch", || seen.lock().unwrap().estops == [true]);
    estop.put(&BoolMsg { data: true }).unwrap();
    estop.put(&BoolMsg { data: false }).unwrap();
    eventually("the release", || {
        seen.lock().unwrap().estops == [true, false]
    });
    there.put_bytes(keys::ESTOP, vec![0, 1]).unwrap();
    eventually("garbage latches it", || {
        seen.lock().unwrap().estops == [true, false, true]
    });
    // Each report is a diagnostics message of its own, which may land after the node
    // has acted on the e-stop.
    eventually("the e-stop's reports", || {
        said("e-stop latched") && said("e-stop cleared") && said("undecodable estop")
    });

    // A watched peer: not up until its token comes (as a tick after this one sees), lost
    // when it goes.
    let ticks = seen.lock().unwrap().ticks;
    eventually("a tick", || seen.lock().unwrap().ticks > ticks);
    assert!(!seen.lock().unwrap().all_up);
    let peer = there.alive("peer").unwrap();
    eventually("the peer up", || seen.lock().unwrap().all_up);
    drop(peer);
    eventually("the peer lost", || {
        seen.lock().unwrap().lost.as_deref() == Some("peer")
    });

    // A finished node ends the loop: `stop` set, last words said, the token gone.
    send("finish");
    runner.join().unwrap().unwrap();
    assert!(stop.load(Ordering::Relaxed) && seen.lock().unwrap().stopped);
    eventually("the token to go", || {
        !there.is_alive("probe", Duration::from_millis(200)).unwrap()
    });
}
