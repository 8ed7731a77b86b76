//! Writing then reading small datasets, and what each kind of bad input gets.

use std::path::{Path, PathBuf};

use super::*;
use crate::data::Sample;
use crate::Keypose;
use loho_core::policy::Frame;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loho-lerobot-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

const ROWS: usize = 4;
const COLS: usize = 6;

fn kp(x: f64, suction: bool) -> Keypose {
    // Values a float32 holds exactly, so equality below is exact.
    Keypose {
        x,
        y: -0.25,
        z: 0.0625,
        yaw: 0.5,
        suction,
    }
}

fn step(task: &str, seed: u64, step: usize, done: bool) -> (Sample, Frame) {
    let n = ROWS * COLS;
    let mut height: Vec<f32> = (0..n)
        .map(|i| crate::data::dequantise((i * 9 + step) as u8 % 255))
        .collect();
    height[3] = f32::NAN;
    let sample = Sample {
        task: task.into(),
        seed,
        step,
        instruction: format!("instruction of {task}"),
        subtask: if done {
            "done.".into()
        } else {
            format!("sub-task {step}")
        },
        keyposes: if done {
            vec![]
        } else {
            vec![kp(0.5, true), kp(0.75, false)]
        },
        frame: String::new(),
        alternatives: if step == 1 {
            vec!["a".into(), "b".into()]
        } else {
            vec![]
        },
        state: Some(kp(0.125 * step as f64, step % 2 == 1)),
    };
    let rgb = (0..n * 3).map(|i| (i * 7 + step * 31) as u8).collect();
    (
        sample,
        Frame {
            rows: ROWS,
            cols: COLS,
            rgb,
            height,
        },
    )
}

fn write(dir: &Path, episodes: &[Vec<(Sample, Frame)>]) -> Summary {
    let mut w = Writer::create(dir, ROWS, COLS).unwrap();
    for e in episodes {
        w.add_episode(e).unwrap();
    }
    w.finish().unwrap()
}

fn two_episodes() -> Vec<Vec<(Sample, Frame)>> {
    vec![
        (0..3).map(|i| step("B", 4, i, i == 2)).collect(),
        (0..2).map(|i| step("E", 9, i, false)).collect(),
    ]
}

#[test]
fn every_field_comes_back() {
    let dir = tmp("round");
    let episodes = two_episodes();
    let summary = write(&dir, &episodes);
    assert_eq!(
        summary,
        Summary {
            episodes: 2,
            frames: 5,
            tasks: 2,
            data_files: 1
        }
    );
    let back = read(&dir).unwrap();
    let want: Vec<&(Sample, Frame)> = episodes.iter().flatten().collect();
    assert_eq!(back.len(), want.len());
    for (i, ((s, f), (ws, wf))) in back.iter().zip(want).enumerate() {
        let ws = Sample {
            frame: format!("frames/{i:07}.png"),
            ..ws.clone()
        };
        assert_eq!(*s, ws, "frame {i}");
        assert_eq!((f.rows, f.cols), (wf.rows, wf.cols));
        assert_eq!(f.rgb, wf.rgb);
        for (a, b) in f.height.iter().zip(&wf.height) {
            assert!(a == b || (a.is_nan() && b.is_nan()), "{a} vs {b}");
        }
    }
    let info: Info =
        serde_json::from_str(&std::fs::read_to_string(dir.join(INFO_PATH)).unwrap()).unwrap();
    assert_eq!(
        (info.total_frames, info.total_episodes, info.total_tasks),
        (5, 2, 2)
    );
    assert_eq!(info.splits["train"], "0:2");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(STATS_PATH)).unwrap()).unwrap();
    assert_eq!(stats[ACTION]["min"].as_array().unwrap().len(), 10);
    assert_eq!(stats[TOP]["mean"].as_array().unwrap().len(), 3);
    assert_eq!(stats["episode_index"]["max"], serde_json::json!([1.0]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_files_roll_over_and_episodes_say_where_they_are() {
    let dir = tmp("files");
    let mut w = Writer::create(&dir, ROWS, COLS).unwrap();
    w.file_mb = 0;
    for e in two_episodes() {
        w.add_episode(&e).unwrap();
    }
    assert_eq!(w.finish().unwrap().data_files, 2);
    assert!(dir.join(data_path(1)).exists());
    assert_eq!(read(&dir).unwrap().len(), 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn error_of<T>(r: Result<T, crate::ModelError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_episodes_are_refused_with_the_reason() {
    let dir = tmp("bad");
    let mut w = Writer::create(&dir, ROWS, COLS).unwrap();
    let mut e = two_episodes().remove(0);
    e[1].0.state = None;
    assert!(error_of(w.add_episode(&e)).contains("regenerate"));
    let mut e = two_episodes().remove(0);
    e[0].0.keyposes.push(kp(0.5, true));
    assert!(error_of(w.add_episode(&e)).contains("3 keyposes"));
    let mut e = two_episodes().remove(0);
    e[2].0.seed = 5;
    assert!(error_of(w.add_episode(&e)).contains("one task, seed"));
    let mut e = two_episodes().remove(0);
    e[0].1.height.pop();
    assert!(matches!(
        w.add_episode(&e),
        Err(crate::ModelError::FrameSize { .. })
    ));
    assert!(error_of(w.add_episode(&[])).contains("without frames"));
    // Nothing of the refused episodes is kept.
    w.add_episode(&two_episodes()[1]).unwrap();
    assert_eq!(
        w.finish().unwrap(),
        Summary {
            episodes: 1,
            frames: 2,
            tasks: 1,
            data_files: 1
        }
    );
    assert_eq!(read(&dir).unwrap()[0].0.task, "E");
    assert!(error_of(Writer::create(&dir, ROWS, COLS)).contains("not empty"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cut_short_or_damaged_dataset_is_an_error_not_a_panic() {
    let dir = tmp("damaged");
    write(&dir, &two_episodes());
    let info = std::fs::read_to_string(dir.join(INFO_PATH)).unwrap();

    // A feature info.json declares that the data lacks.
    let mut v: serde_json::Value = serde_json::from_str(&info).unwrap();
    v["features"]["observation.extra"] =
        serde_json::json!({"dtype": "float32", "shape": [1], "names": null});
    std::fs::write(dir.join(INFO_PATH), v.to_string()).unwrap();
    assert!(error_of(read(&dir)).contains("\"observation.extra\""));

    // A loho feature of another shape.
    let mut v: serde_json::Value = serde_json::from_str(&info).unwrap();
    v["features"][STATE]["shape"] = serde_json::json!([6]);
    std::fs::write(dir.join(INFO_PATH), v.to_string()).unwrap();
    assert!(error_of(read(&dir)).contains(STATE));

    // Another format version.
    std::fs::write(dir.join(INFO_PATH), info.replace("v3.0", "v2.1")).unwrap();
    assert!(error_of(read(&dir)).contains("v2.1"));

    // A data file cut in half.
    std::fs::write(dir.join(INFO_PATH), &info).unwrap();
    let data = dir.join(data_path(0));
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    assert!(error_of(read(&dir)).contains("file-000.parquet"));

    // No info.json: the export never finished.
    std::fs::remove_file(dir.join(INFO_PATH)).unwrap();
    assert!(error_of(read(&dir)).contains("cut short"));
    std::fs::remove_dir_all(&dir).unwrap();
}
