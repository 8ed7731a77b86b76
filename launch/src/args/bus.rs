//! The bus flags every node command takes (`[bus]` in the README): where its zenoh
//! session links, under which identity, and how it names its topics.

use std::path::PathBuf;

use clap::Args;
use loho_runtime::bus::Ros2;
use loho_runtime::secure::Secure;
use loho_runtime::BusConfig;

/// Where a node's zenoh session listens and connects (loopback only by default).
#[derive(Args, Debug)]
pub struct BusArgs {
    #[arg(long, default_value = loho_runtime::keys::DEFAULT_ROBOT)]
    pub robot: String,
    /// zenoh endpoint to listen on, e.g. tcp/127.0.0.1:7447 (repeatable).
    #[arg(long)]
    pub listen: Vec<String>,
    /// zenoh endpoint to connect to (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// Link only over mutual TLS, with access control, using the certificates `loho certs`
    /// wrote to DIR (endpoints are then `tls/…`; docs/security.md).
    #[arg(long, value_name = "DIR")]
    pub secure: Option<PathBuf>,
    /// The certificate (common name) this node presents with --secure [default: its role].
    #[arg(long, requires = "secure")]
    pub identity: Option<String>,
    /// Send frames to processes of this host over the link, not through shared memory
    /// (zenoh's segments or loho's frame rings; /dev/shm too small, e.g. Docker's 64 MB
    /// default).
    #[arg(long)]
    pub no_shared_memory: bool,
    /// Speak ROS 2 natively: `rmw-zenoh` publishes and subscribes every topic as a ROS 2
    /// node on rmw_zenoh would, as `/<robot>/<topic>` (docs/ros2.md).
    #[arg(long, value_name = "LAYOUT", value_enum)]
    pub ros2: Option<Ros2Layout>,
    /// ROS_DOMAIN_ID under --ros2 [default: $ROS_DOMAIN_ID, else 0].
    #[arg(long, requires = "ros2")]
    pub domain: Option<u32>,
    /// Join as a zenoh client of the router given with --connect (ROS 2's rmw_zenohd on
    /// tcp/127.0.0.1:7447, a zenohd): all traffic goes through it.
    #[arg(long, requires = "connect", conflicts_with = "listen")]
    pub client: bool,
}

/// How `--ros2` lays topics out.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Ros2Layout {
    /// rmw_zenoh's keys, attachments and graph tokens (ROS 2 Jazzy, Kilted).
    RmwZenoh,
}

impl BusArgs {
    /// The session of a node whose role (and default identity) is `role`.
    pub fn config(&self, role: &str) -> BusConfig {
        BusConfig {
            robot: self.robot.clone(),
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            secure: self.secure.as_ref().map(|dir| Secure {
                dir: dir.clone(),
                identity: self.identity.clone().unwrap_or_else(|| role.into()),
            }),
            shared_memory: !self.no_shared_memory,
            ring: true,
            ros2: self.ros2.map(|Ros2Layout::RmwZenoh| Ros2 {
                domain: self.domain.unwrap_or_else(|| {
                    std::env::var("ROS_DOMAIN_ID")
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0)
                }),
                node: format!("loho_{}", role.replace('-', "_")),
            }),
            client: self.client,
        }
    }
}
