//! The command line, called as the binary would be.

use std::path::PathBuf;

fn loho(args: &[&str]) -> anyhow::Result<()> {
    loho::main_with(
        std::iter::once("loho")
            .chain(args.iter().copied())
            .map(String::from),
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loho-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn eval_writes_the_documented_json() {
    let out = tmp("eval.json");
    loho(&[
        "eval",
        "--policy",
        "oracle",
        "--tasks",
        "A,put-block-into-matching-bowl",
        "--split",
        "val",
        "--episodes",
        "2",
        "--jobs",
        "2",
        "--json",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["policy"], "oracle");
    assert_eq!(v["split"], "val");
    assert_eq!(v["episodes"], 2);
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[1]["letter"], "B");
    assert_eq!(tasks[1]["name"], "put-block-into-matching-bowl");
    for t in tasks {
        assert_eq!(t["episodes"], 2);
        assert_eq!(t["success_rate"], 100.0);
        assert_eq!(t["score"], 100.0);
        assert!(t["mean_steps"].as_f64().unwrap() >= 1.0);
    }
    assert_eq!(v["mean_success_rate"], 100.0);
    assert!(v["wall_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn render_writes_a_png_and_bad_names_are_errors() {
    let out = tmp("scene.png");
    loho(&[
        "render",
        "--task",
        "K",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let e = loho(&["render", "--task", "Z", "--out", out.to_str().unwrap()]).unwrap_err();
    assert!(e.to_string().contains("unknown task"), "{e}");
    let e = loho(&["eval", "--split", "dev"]).unwrap_err();
    assert!(e.to_string().contains("unknown split"), "{e}");
    let e = loho(&["eval", "--policy", "clever"]).unwrap_err();
    assert!(e.to_string().contains("unknown policy"), "{e}");
}
