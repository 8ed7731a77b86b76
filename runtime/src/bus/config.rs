//! Where a node's session links and how it names its topics: the zenoh configuration
//! built from the embedded defaults (`configs/zenoh/*.json5`) and a node's flags.

use super::BusError;
use crate::keys;
use crate::secure::{Secure, SECURE_ZENOH_CONFIG};

/// The embedded default zenoh configuration: peer, no multicast scouting, no listener.
pub const DEFAULT_ZENOH_CONFIG: &str = include_str!("../../../configs/zenoh/default.json5");

/// Where a node's session listens and whom it connects to.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub robot: String,
    /// zenoh endpoints to listen on, e.g. `tcp/127.0.0.1:7447`.
    pub listen: Vec<String>,
    /// zenoh endpoints to connect to.
    pub connect: Vec<String>,
    /// Mutual TLS and access control with this node's certificate ([`crate::secure`]);
    /// `None`: the embedded default (loopback, no certificates).
    pub secure: Option<Secure>,
    /// Large messages through shared memory to processes of this host (zenoh's transport
    /// optimisation); off: every byte over the link. Never under `secure`.
    pub shared_memory: bool,
    /// [`crate::Qos::Frames`] to processes of this host through rings of our own
    /// ([`crate::same_host`]), not zenoh. Only with `shared_memory`, never under `secure`
    /// or `ros2`.
    pub ring: bool,
    /// Publish and subscribe as a ROS 2 node on rmw_zenoh, not on loho's keys.
    pub ros2: Option<Ros2>,
    /// Join as a zenoh client of the router(s) in `connect` (ROS 2's `rmw_zenohd`, a
    /// `zenohd`): everything goes through them and nothing listens.
    pub client: bool,
}

/// A bus that is a ROS 2 node on rmw_zenoh: its topics are `/<robot>/<topic>`.
#[derive(Debug, Clone)]
pub struct Ros2 {
    /// `ROS_DOMAIN_ID`.
    pub domain: u32,
    /// The node's name in the ROS graph (its namespace is `/<robot>`).
    pub node: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            robot: keys::DEFAULT_ROBOT.into(),
            listen: vec![],
            connect: vec![],
            secure: None,
            shared_memory: true,
            ring: true,
            ros2: None,
            client: false,
        }
    }
}

impl BusConfig {
    pub(super) fn zenoh(&self) -> Result<zenoh::Config, BusError> {
        let mut cfg = match &self.secure {
            None => zenoh::Config::from_json5(DEFAULT_ZENOH_CONFIG)?,
            Some(s) => {
                let mut cfg = zenoh::Config::from_json5(SECURE_ZENOH_CONFIG)?;
                let [ca, cert, key] = s.files()?;
                for (field, file) in [
                    ("root_ca_certificate", &ca),
                    ("listen_certificate", &cert),
                    ("listen_private_key", &key),
                    ("connect_certificate", &cert),
                    ("connect_private_key", &key),
                ] {
                    let path = format!("{:?}", file.display().to_string());
                    cfg.insert_json5(&format!("transport/link/tls/{field}"), &path)?;
                }
                cfg
            }
        };
        if self.client {
            if let Some(e) = self.listen.first() {
                return Err(BusError::Endpoint {
                    endpoint: e.clone(),
                    reason: "a zenoh client does not listen: drop --listen or --client".into(),
                });
            }
            if self.connect.is_empty() {
                return Err(BusError::Endpoint {
                    endpoint: String::new(),
                    reason:
                        "a zenoh client needs a router to --connect to, e.g. tcp/127.0.0.1:7447"
                            .into(),
                });
            }
            cfg.insert_json5("mode", "\"client\"")?;
        }
        cfg.insert_json5(
            "transport/shared_memory/enabled",
            if self.shared_memory && self.secure.is_none() {
                "true"
            } else {
                "false"
            },
        )?;
        for (field, eps) in [
            ("listen/endpoints", &self.listen),
            ("connect/endpoints", &self.connect),
        ] {
            for e in eps {
                if !e.contains('/') {
                    return Err(BusError::Endpoint {
                        endpoint: e.clone(),
                        reason: "expected <protocol>/<address>, e.g. tcp/127.0.0.1:7447".into(),
                    });
                }
                if self.secure.is_some() && !e.starts_with("tls/") {
                    return Err(BusError::Endpoint {
                        endpoint: e.clone(),
                        reason: "a secured node links only over TLS: tls/<host>:<port>".into(),
                    });
                }
            }
            let json = format!(
                "[{}]",
                eps.iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            cfg.insert_json5(field, &json)?;
        }
        Ok(cfg)
    }
}
