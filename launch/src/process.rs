//! What a command that runs nodes needs of its process: a zenoh session for its role,
//! and a stop flag that Ctrl-C sets.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use loho_runtime::Bus;

use crate::args::BusArgs;

/// The session of a node whose role (its identity behind `--secure`) is `role`.
pub(crate) fn open_bus(args: &BusArgs, role: &str) -> Result<Bus> {
    let cfg = args.config(role);
    Bus::open(&cfg).with_context(|| format!("opening the zenoh session ({cfg:?})"))
}

/// A flag that Ctrl-C (SIGINT) sets, so nodes stop cleanly: liveliness tokens are
/// undeclared and peers hear of it at once.
pub(crate) fn ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, std::sync::atomic::Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    Ok(stop)
}
