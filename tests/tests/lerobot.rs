//! LeRobot datasets end to end: the benchmark's oracle demonstrations exported and read
//! back field by field, the parquet schema against `info.json` by LeRobot's rules,
//! `gen-data --format lerobot`, and a `loho run` recording exported.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{loho, tmp_in};

use arrow_schema::{DataType, Field, Fields};
use loho_models::data::{Dataset, Sample};
use loho_models::lerobot::{self, Info};
use loho_models::Keypose;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// A fresh path: whatever an earlier run left there is removed.
fn tmp(name: &str) -> PathBuf {
    let p = tmp_in("lerobot-e2e", name);
    std::fs::remove_dir_all(&p).ok();
    p
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A keypose as it comes back: each number through float32.
fn f32_kp(k: &Keypose) -> Keypose {
    let r = |v: f64| v as f32 as f64;
    Keypose {
        x: r(k.x),
        y: r(k.y),
        z: r(k.z),
        yaw: r(k.yaw),
        suction: k.suction,
    }
}

/// The Arrow type LeRobot (Hugging Face `datasets`) gives a feature, written out from its
/// rules rather than taken from loho: `image` → struct of bytes and path, shape `[1]` →
/// the scalar, `[n]` → a fixed-size list of n.
fn lerobot_type(f: &lerobot::Feature) -> DataType {
    if f.dtype == "image" {
        return DataType::Struct(Fields::from(vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]));
    }
    let scalar = match f.dtype.as_str() {
        "float32" => DataType::Float32,
        "int64" => DataType::Int64,
        "bool" => DataType::Boolean,
        "string" => DataType::Utf8,
        other => panic!("no rule for dtype {other}"),
    };
    match f.shape[..] {
        [1] => scalar,
        [n] => DataType::FixedSizeList(Arc::new(Field::new("item", scalar, true)), n as i32),
        _ => panic!("no rule for shape {:?}", f.shape),
    }
}

/// Oracle demonstrations, two episodes of every task.
fn gen_data(out: &std::path::Path, more: &[&str]) {
    let args = [
        "gen-data",
        "--tasks",
        "all",
        "--episodes",
        "2",
        "--out",
        s(out),
    ];
    loho(&[&args[..], more].concat()).unwrap();
}

#[test]
fn oracle_demonstrations_round_trip_with_the_declared_schema() {
    let (demos, out) = (tmp("demos"), tmp("exported"));
    gen_data(&demos, &[]);
    loho(&["export", "lerobot", "--from", s(&demos), "--out", s(&out)]).unwrap();

    let source = Dataset::open(&demos).unwrap();
    let back = lerobot::read(&out).unwrap();
    assert_eq!(back.len(), source.len());
    for (i, (got, frame)) in back.iter().enumerate() {
        let want = &source.samples[i];
        let want = Sample {
            keyposes: want.keyposes.iter().map(f32_kp).collect(),
            state: want.state.as_ref().map(f32_kp),
            ..want.clone()
        };
        assert!(want.state.is_some(), "gen-data records the arm's state");
        assert_eq!(*got, want, "decision {i}");
        let f = source.frame(i).unwrap();
        assert_eq!((frame.rows, frame.cols), (f.rows, f.cols));
        assert_eq!(frame.rgb, f.rgb, "decision {i}: colour");
        let same = |a: &f32, b: &f32| a == b || (a.is_nan() && b.is_nan());
        assert!(
            frame.height.iter().zip(&f.height).all(|(a, b)| same(a, b)),
            "decision {i}: heights"
        );
    }

    // Every data column is the type info.json's feature has in LeRobot.
    let info: Info =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta/info.json")).unwrap())
            .unwrap();
    assert_eq!(info.codebase_version, "v3.0");
    assert_eq!(info.total_episodes, 22);
    assert_eq!(info.total_frames, source.len());
    let data = std::fs::File::open(out.join("data/chunk-000/file-000.parquet")).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data).unwrap();
    let schema = builder.schema();
    assert_eq!(schema.fields().len(), info.features.len());
    for (name, f) in &info.features {
        let col = schema.field_with_name(name).unwrap();
        assert_eq!(*col.data_type(), lerobot_type(f), "{name}");
    }

    // The tasks file tells pandas its index holds the task strings.
    let tasks = std::fs::File::open(out.join("meta/tasks.parquet")).unwrap();
    let meta = SerializedFileReader::new(tasks).unwrap().metadata().clone();
    let kv = meta.file_metadata().key_value_metadata().unwrap();
    let pandas = kv.iter().find(|kv| kv.key == "pandas").unwrap();
    let pandas: serde_json::Value = serde_json::from_str(pandas.value.as_ref().unwrap()).unwrap();
    assert_eq!(pandas["index_columns"][0], "__index_level_0__");

    // gen-data writes the same dataset directly.
    let direct = tmp("direct");
    gen_data(&direct, &["--format", "lerobot"]);
    let again = lerobot::read(&direct).unwrap();
    assert_eq!(again.len(), back.len());
    for ((a, fa), (b, fb)) in again.iter().zip(&back) {
        assert_eq!(a, b);
        assert_eq!(fa.rgb, fb.rgb);
    }
    for d in [demos, out, direct] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_run_recording_exports_its_decisions() {
    use loho_core::Message;
    let run = tmp("run");
    loho(&[
        "run",
        "--lockstep",
        "--task",
        "B",
        "--episode",
        "1",
        "--out",
        s(&run),
    ])
    .unwrap();
    let mcap_path = run.join("B-test-1.mcap");
    let out = tmp("from-mcap");
    loho(&[
        "export",
        "lerobot",
        "--from",
        s(&mcap_path),
        "--out",
        s(&out),
    ])
    .unwrap();

    let bytes = std::fs::read(&mcap_path).unwrap();
    let chunks: Vec<_> = mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(Result::unwrap)
        .filter(|m| m.channel.topic.ends_with("/policy/action"))
        .map(|m| loho_core::msg::ActionChunk::decode(&m.data).unwrap())
        .collect();
    let back = lerobot::read(&out).unwrap();
    assert!(!chunks.is_empty());
    assert_eq!(back.len(), chunks.len(), "a frame per decision");
    for ((sample, frame), chunk) in back.iter().zip(&chunks) {
        assert_eq!(sample.task, "B");
        assert_eq!(sample.subtask, chunk.subtask);
        assert_eq!(sample.keyposes.len(), chunk.keyposes.len());
        for (k, c) in sample.keyposes.iter().zip(&chunk.keyposes) {
            assert_eq!(k.x, c.pose.position.x as f32 as f64);
            assert_eq!(k.suction, c.gripper > 0.5);
        }
        assert!(sample.state.is_some());
        assert_eq!(frame.rgb.len(), frame.rows * frame.cols * 3);
    }

    // A recording cut short by a kill exports the decisions up to the cut.
    let half = run.join("half.mcap");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let cut = tmp("from-half");
    loho(&["export", "lerobot", "--from", s(&half), "--out", s(&cut)]).unwrap();
    let partial = lerobot::read(&cut).unwrap();
    assert!(!partial.is_empty() && partial.len() < back.len());
    for ((a, _), (b, _)) in partial.iter().zip(&back) {
        assert_eq!(a, b);
    }
    std::fs::remove_dir_all(cut).unwrap();

    // What is neither a dataset nor a recording, and an output folder in use.
    let err = loho(&[
        "export",
        "lerobot",
        "--from",
        s(&run.join("B-test-1.gif")),
        "--out",
        s(&tmp("x")),
    ]);
    assert!(format!("{:#}", err.unwrap_err()).contains("neither a dataset folder"));
    let err = loho(&[
        "export",
        "lerobot",
        "--from",
        s(&mcap_path),
        "--out",
        s(&run),
    ]);
    assert!(format!("{:#}", err.unwrap_err()).contains("not empty"));
    let err = loho(&[
        "gen-data",
        "--format",
        "lerobot",
        "--append",
        "--out",
        s(&tmp("y")),
    ]);
    assert!(format!("{:#}", err.unwrap_err()).contains("--append adds to loho's format only"));
    std::fs::remove_dir_all(run).unwrap();
    std::fs::remove_dir_all(out).unwrap();
}
