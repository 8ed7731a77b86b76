//! What the end-to-end tests that call the command line share.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

/// The `loho` command line, called in this process as the binary would be.
pub fn loho(args: &[&str]) -> anyhow::Result<()> {
    loho::main_with(
        std::iter::once("loho")
            .chain(args.iter().copied())
            .map(String::from),
    )
}

/// A JSON file the command wrote.
pub fn read_json(path: impl AsRef<Path>) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `loho eval ARGS --json JSON`, and the report it wrote.
pub fn eval_json(json: &Path, args: &[&str]) -> serde_json::Value {
    let json_arg = json.to_str().unwrap();
    let all: Vec<&str> = ["eval"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--json", json_arg])
        .collect();
    loho(&all).unwrap();
    read_json(json)
}

/// A path `name` in this test binary's own folder under the system's temporary one
/// (`group` keeps binaries apart).
pub fn tmp_in(group: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loho-{group}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}
