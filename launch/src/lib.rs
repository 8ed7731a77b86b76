//! The `loho` command line: every subcommand of DESIGN §9, wired to the library crates.
//! `main.rs` only calls [`main_logged`], so tests can run any subcommand in a child process
//! exactly as the binary would.
//!
//! - [`cli`]: the subcommands and flags (clap types);
//! - one module per command: [`run`], [`eval`], [`render`] (also `tasks`), [`gendata`],
//!   [`train`], [`bench`], [`graph`] (`launch`), [`nodes`] (`sim`, `controller`,
//!   `policy`, `driver ur`, `ur-emulator`, and the wiring `run` and `eval` share);
//! - [`policy`]: the one factory of `--policy`.

pub mod bench;
pub mod cli;
pub mod eval;
pub mod export;
pub mod gendata;
pub mod graph;
pub mod nodes;
pub mod policy;
pub mod render;
pub mod run;
pub mod train;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use loho_runtime::Bus;

use crate::cli::{BusArgs, Cli, Command};

/// What the binary runs: logs to stderr, filtered by `RUST_LOG` (default: info, and
/// zenoh's warnings), then [`main_with`]. Tests start their child nodes with it.
pub fn main_logged<I: IntoIterator<Item = String>>(args: I) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,zenoh=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    main_with(args)
}

/// Parses `args` (including the program name) and runs the subcommand.
pub fn main_with<I: IntoIterator<Item = String>>(args: I) -> Result<()> {
    match Cli::parse_from(args).command {
        Command::Run(c) => run::command(c),
        Command::Tasks => render::tasks(),
        Command::Render(c) => render::command(c),
        Command::Eval(c) => eval::command(c),
        Command::GenData(c) => gendata::command(c),
        Command::Export { format } => export::command(format),
        Command::Train(c) => train::command(c),
        Command::Bench { what } => bench::command(what),
        Command::Sim(c) => nodes::sim_command(c),
        Command::Launch { file } => graph::launch(&file),
        Command::Controller(c) => nodes::controller_command(c),
        Command::Heightmap(c) => nodes::heightmap_command(c),
        Command::Record(c) => nodes::record_command(c),
        Command::Replay(c) => nodes::replay_command(c),
        Command::Policy(c) => nodes::policy_command(c),
        Command::ServeOpenpi(c) => nodes::serve_openpi_command(c),
        Command::Driver {
            which: cli::DriverCmd::Ur(c),
        } => nodes::ur_driver_command(c),
        Command::UrEmulator(c) => nodes::ur_emulator_command(c),
        Command::Certs(c) => certs(c),
    }
}

/// `loho certs`.
fn certs(c: cli::CertsCmd) -> Result<()> {
    use loho_runtime::secure;
    let or = |given: Vec<String>, default: &[&str]| {
        if given.is_empty() {
            default.iter().map(|s| s.to_string()).collect()
        } else {
            given
        }
    };
    let nodes = or(c.nodes, secure::NODES);
    let hosts = or(c.hosts, secure::LOCAL_NAMES);
    for f in secure::make_certs(&c.out, &nodes, &hosts)? {
        println!("{}", f.display());
    }
    Ok(())
}

pub(crate) fn write_json(path: Option<&PathBuf>, v: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

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
