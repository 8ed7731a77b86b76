//! Who reads which [`crate::ring`]: frames between processes of one host skip zenoh.
//!
//! A [`crate::Qos::Frames`] publisher writes every message into a ring of its own and
//! announces it with a liveliness token
//! `loho/<robot>/@ring/<host>/<zid>/<name>/<topic>` (`<host>`: the boot id; `<zid>`: its
//! session; `<name>`: the file under /dev/shm). A subscription of another session on the same host that can
//! map the ring reads it on a thread of its own and drops its zenoh subscription while
//! the ring lives, so the publisher, which puts on zenoh only while zenoh reports a
//! matching subscriber, sends nothing over the network unless someone else listens (a
//! recorder, another host, a ROS 2 tool). When the token goes (the publisher stopped or
//! died), the subscription declares its zenoh subscriber again.
//!
//! While a same-host ring lives on a key, its subscribers hear only the rings on that
//! key: a second publisher on it reached only through zenoh is not heard. Camera topics
//! have one publisher each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use zenoh::Wait;

use crate::ring::{Read, RingReader, RingWriter};
use loho_core::msg::Message;

/// How a subscription got a message.
pub(crate) enum Via<'a> {
    Link,
    SharedMemory,
    /// In place in a ring's slot: what is decoded from it counts only if it is still
    /// intact afterwards ([`crate::ring::Message::intact`]).
    Ring(&'a crate::ring::Message<'a>),
}

pub(crate) type Deliver = Arc<dyn Fn(&[u8], Via<'_>) + Send + Sync>;

/// A session and its declaration lock: what declaring needs, without the
/// [`crate::Bus`] (whose ring directory must not keep itself alive).
#[derive(Clone)]
pub(crate) struct Declarer {
    pub session: zenoh::Session,
    pub lock: Arc<Mutex<()>>,
}

impl Declarer {
    pub fn declare<R>(&self, f: impl FnOnce(&zenoh::Session) -> R) -> R {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        f(&self.session)
    }
}

/// The key prefix of this host's ring tokens for `robot`.
pub(crate) fn token_prefix(robot: &str) -> String {
    format!("loho/{robot}/@ring/{}", crate::ring::host())
}

/// The token announcing ring `name` of session `zid` for the key `loho/<robot>/<topic>`.
pub(crate) fn token(robot: &str, zid: &str, name: &str, topic: &str) -> String {
    format!("{}/{zid}/{name}/{topic}", token_prefix(robot))
}

/// A [`crate::Qos::Frames`] publisher's side: its ring, made at the first message and
/// sized for four of it, and whether zenoh has a subscriber to send to as well.
pub(crate) struct Outbox {
    declarer: Declarer,
    token: String,
    ring: Option<(zenoh::liveliness::LivelinessToken, RingWriter)>,
    /// The ring could not be made, or a message outgrew it: zenoh only from then on.
    off: bool,
    matched: Arc<AtomicBool>,
    _listener: zenoh::matching::MatchingListener<()>,
}

impl Outbox {
    pub fn new(
        publisher: &zenoh::pubsub::Publisher<'static>,
        declarer: Declarer,
        robot: &str,
        topic: &str,
    ) -> Result<Self, zenoh::Error> {
        let matched = Arc::new(AtomicBool::new(true));
        let m = matched.clone();
        let listener = publisher
            .matching_listener()
            .callback(move |s| m.store(s.matching(), Ordering::Relaxed))
            .wait()?;
        matched.store(
            publisher.matching_status().wait()?.matching(),
            Ordering::Relaxed,
        );
        let zid = declarer.session.zid().to_string();
        Ok(Self {
            token: token(robot, &zid, "{}", topic),
            declarer,
            ring: None,
            off: false,
            matched,
            _listener: listener,
        })
    }

    /// Encodes `msg` into the ring; whether zenoh must carry it too.
    pub fn write<T: Message>(&mut self, msg: &T) -> bool {
        if self.off {
            return true;
        }
        let ring = match &mut self.ring {
            Some((_, ring)) => ring,
            None => {
                let len = msg.encode().len();
                match self.open(4 * len.max(16 << 10)) {
                    Ok(r) => &mut self.ring.insert(r).1,
                    Err(e) => {
                        tracing::warn!("{e}: frames to this host go through zenoh");
                        self.off = true;
                        return true;
                    }
                }
            }
        };
        if !ring.write_with(|slot| msg.encode_to(slot)) {
            tracing::warn!(
                "a message outgrew its ring ({} bytes a slot): frames to this host go \
                 through zenoh from now on (a few may be lost while readers switch)",
                ring.capacity()
            );
            self.ring = None;
            self.off = true;
            return true;
        }
        self.matched.load(Ordering::Relaxed)
    }

    fn open(
        &self,
        capacity: usize,
    ) -> Result<(zenoh::liveliness::LivelinessToken, RingWriter), String> {
        let ring = RingWriter::create(capacity).map_err(|e| e.to_string())?;
        let key = self.token.replace("{}", ring.id().0);
        let token = self
            .declarer
            .declare(|s| s.liveliness().declare_token(key).wait())
            .map_err(|e| format!("announcing ring {}: {e}", ring.id().0))?;
        Ok((token, ring))
    }
}

/// One typed subscription, as the directory sees it.
pub(crate) struct Sub {
    key: String,
    deliver: Deliver,
    declarer: Declarer,
    state: Mutex<SubState>,
}

#[derive(Default)]
struct SubState {
    zenoh: Option<zenoh::pubsub::Subscriber<()>>,
    /// Ring readers by token.
    readers: HashMap<String, Reader>,
}

impl Sub {
    pub fn new(
        key: String,
        deliver: Deliver,
        declarer: Declarer,
    ) -> Result<Arc<Self>, zenoh::Error> {
        let sub = Arc::new(Self {
            key,
            deliver,
            declarer,
            state: Mutex::default(),
        });
        let z = sub.declare_zenoh()?;
        sub.lock().zenoh = Some(z);
        Ok(sub)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn declare_zenoh(&self) -> Result<zenoh::pubsub::Subscriber<()>, zenoh::Error> {
        let deliver = self.deliver.clone();
        self.declarer.declare(|s| {
            s.declare_subscriber(&self.key)
                .callback(move |sample| {
                    let via = match sample.payload().as_shm() {
                        Some(_) => Via::SharedMemory,
                        None => Via::Link,
                    };
                    deliver(&sample.payload().to_bytes(), via)
                })
                .wait()
        })
    }

    /// Reads ring `name` (announced by `token`) instead of zenoh, if it can be mapped.
    fn attach(&self, token: &str, name: &str) {
        let Some(nonce) = name
            .rsplit('-')
            .next()
            .and_then(|n| u64::from_str_radix(n, 16).ok())
        else {
            return;
        };
        let mut st = self.lock();
        if st.readers.contains_key(token) {
            return;
        }
        let ring = match RingReader::open(name, nonce) {
            Ok(r) => r,
            Err(e) => {
                // Another container or user on the same host: zenoh still carries it.
                tracing::debug!(key = %self.key, "not reading ring {name}: {e}");
                return;
            }
        };
        st.readers
            .insert(token.into(), Reader::spawn(ring, self.deliver.clone()));
        let zenoh = st.zenoh.take();
        drop(st);
        drop(zenoh);
        tracing::debug!(key = %self.key, "reading ring {name}");
    }

    /// Stops reading the ring of `token`; back on zenoh once no ring is left.
    fn detach(&self, token: &str) {
        let mut st = self.lock();
        if st.readers.remove(token).is_none() || !st.readers.is_empty() {
            return;
        }
        match self.declare_zenoh() {
            Ok(z) => st.zenoh = Some(z),
            Err(e) => {
                tracing::error!(key = %self.key, "cannot subscribe again after its ring went: {e}")
            }
        }
    }
}

/// A thread handing a ring's messages to a subscription.
struct Reader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long a reader sleeps before it looks whether it should stop.
const POLL: Duration = Duration::from_millis(50);

impl Reader {
    fn spawn(mut ring: RingReader, deliver: Deliver) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loho-ring".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match ring.next(POLL) {
                        Read::Message(m) => deliver(m.bytes(), Via::Ring(&m)),
                        Read::Idle => {}
                        Read::Closed => break,
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A subscription dropped from its own callback cannot wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

enum Event {
    Up {
        token: String,
        name: String,
        key: String,
    },
    Down(String),
    Subscribed(Weak<Sub>),
}

/// One per bus: watches this host's ring tokens and attaches subscriptions to them.
pub(crate) struct Directory {
    events: crossbeam_channel::Sender<Event>,
    _tokens: zenoh::pubsub::Subscriber<()>,
}

impl Directory {
    pub fn start(declarer: &Declarer, robot: &str) -> Result<Self, zenoh::Error> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let prefix = format!("{}/", token_prefix(robot));
        let robot_prefix = format!("loho/{robot}/");
        let own = declarer.session.zid().to_string();
        let events = tx.clone();
        let tokens = declarer.declare(|s| {
            s.liveliness()
                .declare_subscriber(format!("{prefix}**"))
                .history(true)
                .callback(move |sample| {
                    let token = sample.key_expr().as_str().to_string();
                    if sample.kind() == zenoh::sample::SampleKind::Delete {
                        let _ = events.send(Event::Down(token));
                        return;
                    }
                    let mut parts = token.strip_prefix(&prefix).unwrap_or("").splitn(3, '/');
                    let (Some(zid), Some(name), Some(topic)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return;
                    };
                    // The session's own rings: its subscribers hear them through zenoh,
                    // which delivers within a session without waking anything.
                    if zid == own {
                        return;
                    }
                    let (name, key) = (name.to_string(), format!("{robot_prefix}{topic}"));
                    let _ = events.send(Event::Up { token, name, key });
                })
                .wait()
        })?;
        std::thread::Builder::new()
            .name("loho-rings".into())
            .spawn(move || run(rx))
            .map_err(|e| zenoh::Error::from(e.to_string()))?;
        Ok(Self {
            events: tx,
            _tokens: tokens,
        })
    }

    pub fn add(&self, sub: &Arc<Sub>) {
        let _ = self.events.send(Event::Subscribed(Arc::downgrade(sub)));
    }
}

/// The directory's thread: ends when the bus and its token watch are gone.
fn run(events: crossbeam_channel::Receiver<Event>) {
    let mut rings: HashMap<String, (String, String)> = HashMap::new();
    let mut subs: Vec<Weak<Sub>> = vec![];
    for e in events {
        subs.retain(|s| s.strong_count() > 0);
        match e {
            Event::Up { token, name, key } => {
                for s in subs
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|s| s.key == key)
                {
                    s.attach(&token, &name);
                }
                rings.insert(token, (name, key));
            }
            Event::Down(token) => {
                if rings.remove(&token).is_some() {
                    for s in subs.iter().filter_map(Weak::upgrade) {
                        s.detach(&token);
                    }
                }
            }
            Event::Subscribed(w) => {
                if let Some(s) = w.upgrade() {
                    for (token, (name, key)) in &rings {
                        if *key == s.key {
                            s.attach(token, name);
                        }
                    }
                    subs.push(w);
                }
            }
        }
    }
}
