//! The flags several commands share: an episode, a device, the bus (`args/bus.rs`), the
//! UR ports, what moves the simulated arm; and the parsing of values several take.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use loho_core::config_file::ConfigFile;
use loho_core::perception::camera::Rig as RigConfig;
use loho_models::DeviceSpec;
use loho_sim::colors::Palette;
use loho_sim::draw::Draw;
use loho_sim::env::Env;
use loho_sim::instructions::Instructions;
use loho_sim::rgbd::Rig;
use loho_sim::{Split, TaskId};

mod bus;
pub use bus::BusArgs;

/// A UR controller's ports.
#[derive(Args, Debug)]
pub struct UrPorts {
    #[arg(long, default_value_t = loho_drivers::ur::rtde::PORT)]
    pub rtde_port: u16,
    /// The secondary interface, which takes the control program.
    #[arg(long, default_value_t = loho_drivers::ur::SECONDARY_PORT)]
    pub script_port: u16,
}

impl UrPorts {
    /// An emulator of the arm `robot` on these ports.
    pub fn emulator(
        &self,
        listen: std::net::IpAddr,
        robot: &loho_core::robot::Robot,
    ) -> loho_drivers::ur::EmulatorConfig {
        loho_drivers::ur::EmulatorConfig {
            listen,
            rtde_port: self.rtde_port,
            script_port: self.script_port,
            kinematics: robot.kinematics.clone(),
        }
    }
}

/// What moves the simulated arm.
#[derive(clap::ValueEnum, serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ArmKind {
    /// The simulator's own arm node.
    Sim,
    /// A UR controller emulator moves it, driven over RTDE by the UR driver.
    UrEmulator,
}

/// Where the model runs (`--device`).
#[derive(Args, Debug, Clone, Copy)]
pub struct DeviceArg {
    /// `cpu`, or `cuda` / `cuda:N` in a build with `--features cuda`.
    #[arg(long = "device", value_name = "DEVICE", default_value = "cpu")]
    pub spec: DeviceSpec,
    /// How the model writes sub-tasks: `ar` or `parallel` [default: its config's
    /// head.decoding].
    #[arg(long)]
    pub decoding: Option<loho_models::head::Decoding>,
}

/// Which benchmark episode.
#[derive(Args, Debug)]
pub struct EpisodeArgs {
    /// Task code (A-Z, AA-AE) or registered name.
    #[arg(long, default_value = "B")]
    pub task: String,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Episode number within the split (its benchmark seed is derived from it).
    #[arg(long, visible_alias = "seed", default_value_t = 0)]
    pub episode: u64,
}

impl EpisodeArgs {
    pub fn task(&self) -> Result<TaskId> {
        Ok(TaskId::parse(&self.task)?)
    }
    pub fn split(&self) -> Result<Split> {
        split(&self.split)
    }
    /// The benchmark seed of the episode.
    pub fn seed(&self) -> Result<u64> {
        Ok(self.split()?.seed(self.episode))
    }
    /// The episode's environment, drawn as `draw` says.
    pub fn env(&self, draw: &Draw) -> Result<Env> {
        let episode = draw.episode(self.task()?, self.split()?, self.seed()?)?;
        Ok(Env::from_episode(episode))
    }
}

/// How episodes are drawn, where the benchmark's colours and words may be replaced.
#[derive(Args, Debug, Default)]
pub struct DrawArgs {
    /// Draw every colour from this palette file (TOML, `name = [r, g, b]` per colour,
    /// 0-255, at least 7) instead of the benchmark's eleven (docs/simulator.md).
    #[arg(long, value_name = "FILE")]
    pub palette: Option<PathBuf>,
    /// Instructions in other words: a TOML file of texts per task code with `{slot}`s
    /// (`loho tasks --slots`); each episode draws one by its seed (docs/simulator.md).
    #[arg(long, value_name = "FILE")]
    pub instructions: Option<PathBuf>,
    /// With `--palette`: each episode draws this many of its colours (well apart, by
    /// its seed), so a large palette trains on many colours a few at a time.
    #[arg(long, value_name = "N", requires = "palette")]
    pub palette_draw: Option<usize>,
}

impl DrawArgs {
    /// The draw these flags ask for, with a share `paraphrase` of the episodes' instructions
    /// reworded by the paraphrase generator.
    pub fn draw(&self, paraphrase: f64) -> Result<Draw> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&paraphrase),
            "--paraphrase {paraphrase}: a share of episodes, from 0 to 1"
        );
        let instructions = match &self.instructions {
            Some(path) => Some(Arc::new(Instructions::read(path)?)),
            None => None,
        };
        let palette = match &self.palette {
            Some(path) => Some(Arc::new(Palette::read(path)?)),
            None => None,
        };
        if let (Some(p), Some(n)) = (&palette, self.palette_draw) {
            // The same check every episode's draw makes, once, before any work.
            p.pick(
                n,
                &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0),
            )?;
        }
        Ok(Draw {
            palette,
            instructions,
            paraphrase,
            pick: self.palette_draw,
        })
    }
}

/// Worker threads when `--jobs` is not given: all cores.
pub fn jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(loho_models::cores)
}

/// `--camera`: `ideal` (no cameras), `benchmark`, or the path of a rig file.
pub fn cameras(s: &str) -> Result<Option<Arc<Rig>>> {
    Ok(match s {
        "ideal" => None,
        "benchmark" => Some(Rig::benchmark()),
        path => {
            let cfg = RigConfig::load(path.as_ref()).with_context(|| {
                format!("--camera {path:?}: not ideal, benchmark or a readable rig file")
            })?;
            Some(Arc::new(
                Rig::new(&cfg).with_context(|| format!("rig {path}"))?,
            ))
        }
    })
}

pub fn split(s: &str) -> Result<Split> {
    Split::parse(s).with_context(|| format!("unknown split {s:?}: use train, val or test"))
}
