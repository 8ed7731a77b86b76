//! A typed bus over zenoh: publishers and subscribers that speak [`Message`]s, a
//! latest-value slot for frames, and liveliness tokens. Keys are loho's
//! (`loho/<robot>/<topic>`) or, with [`BusConfig::ros2`], those of a ROS 2 node on
//! rmw_zenoh, with its attachments and graph tokens ([`crate::rmw`]). Frames to other
//! processes of the same host take a ring in shared memory instead ([`crate::same_host`]).
//!
//! Decoding happens in the subscriber; a malformed payload never reaches user code as a
//! value: it is counted, logged, and handed over as an error so nodes can report it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::Wait;

use crate::keys;
use crate::rmw::{self, Attachment, EntityKind, NodeName, QosProfile, RmwError};
use crate::same_host::{Declarer, Directory, Outbox, Sub, Via};
use crate::secure::SecureError;
use loho_core::cdr::CdrError;
use loho_core::msg::Message;

mod config;
mod handles;
pub use config::{BusConfig, Ros2, DEFAULT_ZENOH_CONFIG};
use handles::Counts;
pub use handles::{AliveWatch, Latest, Queryable, RawSubscription, Request, Subscription};

#[derive(Debug, Error)]
pub enum BusError {
    #[error("zenoh: {0}")]
    Zenoh(#[from] zenoh::Error),
    #[error(transparent)]
    Secure(#[from] SecureError),
    #[error("bad endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("no reply on {key} within {timeout:?} (is the node serving it up?)")]
    NoReply { key: String, timeout: Duration },
    #[error("{key} answered with an error: {reason}")]
    Refused { key: String, reason: String },
    #[error("undecodable reply on {key}: {source}")]
    BadReply { key: String, source: CdrError },
    #[error(transparent)]
    Rmw(#[from] RmwError),
    #[error("topic {0:?} has no known message type, so it has no ROS 2 key")]
    UntypedTopic(String),
    #[error("--ros2 with --secure is not supported yet: the access rules name loho's keys")]
    Ros2Secure,
}

/// How a topic is sent: its QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// State and diagnostics: dropped under congestion; receivers keep the latest.
    Stream,
    /// Camera frames: as `Stream`, and to processes of this host through a ring in shared
    /// memory ([`crate::same_host`]).
    Frames,
    /// Commands, e-stop, chunks: reliable, blocking, highest priority, not batched.
    Command,
}

/// One zenoh session, scoped to a robot.
#[derive(Clone)]
pub struct Bus {
    /// The session, and a lock held while declaring anything on it: nodes on threads of
    /// one process share it, and zenoh 1.10 races two threads declaring the same key (a
    /// publisher borrows the wire id a subscriber's declaration is still announcing, and
    /// the routing drops that publisher's interest and first data as "unknown scope").
    d: Declarer,
    robot: String,
    secure: bool,
    ros2: Option<Arc<Graph>>,
    /// This host's frame rings, unless `BusConfig::ring` is off.
    rings: Option<Arc<Directory>>,
}

/// This bus as a node of the ROS graph.
struct Graph {
    node: NodeName,
    /// Numbers this node's publishers and subscriptions.
    next_entity: std::sync::atomic::AtomicU32,
    _token: zenoh::liveliness::LivelinessToken,
}

impl Bus {
    pub fn open(cfg: &BusConfig) -> Result<Self, BusError> {
        if cfg.ros2.is_some() && cfg.secure.is_some() {
            return Err(BusError::Ros2Secure);
        }
        let d = Declarer {
            session: zenoh::open(cfg.zenoh()?).wait()?,
            lock: Arc::default(),
        };
        let session = &d.session;
        let ros2 = match &cfg.ros2 {
            None => None,
            Some(r) => {
                let node = NodeName {
                    domain: r.domain,
                    zid: session.zid().to_string(),
                    id: 0,
                    namespace: format!("/{}", cfg.robot),
                    name: r.node.clone(),
                };
                let token = session.liveliness().declare_token(node.token()).wait()?;
                Some(Arc::new(Graph {
                    node,
                    next_entity: 1.into(),
                    _token: token,
                }))
            }
        };
        let rings = if cfg.ring && cfg.shared_memory && cfg.secure.is_none() && ros2.is_none() {
            Some(Arc::new(Directory::start(&d, &cfg.robot)?))
        } else {
            None
        };
        Ok(Self {
            d,
            robot: cfg.robot.clone(),
            secure: cfg.secure.is_some(),
            ros2,
            rings,
        })
    }

    /// The ROS 2 name of `topic`: `/<robot>/<topic>`.
    fn ros_name(&self, topic: &str) -> String {
        format!("/{}/{topic}", self.robot)
    }

    /// The key `topic` of type `type_name` is published on: loho's, or rmw_zenoh's.
    fn data_key(&self, topic: &str, type_name: &str) -> Result<String, BusError> {
        match &self.ros2 {
            None => Ok(self.key(topic)),
            Some(g) => Ok(rmw::topic_key(
                g.node.domain,
                &self.ros_name(topic),
                type_name,
            )?),
        }
    }

    /// Under ROS 2, the liveliness token announcing a publisher or subscription of this
    /// node, and its GID.
    fn announce(
        &self,
        kind: EntityKind,
        topic: &str,
        type_name: &str,
        qos: QosProfile,
    ) -> Result<Option<(zenoh::liveliness::LivelinessToken, [u8; 16])>, BusError> {
        let Some(g) = &self.ros2 else {
            return Ok(None);
        };
        let id = g.next_entity.fetch_add(1, Ordering::Relaxed);
        let key = g
            .node
            .entity_token(kind, id, &self.ros_name(topic), type_name, qos)?;
        let gid = rmw::gid(&key);
        let token = self.declare(|s| s.liveliness().declare_token(key).wait())?;
        Ok(Some((token, gid)))
    }

    /// Runs a declaration on the session, one at a time (see [`Bus::d`]).
    fn declare<R>(&self, f: impl FnOnce(&zenoh::Session) -> R) -> R {
        self.d.declare(f)
    }

    /// Two sessions linked over loopback TCP on a free port (the first listens, the second
    /// connects): a node and its peer in one process, as tests and benches run them.
    pub fn loopback_pair() -> Result<(Bus, Bus), BusError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BusError::Endpoint {
                endpoint: "tcp/127.0.0.1:0".into(),
                reason: e.to_string(),
            })?
            .port();
        let ep = format!("tcp/127.0.0.1:{port}");
        let a = Bus::open(&BusConfig {
            listen: vec![ep.clone()],
            ..Default::default()
        })?;
        let b = Bus::open(&BusConfig {
            connect: vec![ep],
            ..Default::default()
        })?;
        Ok((a, b))
    }

    pub fn robot(&self) -> &str {
        &self.robot
    }

    /// Whether this session links only over mutual TLS with access control.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The full key of a topic for this bus's robot.
    pub fn key(&self, topic: &str) -> String {
        keys::key(&self.robot, topic)
    }

    pub fn publisher<T: Message>(&self, topic: &str, qos: Qos) -> Result<Publisher<T>, BusError> {
        let key = self.data_key(topic, T::TYPE_NAME)?;
        let inner = self.declare(|s| {
            let b = s.declare_publisher(key);
            match qos {
                Qos::Stream | Qos::Frames => b
                    .congestion_control(CongestionControl::Drop)
                    .priority(Priority::DataHigh),
                Qos::Command => b
                    .congestion_control(CongestionControl::Block)
                    .priority(Priority::RealTime)
                    .express(true),
            }
            .wait()
        })?;
        let profile = QosProfile {
            reliable: qos == Qos::Command,
            transient_local: false,
            keep_last: Some(if qos == Qos::Command { 10 } else { 1 }),
        };
        let ros2 = self
            .announce(EntityKind::Publisher, topic, T::TYPE_NAME, profile)?
            .map(|(token, gid)| RosPublisher {
                _token: token,
                gid,
                sequence: Default::default(),
            });
        let ring = match (&self.rings, qos) {
            (Some(_), Qos::Frames) => Some(Mutex::new(Outbox::new(
                &inner,
                self.d.clone(),
                &self.robot,
                topic,
            )?)),
            _ => None,
        };
        Ok(Publisher {
            ring,
            inner,
            ros2,
            _t: std::marker::PhantomData,
        })
    }

    /// Puts raw bytes on a topic, bypassing encoding: for bridges, tools and fault
    /// injection tests.
    pub fn put_bytes(&self, topic: &str, bytes: Vec<u8>) -> Result<(), BusError> {
        if self.ros2.is_none() {
            return Ok(self.d.session.put(self.key(topic), bytes).wait()?);
        }
        let ty = keys::topic_type(topic).ok_or_else(|| BusError::UntypedTopic(topic.into()))?;
        let attachment = Attachment {
            sequence: 0,
            stamp_ns: loho_core::clock::wall_ns() as i64,
            gid: [0; 16],
        };
        Ok(self
            .d
            .session
            .put(self.data_key(topic, ty)?, bytes)
            .attachment(attachment.encode().to_vec())
            .wait()?)
    }

    /// Calls `on` with every decoded message (or the decoding error) on `topic`.
    pub fn subscribe<T, F>(&self, topic: &str, on: F) -> Result<Subscription, BusError>
    where
        T: Message,
        F: Fn(Result<T, CdrError>) + Send + Sync + 'static,
    {
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let key = self.data_key(topic, T::TYPE_NAME)?;
        let token = self
            .announce(
                EntityKind::Subscription,
                topic,
                T::TYPE_NAME,
                QosProfile {
                    reliable: true,
                    transient_local: false,
                    keep_last: Some(10),
                },
            )?
            .map(|(token, _)| token);
        let k = key.clone();
        let deliver = Arc::new(move |bytes: &[u8], via: Via<'_>| {
            let v = T::decode(bytes);
            match via {
                Via::Link => None,
                Via::SharedMemory => Some(&c.shared),
                Via::Ring(m) if m.intact() => Some(&c.ring),
                // Overwritten while decoding: the ring lapped this reader, so newer
                // frames follow (stream semantics, as a lapped reader skips).
                Via::Ring(_) => return,
            }
            .map(|n| n.fetch_add(1, Ordering::Relaxed));
            if let Err(e) = &v {
                c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %k, "undecodable {}: {e}", T::TYPE_NAME);
            }
            on(v)
        });
        let inner = Sub::new(key, deliver, self.d.clone())?;
        if let Some(rings) = &self.rings {
            rings.add(&inner);
        }
        Ok(Subscription {
            _inner: inner,
            _token: token,
            counts,
        })
    }

    /// A slot always holding the newest well-formed message on `topic`.
    pub fn latest<T: Message + Send + 'static>(&self, topic: &str) -> Result<Latest<T>, BusError> {
        let slot = Arc::new(Mutex::new(None::<T>));
        let s = slot.clone();
        let sub = self.subscribe::<T, _>(topic, move |v| {
            if let Ok(v) = v {
                *s.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            }
        })?;
        Ok(Latest { slot, sub })
    }

    /// Declares `loho/<robot>/@alive/<node>` for as long as the token lives.
    pub fn alive(&self, node: &str) -> Result<zenoh::liveliness::LivelinessToken, BusError> {
        let key = keys::alive(&self.robot, node);
        Ok(self.declare(|s| s.liveliness().declare_token(key).wait())?)
    }

    /// Calls `on(true)` when `node`'s liveliness token appears (also for one already
    /// there) and `on(false)` when it goes: how a node notices a peer that died.
    pub fn watch_alive<F>(&self, node: &str, on: F) -> Result<AliveWatch, BusError>
    where
        F: Fn(bool) + Send + Sync + 'static,
    {
        let key = keys::alive(&self.robot, node);
        let inner = self.declare(|s| {
            s.liveliness()
                .declare_subscriber(key)
                .history(true)
                .callback(move |s| on(s.kind() == zenoh::sample::SampleKind::Put))
                .wait()
        })?;
        Ok(AliveWatch { _inner: inner })
    }

    /// Calls `on` with the topic (the key without `loho/<robot>/`) and the raw payload
    /// of every sample under this robot: for recorders and bridges.
    pub fn subscribe_all<F>(&self, on: F) -> Result<RawSubscription, BusError>
    where
        F: Fn(&str, Vec<u8>) + Send + Sync + 'static,
    {
        self.subscribe_raw("**", on)
    }

    /// [`Bus::subscribe_all`] for the topics `topics` (a key expression under this robot,
    /// e.g. `state` or `camera/*/color`) matches.
    pub fn subscribe_raw<F>(&self, topics: &str, on: F) -> Result<RawSubscription, BusError>
    where
        F: Fn(&str, Vec<u8>) + Send + Sync + 'static,
    {
        // Under ROS 2 a key ends with the type and its hash: two chunks more.
        let (prefix, suffix) = match &self.ros2 {
            None => (format!("loho/{}/", self.robot), ""),
            Some(g) => (format!("{}/{}/", g.node.domain, self.robot), "/*/*"),
        };
        // `**/*/*` is written `*/*/**` in canonical form.
        let key = zenoh::key_expr::OwnedKeyExpr::autocanonize(format!("{prefix}{topics}{suffix}"))?;
        let typed = !suffix.is_empty();
        let inner = self.declare(|s| {
            s.declare_subscriber(key)
                .callback(move |sample| {
                    let key = sample.key_expr().as_str();
                    let mut topic = key.strip_prefix(&prefix).unwrap_or(key);
                    if typed {
                        let mut chunks = topic.rsplitn(3, '/');
                        topic = chunks.nth(2).unwrap_or(topic);
                    }
                    on(topic, sample.payload().to_bytes().into_owned())
                })
                .wait()
        })?;
        Ok(RawSubscription { _inner: inner })
    }

    /// Serves queries on `topic`: `on` gets each one with its decoded payload (or the
    /// decoding error) and answers it, on whatever thread it likes.
    pub fn serve<Q, F>(&self, topic: &str, on: F) -> Result<Queryable, BusError>
    where
        Q: Message,
        F: Fn(Request<Q>) + Send + Sync + 'static,
    {
        let inner = self.declare(|s| {
            s.declare_queryable(self.key(topic))
                .callback(move |query| {
                    let payload = query.payload().map(|p| p.to_bytes().into_owned());
                    let body = Q::decode(payload.as_deref().unwrap_or(&[]));
                    on(Request { body, query })
                })
                .wait()
        })?;
        Ok(Queryable { _inner: inner })
    }

    /// Sends `q` to whoever serves `topic` and waits for the first answer.
    pub fn query<Q: Message, R: Message>(
        &self,
        topic: &str,
        q: &Q,
        timeout: Duration,
    ) -> Result<R, BusError> {
        let key = self.key(topic);
        let replies = self
            .d
            .session
            .get(&key)
            .payload(q.encode())
            .timeout(timeout)
            .wait()?;
        let reply = replies.recv().map_err(|_| BusError::NoReply {
            key: key.clone(),
            timeout,
        })?;
        match reply.into_result() {
            Ok(sample) => R::decode(&sample.payload().to_bytes())
                .map_err(|source| BusError::BadReply { key, source }),
            Err(e) => Err(BusError::Refused {
                key,
                reason: String::from_utf8_lossy(&e.payload().to_bytes()).into_owned(),
            }),
        }
    }

    /// Whether a node of this robot currently holds its liveliness token.
    pub fn is_alive(&self, node: &str, timeout: Duration) -> Result<bool, BusError> {
        let replies = self
            .d
            .session
            .liveliness()
            .get(keys::alive(&self.robot, node))
            .timeout(timeout)
            .wait()?;
        Ok(replies.recv().is_ok())
    }
}

/// A typed publisher.
pub struct Publisher<T> {
    /// A [`Qos::Frames`] publisher's ring (first: its matching listener goes before the
    /// publisher).
    ring: Option<Mutex<Outbox>>,
    inner: zenoh::pubsub::Publisher<'static>,
    ros2: Option<RosPublisher>,
    _t: std::marker::PhantomData<fn(&T)>,
}

/// What a publisher of a ROS 2 node adds to each sample, and its graph token.
struct RosPublisher {
    _token: zenoh::liveliness::LivelinessToken,
    gid: [u8; 16],
    sequence: std::sync::atomic::AtomicI64,
}

impl<T: Message> Publisher<T> {
    pub fn put(&self, msg: &T) -> Result<(), BusError> {
        if let Some(ring) = &self.ring {
            if !ring.lock().unwrap_or_else(|e| e.into_inner()).write(msg) {
                return Ok(());
            }
        }
        let put = self.inner.put(msg.encode());
        let Some(r) = &self.ros2 else {
            return Ok(put.wait()?);
        };
        let attachment = Attachment {
            sequence: r.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            stamp_ns: loho_core::clock::wall_ns() as i64,
            gid: r.gid,
        };
        Ok(put.attachment(attachment.encode().to_vec()).wait()?)
    }
}
