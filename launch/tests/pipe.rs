//! `loho tasks | head -1` as a shell runs it: the binary, its reader gone early.

use std::process::{Command, Stdio};

/// A reader that stops reading ends the listing; the process neither panics nor fails
/// (it did: `println!` panics on a closed pipe).
#[test]
fn a_closed_pipe_ends_the_task_listing_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loho"))
        .args(["tasks", "--families"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the child, still starting, writes the listing.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{}: {stderr}",
        out.status
    );
}
