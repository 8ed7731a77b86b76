//! `loho launch FILE`: starts the nodes a launch graph names, each as a `loho` process,
//! and stops them together: on Ctrl-C, or when one of them exits (the first to exit
//! decides the outcome: a node that fails fails the graph). Nodes are stopped as Ctrl-C
//! stops them (SIGTERM), so that they finish what they write (a recording's index); one
//! still running after [`GRACE`] is killed.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    pub node: Vec<NodeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// The `loho` arguments of the node, e.g. `["sim", "--listen", "tcp/127.0.0.1:7447"]`.
    pub args: Vec<String>,
}

impl Graph {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let g: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(!g.node.is_empty(), "{} names no node", path.display());
        Ok(g)
    }
}

struct Running {
    name: String,
    child: Child,
}

/// How long a node may take to stop once asked.
const GRACE: Duration = Duration::from_secs(5);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a pid of our own child and a valid signal number.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let t0 = std::time::Instant::now();
        while t0.elapsed() < GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!("{} did not stop within {GRACE:?}: killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn launch(path: &Path) -> Result<()> {
    let graph = Graph::load(path)?;
    let exe = std::env::current_exe().context("finding the loho executable")?;
    let stop = crate::process::ctrl_c()?;
    let mut nodes = Vec::new();
    for n in &graph.node {
        let child = Command::new(&exe)
            .args(&n.args)
            .spawn()
            .with_context(|| format!("starting node {}", n.name))?;
        println!(
            "started {} (pid {}): loho {}",
            n.name,
            child.id(),
            n.args.join(" ")
        );
        nodes.push(Running {
            name: n.name.clone(),
            child,
        });
        // Listeners first: the next node connects to them.
        std::thread::sleep(Duration::from_millis(300));
    }
    loop {
        if stop.load(Ordering::Relaxed) {
            println!("stopping every node");
            return Ok(());
        }
        for n in &mut nodes {
            if let Some(status) = n.child.try_wait()? {
                println!("{} exited ({status}); stopping the others", n.name);
                anyhow::ensure!(status.success(), "node {} failed: {status}", n.name);
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    /// Every shipped launch file loads and each of its nodes' arguments is a command line
    /// `loho` accepts.
    #[test]
    fn shipped_launch_files_are_valid_graphs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") || path.ends_with("Cargo.toml") {
                continue;
            }
            files += 1;
            let graph = super::Graph::load(&path).unwrap();
            for node in graph.node {
                let argv = std::iter::once("loho".to_string()).chain(node.args);
                if let Err(e) = crate::cli::Cli::try_parse_from(argv) {
                    panic!("{}: node {}: {e}", path.display(), node.name);
                }
            }
        }
        assert!(files >= 5, "{files} launch files");
    }
}
