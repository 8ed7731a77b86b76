//! The one shape of every node. A [`Node`] says what it does with each event its
//! subscriptions bring, on each tick of its period, when the e-stop latches or clears, and
//! when it stops; [`run`] owns everything else, the same for every node:
//!
//! - its subscriptions, declared through [`Inputs`]: zenoh callbacks only push typed
//!   events into one channel (a payload that does not decode is reported on `diagnostics`
//!   as "undecodable <topic>", never handed to the node);
//! - its peers (`[nodes.<name>]` of `configs/runtime.toml`): logged as they come and go,
//!   and the watched ones followed ([`Context::lost`], [`Context::all_up`]);
//! - the **e-stop latch**, for a node that follows `estop`: `true` latches, `false`
//!   releases it except under `--secure` (restart the node), and a payload on `estop`
//!   nobody can read latches it too;
//! - the liveliness token `@alive/<name>`, declared last, so that a peer that sees the
//!   node alive finds it subscribed;
//! - the loop: `select!` between the channel and the tick, until `stop` is set or the node
//!   says it is [`finished`](Node::finished) (then `stop` is set before the token goes, so
//!   nodes sharing it know this is the end); then [`Node::stop`].
//!
//! A node that must go on seeing events while it works (the controller streaming a chunk)
//! takes them with [`Context::next`] (or [`Context::poll`], without waiting), which handle
//! the runtime's own inputs (e-stop, peers, bad payloads) on the way.
//!
//! Streams where only the newest value matters (frames, `state`) are not events: a node
//! keeps a latest-value slot for them ([`Bus::latest`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use loho_core::config::RuntimeConfig;
use loho_core::msg::{BoolMsg, DiagnosticArray};
use loho_core::Message;

use crate::bus::{AliveWatch, Bus, BusError, Queryable, Request, Subscription};
use crate::diagnostics::Diagnostics;
use crate::keys;

/// Who a node is on the bus and what the runtime does for it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Its liveliness token `@alive/<name>`, its diagnostics, its log lines.
    pub name: &'static str,
    /// Nodes whose coming and going it logs.
    pub peers: Vec<String>,
    /// Nodes it follows: [`Context::all_up`], [`Context::lost`].
    pub watch: Vec<String>,
    /// Whether it follows `estop` (and latches it).
    pub estop: bool,
    /// How often [`Node::tick`] runs.
    pub period: Duration,
}

impl NodeSpec {
    /// The node `name` with the peers `runtime` gives it (`[nodes.<name>]`), ticking every
    /// `period`, not following the e-stop.
    pub fn new(name: &'static str, runtime: &RuntimeConfig, period: Duration) -> Self {
        let peers = runtime.nodes.get(name).cloned().unwrap_or_default();
        Self {
            name,
            peers: peers.peers,
            watch: peers.watch,
            estop: false,
            period,
        }
    }

    /// The same, following the e-stop.
    pub fn with_estop(self) -> Self {
        Self {
            estop: true,
            ..self
        }
    }
}

/// A node: what it does with what reaches it. The runtime owns the loop ([`run`]).
pub trait Node {
    /// What its subscriptions bring.
    type Event: Send + 'static;
    type Error: From<BusError>;

    /// Its clock (s): the stamp of the runtime's diagnostics for it.
    fn now(&self) -> f64;

    /// One event from its subscriptions.
    fn event(&mut self, cx: &mut Context<Self::Event>, e: Self::Event) -> Result<(), Self::Error>;

    /// Once every period.
    fn tick(&mut self, cx: &mut Context<Self::Event>) -> Result<(), Self::Error>;

    /// The e-stop latched (`true`) or was released: what the node does about it. The
    /// runtime has reported it already; [`Context::estop`] says it from now on.
    fn estop(&mut self, cx: &mut Context<Self::Event>, on: bool) -> Result<(), Self::Error> {
        let _ = (cx, on);
        Ok(())
    }

    /// Whether it has done its work (the loop ends as if stopped).
    fn finished(&self) -> bool {
        false
    }

    /// Its last words, after the loop (an arm holds).
    fn stop(&mut self, cx: &mut Context<Self::Event>) -> Result<(), Self::Error> {
        let _ = cx;
        Ok(())
    }
}

/// What reaches a node's loop: its own events, or the runtime's.
enum Input<E> {
    Node(E),
    EStop(bool),
    /// A watched node's liveliness token came (true) or went (false).
    Alive(usize, bool),
    Bad(String, String),
}

/// The subscriptions of a node being built: every callback pushes into the node's one
/// channel.
pub struct Inputs<'a, E> {
    bus: &'a Bus,
    tx: Sender<Input<E>>,
    diag: Arc<Diagnostics>,
    subs: Vec<Subscription>,
    queryables: Vec<Queryable>,
}

impl<E: Send + 'static> Inputs<'_, E> {
    /// The bus, for the node's publishers and latest-value slots.
    pub fn bus(&self) -> &Bus {
        self.bus
    }

    /// The node's voice on `diagnostics`, shared with the runtime.
    pub fn diagnostics(&self) -> Arc<Diagnostics> {
        self.diag.clone()
    }

    /// Each message on `topic` as the event `event` makes of it.
    pub fn forward<T, F>(&mut self, topic: &str, event: F) -> Result<(), BusError>
    where
        T: Message + 'static,
        F: Fn(T) -> E + Send + Sync + 'static,
    {
        let tx = self.tx.clone();
        let name = topic.to_string();
        self.subs.push(self.bus.subscribe::<T, _>(topic, move |m| {
            let _ = tx.send(match m {
                Ok(m) => Input::Node(event(m)),
                Err(e) => Input::Bad(name.clone(), e.to_string()),
            });
        })?);
        Ok(())
    }

    /// Each query on `topic` as the event `event` makes of it, answered on the node's
    /// thread.
    pub fn serve<Q, F>(&mut self, topic: &str, event: F) -> Result<(), BusError>
    where
        Q: Message + 'static,
        F: Fn(Request<Q>) -> E + Send + Sync + 'static,
    {
        let tx = self.tx.clone();
        self.queryables
            .push(self.bus.serve::<Q, _>(topic, move |q| {
                let _ = tx.send(Input::Node(event(q)));
            })?);
        Ok(())
    }
}

/// A watched node, as its liveliness token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Unseen,
    Up,
    Lost,
}

/// The runtime as a node's handlers see it.
pub struct Context<E> {
    events: Receiver<Input<E>>,
    diag: Arc<Diagnostics>,
    watched: Vec<(String, Peer)>,
    estop: bool,
    /// Whether `estop` false releases it (not under `--secure`).
    releasable: bool,
    stop: Arc<AtomicBool>,
}

impl<E> Context<E> {
    /// Reports `what` and `why` on `diagnostics`, stamped `stamp` (the node's clock).
    fn report(&self, stamp: f64, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        self.diag.report(stamp, level, what, why)
    }

    /// Whether the e-stop is latched.
    pub fn estop(&self) -> bool {
        self.estop
    }

    /// Whether every watched node is up now.
    pub fn all_up(&self) -> bool {
        self.watched.iter().all(|(_, p)| *p == Peer::Up)
    }

    /// A watched node that was up and went away, if one did.
    pub fn lost(&self) -> Option<&str> {
        self.watched
            .iter()
            .find(|(_, p)| *p == Peer::Lost)
            .map(|(n, _)| n.as_str())
    }

    /// Whether the node is asked to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The node's next event before `deadline` (`None` at the deadline or when the
    /// channel closed), with the runtime's own inputs (e-stop, peers, bad payloads)
    /// handled on the way; `now` is the node's clock, for their diagnostics. The e-stop
    /// is only latched here: the node sees [`Context::estop`] change, not
    /// [`Node::estop`].
    pub fn next(&mut self, deadline: Instant, now: f64) -> Result<Option<E>, BusError> {
        while let Ok(input) = self.events.recv_deadline(deadline) {
            if let Handled::Node(e) = self.runtime_input(input, now)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// [`Context::next`] without waiting: the next event that has already come.
    pub fn poll(&mut self, now: f64) -> Result<Option<E>, BusError> {
        while let Ok(input) = self.events.try_recv() {
            if let Handled::Node(e) = self.runtime_input(input, now)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// What the runtime makes of an input: the node's event, an e-stop change, or nothing
    /// more to do.
    fn runtime_input(&mut self, input: Input<E>, now: f64) -> Result<Handled<E>, BusError> {
        match input {
            Input::Node(e) => return Ok(Handled::Node(e)),
            Input::Alive(i, up) => self.watched[i].1 = if up { Peer::Up } else { Peer::Lost },
            Input::EStop(on) => return self.set_estop(on, now),
            Input::Bad(topic, why) if topic == keys::ESTOP => {
                // An e-stop message nobody can read is taken as an e-stop.
                let why = format!("{why}; e-stop latched");
                self.report(now, DiagnosticArray::ERROR, "undecodable estop", &why)?;
                if !self.estop {
                    self.estop = true;
                    return Ok(Handled::EStop(true));
                }
            }
            Input::Bad(topic, why) => self.report(
                now,
                DiagnosticArray::ERROR,
                &format!("undecodable {topic}"),
                &why,
            )?,
        }
        Ok(Handled::Done)
    }

    fn set_estop(&mut self, on: bool, now: f64) -> Result<Handled<E>, BusError> {
        if on == self.estop {
            return Ok(Handled::Done);
        }
        if !on && !self.releasable {
            self.report(
                now,
                DiagnosticArray::WARN,
                "e-stop release ignored",
                crate::secure::RELEASE_IGNORED,
            )?;
            return Ok(Handled::Done);
        }
        self.estop = on;
        let what = if on {
            "e-stop latched"
        } else {
            "e-stop cleared"
        };
        self.report(now, DiagnosticArray::WARN, what, "estop topic")?;
        Ok(Handled::EStop(on))
    }
}

enum Handled<E> {
    Node(E),
    EStop(bool),
    Done,
}

/// Runs the node `build` makes (declaring its subscriptions on the [`Inputs`] it is
/// given) on the calling thread until `stop` is set or the node is finished, and hands it
/// back.
pub fn run<N, B>(bus: &Bus, spec: &NodeSpec, stop: Arc<AtomicBool>, build: B) -> Result<N, N::Error>
where
    N: Node,
    B: FnOnce(&mut Inputs<N::Event>) -> Result<N, N::Error>,
{
    let (tx, events) = crossbeam_channel::unbounded();
    let mut inputs = Inputs {
        bus,
        tx,
        diag: Arc::new(Diagnostics::new(bus, spec.name)?),
        subs: Vec::new(),
        queryables: Vec::new(),
    };
    let _peers = watch_peers(bus, spec, &inputs.tx, stop.clone())?;
    if spec.estop {
        let tx = inputs.tx.clone();
        inputs
            .subs
            .push(bus.subscribe::<BoolMsg, _>(keys::ESTOP, move |m| {
                let _ = tx.send(match m {
                    Ok(b) => Input::EStop(b.data),
                    Err(e) => Input::Bad(keys::ESTOP.into(), e.to_string()),
                });
            })?);
    }
    let mut node = build(&mut inputs)?;
    let Inputs {
        diag,
        subs: _subs,
        queryables: _queryables,
        ..
    } = inputs;
    let mut cx = Context {
        events,
        diag,
        watched: spec
            .watch
            .iter()
            .map(|n| (n.clone(), Peer::Unseen))
            .collect(),
        estop: false,
        releasable: !bus.is_secure(),
        stop: stop.clone(),
    };
    // Last, so that a peer that sees the node alive finds it subscribed.
    let alive = bus.alive(spec.name)?;
    let ticks = crossbeam_channel::tick(spec.period);
    while !cx.stopping() && !node.finished() {
        let input = select! {
            recv(cx.events) -> i => match i {
                Ok(i) => Some(i),
                Err(_) => break,
            },
            recv(ticks) -> _ => None,
        };
        match input {
            Some(input) => match cx.runtime_input(input, node.now())? {
                Handled::Node(e) => node.event(&mut cx, e)?,
                Handled::EStop(on) => node.estop(&mut cx, on)?,
                Handled::Done => {}
            },
            None => node.tick(&mut cx)?,
        }
    }
    // Before the liveliness token goes: nodes sharing `stop` know this is the end.
    stop.store(true, Ordering::Relaxed);
    node.stop(&mut cx)?;
    tracing::debug!("{}: stopped", spec.name);
    drop(alive);
    Ok(node)
}

/// Logs each of the node's peers as it comes and goes (a node that died is said at once,
/// not found out later by its silence), unless the node is on its way out too; the
/// watched ones (`spec.watch`, by their index there) also go to the loop.
fn watch_peers<E: Send + 'static>(
    bus: &Bus,
    spec: &NodeSpec,
    tx: &Sender<Input<E>>,
    stopping: Arc<AtomicBool>,
) -> Result<Vec<AliveWatch>, BusError> {
    let watched = spec.watch.iter().enumerate().map(|(i, p)| (p, Some(i)));
    let logged = spec.peers.iter().filter(|p| !spec.watch.contains(p));
    let me = spec.name;
    watched
        .chain(logged.map(|p| (p, None)))
        .map(|(peer, index)| {
            let (tx, stopping, name) = (tx.clone(), stopping.clone(), peer.clone());
            bus.watch_alive(peer, move |up| {
                if let Some(i) = index {
                    let _ = tx.send(Input::Alive(i, up));
                }
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                if up {
                    tracing::info!("{me}: {name} is up");
                } else {
                    tracing::warn!("{me}: {name} lost (its liveliness token is gone)");
                }
            })
        })
        .collect()
}
