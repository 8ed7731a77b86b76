//! `loho certs`: the certificates of `--secure` (docs/security.md).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct CertsCmd {
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// A node's name, its identity (repeatable) [default: sim, controller, policy,
    /// heightmap, driver, client, observer].
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// A host name or address the nodes are reached at as tls/HOST:PORT (repeatable)
    /// [default: localhost, 127.0.0.1].
    #[arg(long = "host")]
    pub hosts: Vec<String>,
}

/// `loho certs`: writes the CA and each node's key and certificate, and prints their paths.
pub fn command(c: CertsCmd) -> Result<()> {
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
