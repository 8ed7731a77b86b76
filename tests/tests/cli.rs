//! The command line, called as the binary would be.

mod common;

use std::path::{Path, PathBuf};

use common::{eval_json, loho, read_json, tmp_in};

fn tmp(name: &str) -> PathBuf {
    tmp_in("cli", name)
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
    let v = read_json(&out);
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
    assert_eq!(v["feedback"], "reward");
    assert_eq!(v["arm"], "sim");
    assert_eq!(v["camera"], "ideal");
    assert!(v["ms_per_frame"].is_null());
}

/// Through the benchmark's cameras the oracle, acting on the world, still solves every
/// episode, and the report says what the policy saw and what fusing it cost.
#[test]
fn eval_through_the_cameras() {
    let out = tmp("eval-cameras.json");
    loho(&[
        "eval",
        "--policy",
        "oracle",
        "--tasks",
        "B,E",
        "--split",
        "val",
        "--episodes",
        "1",
        "--camera",
        "benchmark",
        "--json",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let v = read_json(&out);
    assert_eq!(v["camera"], "benchmark");
    assert_eq!(v["mean_success_rate"], 100.0);
    assert!(v["ms_per_frame"].as_f64().unwrap() > 0.0);
    let e = loho(&["eval", "--camera", "fisheye", "--episodes", "1"]).unwrap_err();
    assert!(format!("{e:#}").contains("rig file"), "{e:#}");
}

/// The oracle through the whole deployment path, in real time: policy node → controller
/// → the UR driver's arm node → RTDE → the controller emulator → the simulated world;
/// and told no reward, as on a robot.
#[test]
fn eval_through_the_ur_driver_and_emulator() {
    let out = tmp("eval-ur.json");
    loho(&[
        "eval",
        "--policy",
        "oracle",
        "--tasks",
        "A",
        "--split",
        "val",
        "--episodes",
        "2",
        "--arm",
        "ur-emulator",
        "--feedback",
        "none",
        "--json",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let v = read_json(&out);
    assert_eq!(v["arm"], "ur-emulator");
    assert_eq!(v["feedback"], "none");
    assert_eq!(v["tasks"][0]["success_rate"], 100.0);
    // The oracle cannot go through `policy/infer`, and neither can the UR path.
    let e = loho(&[
        "eval",
        "--arm",
        "ur-emulator",
        "--transport",
        "infer",
        "--tasks",
        "A",
        "--episodes",
        "1",
    ])
    .unwrap_err();
    assert!(format!("{e:#}").contains("drop --transport infer"), "{e:#}");
}

#[test]
fn render_writes_a_png_and_bad_names_are_errors() {
    let out = tmp("scene.png");
    loho(&[
        "render",
        "--task",
        "K",
        "--episode",
        "3",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let e = loho(&["render", "--task", "ZZ", "--out", out.to_str().unwrap()]).unwrap_err();
    assert!(e.to_string().contains("unknown task"), "{e}");
    let e = loho(&["eval", "--split", "dev"]).unwrap_err();
    assert!(e.to_string().contains("unknown split"), "{e}");
    let e = loho(&["eval", "--policy", "clever"]).unwrap_err();
    assert!(e.to_string().contains("unknown policy"), "{e}");
}

/// The learning pipeline as a user runs it: demonstrations, a short training run that is
/// killed and resumed, the checkpoint evaluated and benchmarked as a policy.
#[test]
fn gen_data_train_resume_eval_and_bench_a_checkpoint() {
    let data = tmp("data");
    let run = tmp("run");
    loho(&[
        "gen-data",
        "--out",
        data.to_str().unwrap(),
        "--tasks",
        "A,B",
        "--episodes",
        "2",
        "--jobs",
        "2",
    ])
    .unwrap();
    let index = std::fs::read_to_string(data.join("samples.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 4, "{} decisions", lines.len());
    assert!(lines.iter().any(|s| s["task"] == "B"));
    // Every acting decision has a pick (suction on) and a place (suction off).
    for s in lines
        .iter()
        .filter(|s| !s["keyposes"].as_array().unwrap().is_empty())
    {
        assert_eq!(s["keyposes"][0]["suction"], true);
        assert_eq!(s["keyposes"][1]["suction"], false);
    }
    assert!(lines
        .iter()
        .any(|s| s["subtask"].as_str().unwrap().starts_with("done")));

    let train = |steps: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--steps",
            steps,
            "--batch",
            "2",
            "--save-every",
            "2",
        ];
        if resume {
            args.push("--resume");
        }
        loho(&args)
    };
    train("2", false).unwrap();
    let state = read_json(run.join("train.json"));
    assert_eq!(state["step"], 2);
    // Resuming with more steps continues from step 2.
    train("4", true).unwrap();
    let state = read_json(run.join("train.json"));
    assert_eq!(state["step"], 4);

    let v = eval_json(
        &tmp("model-eval.json"),
        &[
            "--policy",
            run.to_str().unwrap(),
            "--tasks",
            "A",
            "--episodes",
            "1",
        ],
    );
    assert_eq!(v["tasks"][0]["episodes"], 1);

    let bench = tmp("bench.json");
    loho(&[
        "bench",
        "policy",
        "--policy",
        run.to_str().unwrap(),
        "--decisions",
        "3",
        "--json",
        bench.to_str().unwrap(),
    ])
    .unwrap();
    let b = read_json(&bench);
    // An autoregressive checkpoint: one mode.
    assert_eq!(b["modes"].as_array().unwrap().len(), 1);
    let ar = &b["modes"][0];
    assert_eq!(ar["decoding"], "ar");
    assert_eq!(ar["decisions"], 3);
    assert!(ar["total"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(ar["cache_speedup"].as_f64().unwrap() > 0.0);
    // Comparing the decoding modes needs a checkpoint with `<mask>`: refused, with the fix.
    let e = loho(&["bench", "decoding", "--policy", run.to_str().unwrap()]).unwrap_err();
    assert!(format!("{e:#}").contains("needs a <mask> token"), "{e:#}");

    // A parallel fine-tune of it: blocks of 0 refused; blocks of 4 bench in both modes.
    let par = tmp("run-parallel");
    let fine_tune = |block: &str| {
        loho(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            par.to_str().unwrap(),
            "--from",
            run.to_str().unwrap(),
            "--parallel",
            block,
            "--steps",
            "2",
            "--batch",
            "2",
        ])
    };
    let e = fine_tune("0").unwrap_err();
    assert!(format!("{e:#}").contains("head.block is 0"), "{e:#}");
    fine_tune("4").unwrap();
    loho(&[
        "bench",
        "policy",
        "--policy",
        par.to_str().unwrap(),
        "--decisions",
        "2",
        "--json",
        bench.to_str().unwrap(),
    ])
    .unwrap();
    let b = read_json(&bench);
    let modes: Vec<&str> = (b["modes"].as_array().unwrap().iter())
        .map(|m| m["decoding"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["ar", "parallel"]);
    assert!(b["parallel_over_ar"].as_f64().unwrap() > 0.0);
    loho(&[
        "bench",
        "decoding",
        "--policy",
        par.to_str().unwrap(),
        "--episodes",
        "1",
        "--json",
        bench.to_str().unwrap(),
    ])
    .unwrap();
    let b = read_json(&bench);
    let frames = b["frames"].as_u64().unwrap();
    assert!(frames >= 11, "{frames} frames");
    assert!(b["same"].as_u64().unwrap() <= frames);
    assert!(b["parallel_passes"].as_f64().unwrap() > 0.0);

    // A broken checkpoint is a clear error, not a panic.
    std::fs::write(run.join("model.safetensors"), b"garbage").unwrap();
    let e = loho(&[
        "eval",
        "--policy",
        run.to_str().unwrap(),
        "--tasks",
        "A",
        "--episodes",
        "1",
    ])
    .unwrap_err();
    assert!(format!("{e:#}").contains("model.safetensors"), "{e:#}");
}

/// The shipped checkpoint (open vocabulary) and the previous one (word-level vocabulary,
/// the format before it) load with the current code and act.
#[test]
fn the_default_and_the_word_level_checkpoint_load_and_run_an_episode() {
    let tiny = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/checkpoints/loho-tiny"
    );
    for (policy, name) in [("default", "loho-open"), (tiny, "loho-tiny")] {
        let v = eval_json(
            &tmp(&format!("{name}-eval.json")),
            &["--policy", policy, "--tasks", "B", "--episodes", "1"],
        );
        assert!(v["policy"].as_str().unwrap().ends_with(name), "{v}");
        assert_eq!(v["tasks"][0]["episodes"], 1);
        assert!(v["results"][0]["steps"].as_u64().unwrap() >= 1, "{v}");
    }
}

/// The main job with the shipped checkpoint (lockstep, so the test is quick): it ends
/// with a result, an MCAP file a standard reader opens, with one channel per topic and
/// every message decodable, and a GIF.
#[test]
fn run_records_every_topic_to_mcap_and_a_gif() {
    use loho_core::Message;
    let out = tmp("run");
    loho(&[
        "run",
        "--lockstep",
        "--task",
        "B",
        "--episode",
        "1",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let bytes = std::fs::read(out.join("B-test-1.mcap")).unwrap();
    let summary = mcap::Summary::read(&bytes)
        .unwrap()
        .expect("a summary section");
    let mut topics: Vec<String> = summary.channels.values().map(|c| c.topic.clone()).collect();
    topics.sort();
    let mut want: Vec<String> = loho_runtime::keys::TOPICS
        .iter()
        .map(|(t, _)| format!("/loho/arm0/{t}"))
        .collect();
    want.sort();
    assert_eq!(topics, want);
    for c in summary.channels.values() {
        assert_eq!(c.message_encoding, "cdr");
        let schema = c.schema.as_ref().expect("every channel has a schema");
        assert_eq!(schema.encoding, "ros2msg");
    }
    let mut per_topic = std::collections::HashMap::<String, usize>::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        let m = m.unwrap();
        *per_topic.entry(m.channel.topic.clone()).or_default() += 1;
        if m.channel.topic.ends_with("/episode") {
            loho_core::msg::EpisodeEvent::decode(&m.data).unwrap();
        }
        if m.channel.topic.ends_with("/cmd/ee") {
            let c = loho_core::msg::EeCommand::decode(&m.data).unwrap();
            assert!(c.target.is_finite());
        }
    }
    for t in [
        "/policy/action",
        "/cmd/ee",
        "/state",
        "/camera/top/color",
        "/episode",
    ] {
        let n = per_topic
            .iter()
            .filter(|(k, _)| k.ends_with(t))
            .map(|(_, n)| *n)
            .sum::<usize>();
        assert!(n > 0, "nothing recorded on {t}: {per_topic:?}");
    }
    let gif = std::fs::read(out.join("B-test-1.gif")).unwrap();
    assert!(gif.starts_with(b"GIF89a"));
}

/// `--transport zenoh` runs the same episode through the nodes.
#[test]
fn eval_through_the_nodes() {
    let json = tmp("zenoh-eval.json");
    loho(&[
        "eval",
        "--policy",
        "default",
        "--tasks",
        "A",
        "--episodes",
        "1",
        "--transport",
        "zenoh",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    let v = read_json(&json);
    assert_eq!(v["tasks"][0]["episodes"], 1);
    assert!(v["tasks"][0]["mean_steps"].as_f64().unwrap() >= 1.0);
    // The oracle reads the scene: it runs next to the simulator, never as a node alone.
    let e = loho(&["policy", "--policy", "oracle"]).unwrap_err();
    assert!(format!("{e:#}").contains("cannot run as a node"), "{e:#}");
}

/// `--transport infer` asks a policy node for every decision through `policy/infer`; the
/// caller seeds each query, so the same episodes give the same results.
#[test]
fn eval_through_policy_infer() {
    let run = |name: &str| {
        let json = tmp(name);
        loho(&[
            "eval",
            "--policy",
            "default",
            "--tasks",
            "A,F",
            "--episodes",
            "2",
            "--jobs",
            "2",
            "--transport",
            "infer",
            "--json",
            json.to_str().unwrap(),
        ])
        .unwrap();
        let v = read_json(&json);
        (v["tasks"].clone(), v["failures"].clone())
    };
    let first = run("infer-eval-1.json");
    for t in first.0.as_array().unwrap() {
        assert_eq!(t["episodes"], 2);
        assert!(t["mean_steps"].as_f64().unwrap() >= 1.0, "{t}");
    }
    assert_eq!(run("infer-eval-2.json"), first);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = format!("tcp/127.0.0.1:{port}");
    let e = loho(&[
        "eval",
        "--policy",
        "default",
        "--tasks",
        "A",
        "--episodes",
        "1",
        "--transport",
        "infer",
        "--connect",
        &nobody,
    ])
    .unwrap_err();
    assert!(format!("{e:#}").contains(&nobody), "{e:#}");
    let e = loho(&["eval", "--transport", "zenoh", "--connect", &nobody]).unwrap_err();
    assert!(format!("{e:#}").contains("--transport infer"), "{e:#}");
}

/// DAgger: a policy acts, the oracle labels every state it reaches, and rounds add to
/// one dataset.
#[test]
fn gen_data_dagger_labels_the_policys_own_states_and_rounds_append() {
    let (plain, dagger) = (tmp("plain"), tmp("dagger"));
    let ds = |p: &Path| loho_models::data::Dataset::open(p).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let base = ["gen-data", "--tasks", "B", "--episodes", "1", "--jobs", "1"];
    let run = |extra: &[&str]| loho(&[&base[..], extra].concat()).unwrap();
    run(&["--perturb", "0", "--out", &s(&plain)]);
    run(&["--policy", "random", "--dagger", "--out", &s(&dagger)]);
    let (p, d) = (ds(&plain), ds(&dagger));
    // The same first state and label; then the random policy's moves lead elsewhere.
    assert_eq!(d.samples[0].subtask, p.samples[0].subtask);
    assert_eq!(d.frame(0).unwrap().rgb, p.frame(0).unwrap().rgb);
    assert_ne!(d.frame(1).unwrap().rgb, p.frame(1).unwrap().rgb);
    // Every label is the oracle's: in B, a block to the bowl of its own colour (a random
    // policy's own moves would not be).
    for x in &d.samples {
        let w: Vec<&str> = x.subtask.split(' ').collect();
        if w[0] == "pick" {
            assert_eq!(w[3], w[w.len() - 2], "{}", x.subtask);
            assert_eq!(x.keyposes.len(), 2);
        }
    }
    // A second round adds to the first: old samples kept, new frames numbered after them.
    let n = d.len();
    run(&[
        "--policy",
        "random",
        "--dagger",
        "--append",
        "--episode",
        "1",
        "--out",
        &s(&dagger),
    ]);
    let d2 = ds(&dagger);
    assert!(d2.len() > n);
    assert_eq!(d2.samples[..n].len(), n);
    assert_eq!(d2.samples[n - 1].frame, d.samples[n - 1].frame);
    assert_eq!(d2.samples[n].frame, format!("frames/{n:07}.png"));
    assert_ne!(d2.samples[n].seed, d.samples[0].seed);
}
