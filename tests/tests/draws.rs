//! Episodes drawn otherwise than the benchmark draws them, end to end: a palette file and
//! an instruction file reach every episode on every transport, bad files are named
//! errors, a large palette is drawn a few colours an episode, and eval marks the tasks a checkpoint never trained on.

mod common;

use std::path::{Path, PathBuf};

use common::{eval_json, loho, read_json, tmp_in};

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

/// `--palette-draw N`: each episode of a large palette is drawn in N of its colours, a
/// different N by seed, so training data sees the whole palette; too many is an error.
#[test]
fn gen_data_draws_each_episode_from_a_few_colours_of_a_large_palette() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pool = root.join("configs/palettes/many.toml");
    let out = tmp("many");
    let _ = std::fs::remove_dir_all(&out);
    let args = |n: &'static str| {
        vec![
            "gen-data".to_string(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--tasks".into(),
            "B".into(),
            "--episodes".into(),
            "6".into(),
            "--palette".into(),
            pool.to_str().unwrap().into(),
            "--palette-draw".into(),
            n.into(),
        ]
    };
    let call = |a: Vec<String>| loho(&a.iter().map(String::as_str).collect::<Vec<_>>());
    call(args("7")).unwrap();
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let mut per_seed = std::collections::BTreeMap::<u64, std::collections::BTreeSet<String>>::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let sub = v["subtask"].as_str().unwrap();
        // "pick up the X block and place it on the X bowl."
        let Some(color) = sub
            .strip_prefix("pick up the ")
            .and_then(|r| r.split(" block").next())
        else {
            continue;
        };
        let seed = v["seed"].as_u64().unwrap();
        per_seed.entry(seed).or_default().insert(color.to_string());
    }
    let all: std::collections::BTreeSet<&String> = per_seed.values().flatten().collect();
    assert_eq!(per_seed.len(), 6);
    assert!(per_seed.values().all(|c| c.len() <= 7), "{per_seed:?}");
    assert!(all.len() > 7, "six episodes, one palette: {all:?}");
    let e = call(args("90")).unwrap_err();
    assert!(format!("{e:#}").contains("--palette-draw 90"), "{e:#}");
}

/// The held-out checkpoint loads (open vocabulary, its table at F16), and eval marks the
/// rows of the tasks its train.json does not list.
#[test]
fn eval_marks_the_tasks_a_checkpoint_never_trained_on() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ckpt = root.join("models/checkpoints/loho-heldout");
    let v = eval_json(
        &tmp("held-out.json"),
        &[
            "--policy",
            ckpt.to_str().unwrap(),
            "--tasks",
            "A,F,L",
            "--split",
            "val",
            "--episodes",
            "1",
        ],
    );
    let held: Vec<bool> = (0..3)
        .map(|i| v["tasks"][i]["held_out"].as_bool().unwrap())
        .collect();
    assert_eq!(held, [false, true, false]);
    let v = eval_json(
        &tmp("not-held-out.json"),
        &["--policy", "oracle", "--tasks", "F", "--episodes", "1"],
    );
    assert_eq!(v["tasks"][0]["held_out"], false);
}
