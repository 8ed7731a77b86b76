//! What the [`Bus`](super::Bus) hands back: handles that keep a declaration alive, a
//! query to answer, the newest value on a topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use zenoh::Wait;

use super::BusError;
use crate::same_host::Sub;
use loho_core::cdr::CdrError;
use loho_core::msg::Message;

/// Keeps a liveliness watch alive.
pub struct AliveWatch {
    pub(super) _inner: zenoh::pubsub::Subscriber<()>,
}

/// Keeps a queryable declared.
pub struct Queryable {
    pub(super) _inner: zenoh::query::Queryable<()>,
}

/// One query to a [`Bus::serve`]d topic, to be answered once.
pub struct Request<Q> {
    /// The query's payload, decoded.
    pub body: Result<Q, CdrError>,
    pub(super) query: zenoh::query::Query,
}

impl<Q> Request<Q> {
    pub fn reply<R: Message>(self, r: &R) -> Result<(), BusError> {
        let key = self.query.key_expr().clone();
        Ok(self.query.reply(key, r.encode()).wait()?)
    }
    /// Answers with an error the asker sees as [`BusError::Refused`].
    pub fn refuse(self, reason: &str) -> Result<(), BusError> {
        Ok(self.query.reply_err(reason.to_string()).wait()?)
    }
}

/// Keeps a raw subscription alive.
pub struct RawSubscription {
    pub(super) _inner: zenoh::pubsub::Subscriber<()>,
}

/// Keeps a subscription alive; counts payloads that failed to decode, and those that
/// came through shared memory.
pub struct Subscription {
    pub(super) _inner: Arc<Sub>,
    /// Under ROS 2, the subscription's graph token.
    pub(super) _token: Option<zenoh::liveliness::LivelinessToken>,
    pub(super) counts: Arc<Counts>,
}

/// What a subscription counts, shared with its callback.
#[derive(Default)]
pub(super) struct Counts {
    pub errors: AtomicU64,
    pub shared: AtomicU64,
    pub ring: AtomicU64,
}

impl Subscription {
    pub fn decode_errors(&self) -> u64 {
        self.counts.errors.load(Ordering::Relaxed)
    }
    /// Payloads read in place from another process's zenoh shared-memory segment.
    pub fn shared_memory_received(&self) -> u64 {
        self.counts.shared.load(Ordering::Relaxed)
    }
    /// Messages read from a same-host publisher's ring ([`crate::same_host`]).
    pub fn ring_received(&self) -> u64 {
        self.counts.ring.load(Ordering::Relaxed)
    }
}

/// The newest value on a topic (a slow reader never works on a backlog).
pub struct Latest<T> {
    pub(super) slot: Arc<Mutex<Option<T>>>,
    pub(super) sub: Subscription,
}

impl<T: Clone> Latest<T> {
    pub fn get(&self) -> Option<T> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn decode_errors(&self) -> u64 {
        self.sub.decode_errors()
    }
}
