//! What every node says when something goes wrong: one line in the log and one status on
//! `diagnostics` (`diagnostic_msgs/DiagnosticArray`), named for the node.

use crate::bus::{Bus, BusError, Publisher, Qos};
use crate::keys;
use crate::msg::DiagnosticArray;

/// A node's voice on `diagnostics`.
pub struct Diagnostics {
    node: &'static str,
    out: Publisher<DiagnosticArray>,
}

impl Diagnostics {
    pub fn new(bus: &Bus, node: &'static str) -> Result<Self, BusError> {
        Ok(Self {
            node,
            out: bus.publisher(keys::DIAGNOSTICS, Qos::Stream)?,
        })
    }

    /// Reports `what` happened and `why`, stamped with the node's clock (s); `level` is
    /// one of [`DiagnosticArray`]'s `WARN`, `ERROR`.
    pub fn report(&self, stamp: f64, level: u8, what: &str, why: &str) -> Result<(), BusError> {
        tracing::warn!("{}: {what}: {why}", self.node);
        self.out
            .put(&DiagnosticArray::report(stamp, level, self.node, what, why))
    }
}
