//! `loho policy --palette` and `loho serve-openpi --palette`: a palette file that cannot
//! be used stops the command before it serves anything, with the file and the colour
//! named.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loho"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_bad_palette_is_named_before_the_policy_serves() {
    let dir = std::env::temp_dir().join(format!("loho-policy-palette-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "teal = [0, 128, 300]\n").unwrap();
    let bad = bad.to_str().unwrap();
    let missing = dir.join("missing.toml");
    let missing = missing.to_str().unwrap();
    for command in [
        vec!["policy", "--palette", bad],
        vec!["serve-openpi", "--port", "0", "--palette", bad],
    ] {
        let (ok, stderr) = run(&command);
        assert!(!ok, "{command:?} ran with a bad palette");
        assert!(
            stderr.contains(bad) && stderr.contains("\"teal\"") && stderr.contains("0-255"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (ok, stderr) = run(&["serve-openpi", "--port", "0", "--palette", missing]);
    assert!(!ok && stderr.contains(missing), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
