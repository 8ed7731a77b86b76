//! What every file of `configs/` shares: TOML, then checked ([`ConfigFile::validate`]),
//! with errors that name the file and the value.

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A file of `configs/` that stands alone (a robot, a camera rig): TOML, then checked.
pub trait ConfigFile: serde::de::DeserializeOwned {
    /// What TOML cannot say: ranges, counts, units.
    fn validate(&self) -> Result<(), ConfigError>;

    fn parse(text: &str) -> Result<Self, ConfigError> {
        let v: Self = toml::from_str(text)?;
        v.validate()?;
        Ok(v)
    }

    fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read(path)?)
    }
}

/// A config file's text, or an error naming the file.
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}
