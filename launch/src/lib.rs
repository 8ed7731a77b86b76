//! The `loho` command line: every subcommand of the README's table, wired to the library crates.
//! `main.rs` only calls [`main_logged`], so tests can run any subcommand in a child process
//! exactly as the binary would.
//!
//! - [`cli`]: the subcommands (clap types); [`args`]: the flags several share;
//! - one module per command, its flags beside its body: [`run`], [`eval`], [`render`]
//!   (also `tasks`), [`gendata`], [`export`], [`vocab`], [`train`], [`bench`], [`graph`] (`launch`),
//!   [`certs`], [`nodes`] (each node alone: `sim`, `controller`, `policy`, `driver ur`,
//!   `ur-emulator`, …);
//! - [`wiring`]: several nodes on one bus, as `run`, `sim` and `eval` share them;
//! - [`policy`]: the one factory of `--policy`; `process`: a node's session and Ctrl-C;
//!   `json`: `--json` output.

pub mod args;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod eval;
pub mod export;
pub mod gendata;
pub mod graph;
mod json;
pub mod nodes;
pub mod policy;
mod process;
pub mod render;
pub mod run;
pub mod train;
pub mod vocab;
pub mod wiring;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};

/// What the binary runs: logs to stderr, filtered by `RUST_LOG` or else by `-v` (info,
/// and zenoh's warnings; `loho run` alone defaults to warnings, so its console tells the
/// episode's story), then the subcommand. Tests start their child nodes with it.
pub fn main_logged<I: IntoIterator<Item = String>>(args: I) -> Result<()> {
    let cli = Cli::parse_from(args);
    let quiet = matches!(cli.command, Command::Run(_));
    let level = match (cli.verbose, quiet) {
        (0, true) => "warn",
        (0, false) | (1, _) => "info,zenoh=warn",
        _ => "debug,zenoh=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    dispatch(cli)
}

/// Parses `args` (including the program name) and runs the subcommand, without logging.
pub fn main_with<I: IntoIterator<Item = String>>(args: I) -> Result<()> {
    dispatch(Cli::parse_from(args))
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(c) => run::command(c),
        Command::Tasks(c) => render::tasks(c),
        Command::Render(c) => render::command(c),
        Command::Eval(c) => eval::command(c),
        Command::GenData(c) => gendata::command(c),
        Command::Export { format } => export::command(format),
        Command::Vocab { what } => vocab::command(what),
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
            which: nodes::DriverCmd::Ur(c),
        } => nodes::ur_driver_command(c),
        Command::UrEmulator(c) => nodes::ur_emulator_command(c),
        Command::Certs(c) => certs::command(c),
    }
}
