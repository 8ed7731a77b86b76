//! `loho export`'s flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// A LeRobotDataset v3.0, as Hugging Face LeRobot reads it (see docs/lerobot.md).
    Lerobot(ExportLerobotCmd),
}

#[derive(Args, Debug)]
pub struct ExportLerobotCmd {
    /// `loho gen-data` folders and `loho run` MCAP recordings, in the order to export.
    #[arg(long = "from", required = true, num_args = 1..)]
    pub from: Vec<PathBuf>,
    /// A new, empty folder.
    #[arg(long)]
    pub out: PathBuf,
}
