//! The one factory of `--policy`: the shipped checkpoint, any checkpoint folder, the
//! oracle, the random baseline or a policy an openpi server serves, each as a [`Policy`]
//! for the simulator's evaluation and the policy node alike.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loho_core::policy::{Policy, Renamed};
use loho_models::head::Decoding;
use loho_models::train::trained_palette;
use loho_models::{default_checkpoint, Device, ModelPolicy};
use loho_runtime::policy::openpi::{KeyMap, OpenpiPolicy};
use loho_sim::colors::Palette;
use loho_sim::{Oracle, RandomPolicy};

use crate::args::DeviceArg;

/// Which policy acts.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    Oracle,
    Random,
    /// A checkpoint folder (`default` is the shipped one), the device it runs on, how
    /// it writes sub-tasks if not as its config says (`--decoding`), and the names it
    /// reads for colours its training never named (`--palette`: [`PolicyKind::seeing`]).
    Model {
        dir: PathBuf,
        device: Device,
        decoding: Option<Decoding>,
        stand_ins: Vec<(String, String)>,
        /// (a scene colour, the colour the model sees for it): [`Palette::recolouring`].
        recolour: Vec<([u8; 3], [u8; 3])>,
    },
    /// `openpi://HOST:PORT[?keys=FILE]`: an openpi server's policy, its observation and
    /// action keys as FILE says (default `configs/openpi/loho.toml`).
    Openpi {
        addr: String,
        keys: Option<PathBuf>,
    },
}

impl PolicyKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "oracle" => Ok(Self::Oracle),
            "random" => Ok(Self::Random),
            "default" => Ok(Self::model(default_checkpoint())),
            dir if Path::new(dir).is_dir() => Ok(Self::model(dir.into())),
            url if url.starts_with("openpi://") => {
                let rest = &url["openpi://".len()..];
                let (addr, keys) = match rest.split_once("?keys=") {
                    Some((addr, file)) => (addr, Some(PathBuf::from(file))),
                    None => (rest, None),
                };
                anyhow::ensure!(
                    addr.contains(':') && !addr.contains('/'),
                    "{url:?}: expected openpi://HOST:PORT[?keys=FILE]"
                );
                Ok(Self::Openpi {
                    addr: addr.into(),
                    keys,
                })
            }
            other => anyhow::bail!(
                "unknown policy {other:?}: use default, oracle, random, a checkpoint folder \
                 or openpi://HOST:PORT"
            ),
        }
    }

    /// The same policy, a model running on `--device` (opened once here, so that a
    /// device this build cannot use is an error before any episode starts) and decoding
    /// as `--decoding` says.
    pub fn on(self, m: &DeviceArg) -> Result<Self> {
        Ok(match self {
            Self::Model {
                dir,
                stand_ins,
                recolour,
                ..
            } => Self::Model {
                dir,
                device: m.spec.open()?,
                decoding: m.decoding,
                stand_ins,
                recolour,
            },
            other => other,
        })
    }

    /// A checkpoint on the CPU, as its config says.
    fn model(dir: PathBuf) -> Self {
        Self::Model {
            dir,
            device: Device::Cpu,
            decoding: None,
            stand_ins: Vec::new(),
            recolour: Vec::new(),
        }
    }

    /// The same policy, a model that meets scenes in the colours of `palette`: a colour
    /// whose name its training never labelled is read and written as a trained name (the
    /// benchmark's eleven first), and seen in that name's trained colour
    /// ([`Palette::stand_ins`], [`Palette::recolouring`], [`Renamed`]; docs/model.md,
    /// "Colours it never saw").
    /// The stand-ins are chosen once, against the checkpoint's `train.json` palette (or
    /// the benchmark's eleven), and each episode's policy uses them.
    pub fn seeing(mut self, palette: Option<&Palette>) -> Self {
        if let (
            Self::Model {
                dir,
                stand_ins,
                recolour,
                ..
            },
            Some(palette),
        ) = (&mut self, palette)
        {
            let known = trained_palette(dir).unwrap_or_else(|| Palette::benchmark().named_rgb());
            *stand_ins = palette.stand_ins(&known);
            *recolour = palette.recolouring(&known);
            if !stand_ins.is_empty() {
                tracing::info!(
                    ?stand_ins,
                    "colours the checkpoint never named, read and seen as ones it did"
                );
            }
        }
        self
    }

    pub fn name(&self) -> String {
        match self {
            Self::Oracle => "oracle".into(),
            Self::Random => "random".into(),
            Self::Model { dir, .. } => dir.display().to_string(),
            Self::Openpi { addr, .. } => format!("openpi://{addr}"),
        }
    }

    /// The checkpoint folder, for commands that need a model.
    pub fn checkpoint(&self, command: &str) -> Result<&Path> {
        match self {
            Self::Model { dir, .. } => Ok(dir),
            other => anyhow::bail!(
                "{command} needs a checkpoint (default or a folder), not {}",
                other.name()
            ),
        }
    }

    /// The policy, its random stream seeded with `seed`.
    pub fn make(&self, seed: u64) -> Result<Box<dyn Policy>> {
        Ok(match self {
            Self::Oracle => Box::new(Oracle),
            Self::Random => Box::new(RandomPolicy::new(seed)),
            Self::Model {
                dir,
                device,
                decoding,
                stand_ins,
                recolour,
            } => {
                let mut p = ModelPolicy::load(dir, seed, device)
                    .with_context(|| format!("loading the policy in {}", dir.display()))?;
                if let Some(d) = decoding {
                    p.vla_mut().set_decoding(*d)?;
                }
                match stand_ins.is_empty() && recolour.iter().all(|(a, b)| a == b) {
                    true => Box::new(p),
                    false => Box::new(
                        Renamed::new(Box::new(p), stand_ins.clone()).recolouring(recolour.clone()),
                    ),
                }
            }
            Self::Openpi { addr, keys } => {
                let keys = KeyMap::load_or_default(keys.as_deref())?;
                Box::new(
                    OpenpiPolicy::connect(addr, keys, seed)
                        .with_context(|| format!("connecting to the openpi server {addr}"))?,
                )
            }
        })
    }

    /// The policy for a policy node in a process of its own, which sees nothing but what
    /// crosses the bus: the oracle reads the simulator's scene and cannot be one.
    pub fn node(&self, seed: u64) -> Result<Box<dyn Policy>> {
        anyhow::ensure!(
            !matches!(self, Self::Oracle),
            "the oracle reads the simulator's state and cannot run as a node of its own: \
             use --policy default, random or a checkpoint folder (`loho run` and `loho \
             eval` run the oracle next to the simulator)"
        );
        self.make(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--palette` with colours the default checkpoint never trained on: each is named and
    /// shown as a trained colour, stand-ins apart from each other as in training scenes.
    #[test]
    fn a_palette_of_new_colours_reaches_the_default_as_trained_names_and_colours() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let palette = Palette::read(&root.join("configs/palettes/unseen.toml")).unwrap();
        let kind = PolicyKind::parse("default").unwrap().seeing(Some(&palette));
        let PolicyKind::Model {
            dir,
            stand_ins,
            recolour,
            ..
        } = &kind
        else {
            panic!("default is a checkpoint");
        };
        let known = trained_palette(dir).unwrap();
        assert_eq!(stand_ins.len(), 8, "{stand_ins:?}");
        for c in palette.colors() {
            let (_, model) = stand_ins.iter().find(|(d, _)| d == c.name).unwrap();
            let (_, rgb) = known.iter().find(|(k, _)| k == model).unwrap();
            assert!(
                recolour.contains(&(c.rgb, *rgb)),
                "{}: {recolour:?}",
                c.name
            );
        }
        let shown: Vec<[u8; 3]> = recolour.iter().skip(1).map(|(_, to)| *to).collect();
        for (i, a) in shown.iter().enumerate() {
            for b in &shown[i + 1..] {
                assert!((0..3).any(|k| a[k].abs_diff(b[k]) > 64), "{a:?} {b:?}");
            }
        }
        // The policy made from it is the wrapped model, and it loads.
        kind.make(0).unwrap();
    }
}
