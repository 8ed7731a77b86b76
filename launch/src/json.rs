//! `--json FILE`: what a command measured, as pretty JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Writes `v` to `path`, if one was given.
pub(crate) fn write(path: Option<&PathBuf>, v: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
