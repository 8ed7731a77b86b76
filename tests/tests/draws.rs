//! Episodes drawn otherwise than the benchmark draws them, end to end: a palette file and
//! an instruction file reach every episode on every transport, bad files are named
//! errors, and eval marks the tasks a checkpoint never trained on.

mod common;

use std::path::{Path, PathBuf};

use common::{loho, read_json, tmp_in};

fn tmp(name: &str) -> PathBuf {
    tmp_in("draws", name)
}

/// A palette and an instruction file reach every episode, in this process and through
/// the nodes alike: the scene is drawn in the file's colours, the policy told the file's
/// words; bad files are named errors.
#[test]
fn eval_draws_from_a_palette_and_an_instruction_file_on_every_transport() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let palette = root.join("configs/palettes/unseen.toml");
    let words = tmp("words.toml");
    std::fs::write(
        &words,
        "D = [\"build one tower of all the blocks in the {area}.\"]\n",
    )
    .unwrap();
    let unseen = [
        "teal", "maroon", "navy", "olive", "lime", "violet", "gold", "salmon",
    ];
    for transport in ["local", "zenoh"] {
        let json = tmp(&format!("drawn-{transport}.json"));
        loho(&[
            "eval",
            "--policy",
            "oracle",
            "--tasks",
            "D",
            "--split",
            "val",
            "--episodes",
            "1",
            "--transport",
            transport,
            "--palette",
            palette.to_str().unwrap(),
            "--instructions",
            words.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .unwrap();
        let v = read_json(&json);
        let e = &v["results"][0];
        let instruction = e["instruction"].as_str().unwrap();
        assert!(
            instruction.starts_with("build one tower of all the blocks in the "),
            "{transport}: {instruction}"
        );
        let first = e["subtasks"][0].as_str().unwrap();
        assert!(
            unseen.iter().any(|c| first.contains(c)),
            "{transport}: {first}"
        );
        assert_eq!(v["tasks"][0]["success_rate"], 100.0);
    }
    for (flag, text, named) in [
        (
            "--instructions",
            "D = [\"stack them in the {are}.\"]\n",
            "{are}",
        ),
        ("--palette", "teal = [0, 128, 300]\n", "0-255"),
    ] {
        std::fs::write(&words, text).unwrap();
        let e = loho(&[
            "eval",
            "--policy",
            "oracle",
            "--tasks",
            "D",
            "--episodes",
            "1",
            flag,
            words.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{e:#}").contains(named), "{flag}: {e:#}");
    }
}

/// The held-out checkpoint loads (open vocabulary, its table at F16), and eval marks the
/// rows of the tasks its train.json does not list.
#[test]
fn eval_marks_the_tasks_a_checkpoint_never_trained_on() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ckpt = root.join("models/checkpoints/loho-heldout");
    let json = tmp("held-out.json");
    loho(&[
        "eval",
        "--policy",
        ckpt.to_str().unwrap(),
        "--tasks",
        "A,F,L",
        "--split",
        "val",
        "--episodes",
        "1",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    let v = read_json(&json);
    let held: Vec<bool> = (0..3)
        .map(|i| v["tasks"][i]["held_out"].as_bool().unwrap())
        .collect();
    assert_eq!(held, [false, true, false]);
    let json = tmp("not-held-out.json");
    loho(&[
        "eval",
        "--policy",
        "oracle",
        "--tasks",
        "F",
        "--episodes",
        "1",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(read_json(&json)["tasks"][0]["held_out"], false);
}
