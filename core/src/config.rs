//! `configs/runtime.toml`: the control rate, the watchdog, the robot file
//! ([`crate::robot`]) and whom each node expects on the bus, parsed and checked. The file
//! shipped in the repository is also the compiled-in default, so a node started without
//! `--config` runs exactly its values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config_file::{read, ConfigError, ConfigFile};
use crate::robot::Robot;

/// The defaults shipped in the repository, compiled in.
pub const DEFAULT_RUNTIME_CONFIG: &str = include_str!("../../configs/runtime.toml");

/// `configs/runtime.toml`, with the robot it names.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub controller: ControllerLimits,
    pub watchdog: WatchdogConfig,
    pub robot: Robot,
    /// `[nodes.<name>]`: each node's peers, by name.
    pub nodes: BTreeMap<String, NodePeers>,
}

/// The file as written: the robot by its path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    robot: PathBuf,
    controller: ControllerLimits,
    watchdog: WatchdogConfig,
    /// A file written before nodes had peers in it gets the shipped ones.
    nodes: Option<BTreeMap<String, NodePeers>>,
}

/// Whom a node expects on the bus, by the names of their liveliness tokens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePeers {
    /// Logged as they come and go.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Followed: the controller stops its chunk when one goes; the policy decides only
    /// while they are up.
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerLimits {
    pub rate_hz: f64,
    /// Microseconds spun (not slept) before each setpoint (`loho_runtime::pacing`).
    pub spin_us: u64,
    /// `SCHED_FIFO` priority of the control thread; 0: none.
    pub realtime_priority: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    pub timeout_ms: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self::parse(DEFAULT_RUNTIME_CONFIG, None)
            .expect("the shipped configs/runtime.toml is valid")
    }
}

impl RuntimeConfig {
    /// The config in `text`; its `robot` path is read relative to `dir`, or is the
    /// compiled-in robot of that name when `dir` is `None`.
    pub fn parse(text: &str, dir: Option<&Path>) -> Result<Self, ConfigError> {
        let f: RuntimeFile = toml::from_str(text)?;
        let robot = match dir {
            Some(dir) => Robot::load(&dir.join(&f.robot))?,
            None if f.robot == Path::new("robots/ur5e.toml") => Robot::ur5e().clone(),
            None => {
                return Err(ConfigError::Invalid(format!(
                    "robot = {:?}: only robots/ur5e.toml is compiled in; give the file \
                     with --config",
                    f.robot
                )))
            }
        };
        let nodes = match f.nodes {
            Some(nodes) => nodes,
            None => toml::from_str::<RuntimeFile>(DEFAULT_RUNTIME_CONFIG)?
                .nodes
                .unwrap_or_default(),
        };
        let c = Self {
            controller: f.controller,
            watchdog: f.watchdog,
            robot,
            nodes,
        };
        c.validate()?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read(path)?, Some(path.parent().unwrap_or(Path::new("."))))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rate = self.controller.rate_hz;
        if !(rate.is_finite() && rate > 0.0 && rate <= 2000.0) {
            return Err(ConfigError::Invalid(format!(
                "controller.rate_hz = {rate}: expected 0 < rate ≤ 2000"
            )));
        }
        let spin = self.controller.spin_us as f64 * 1e-6;
        if spin >= 1.0 / rate {
            return Err(ConfigError::Invalid(format!(
                "controller.spin_us = {}: must be shorter than the period ({:.0} µs)",
                self.controller.spin_us,
                1e6 / rate
            )));
        }
        if !(0..=99).contains(&self.controller.realtime_priority) {
            return Err(ConfigError::Invalid(format!(
                "controller.realtime_priority = {}: expected 0 (none) or 1–99",
                self.controller.realtime_priority
            )));
        }
        if self.watchdog.timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "watchdog.timeout_ms must be > 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_parses_and_bad_values_are_named() {
        let c = RuntimeConfig::default();
        assert_eq!(c.controller.rate_hz, 125.0);
        assert_eq!(c.watchdog.timeout_ms, 100);
        assert_eq!(c.robot.name, "ur5e");
        let bad = DEFAULT_RUNTIME_CONFIG.replace("rate_hz = 125.0", "rate_hz = -1");
        let e = RuntimeConfig::parse(&bad, None).unwrap_err().to_string();
        assert!(e.contains("rate_hz"), "{e}");
        let bad = DEFAULT_RUNTIME_CONFIG.replace("spin_us = 300", "spin_us = 9000");
        let e = RuntimeConfig::parse(&bad, None).unwrap_err().to_string();
        assert!(e.contains("shorter than the period"), "{e}");
        let bad = DEFAULT_RUNTIME_CONFIG.replace("priority = 80", "priority = 120");
        let e = RuntimeConfig::parse(&bad, None).unwrap_err().to_string();
        assert!(e.contains("realtime_priority"), "{e}");
        let bad = DEFAULT_RUNTIME_CONFIG.replace("timeout_ms", "timeout_s");
        assert!(RuntimeConfig::parse(&bad, None).is_err());
        // The shipped file, read from disk, finds its robot beside it.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        assert_eq!(RuntimeConfig::load(&dir.join("runtime.toml")).unwrap(), c);
        let e = RuntimeConfig::parse(DEFAULT_RUNTIME_CONFIG, Some(Path::new("/nowhere")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nowhere/robots/ur5e.toml"), "{e}");
    }

    #[test]
    fn nodes_have_their_peers_and_an_older_file_gets_the_shipped_ones() {
        let c = RuntimeConfig::default();
        assert_eq!(c.nodes["controller"].watch, ["policy"]);
        assert_eq!(c.nodes["arm"].peers, ["controller"]);
        assert!(c.nodes["heightmap"].peers.is_empty());
        let cut = DEFAULT_RUNTIME_CONFIG.find("\n[nodes.").unwrap();
        let older = RuntimeConfig::parse(&DEFAULT_RUNTIME_CONFIG[..cut], None).unwrap();
        assert_eq!(older.nodes, c.nodes);
        let bad = DEFAULT_RUNTIME_CONFIG.replace("watch = [\"policy\"]", "wach = [\"policy\"]");
        assert!(
            RuntimeConfig::parse(&bad, None).is_err(),
            "a misspelt key is refused"
        );
    }
}
