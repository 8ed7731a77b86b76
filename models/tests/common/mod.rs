//! What the model's integration tests share: a small model, frames, a dataset, and
//! checkpoints on disk.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use loho_models::checkpoint;
use loho_models::data::{Dataset, Sample, Writer};
use loho_models::model::DTYPE;
use loho_models::train::TrainConfig;
use loho_models::vocab::Vocab;
use loho_models::{Config, Keypose, Loho};

pub const ROWS: usize = 320;
pub const COLS: usize = 160;

pub fn texts() -> Vec<&'static str> {
    vec![
        "put the blocks in the bowls with matching colors.",
        "pick up the red block and place it on the blue bowl.",
        "pick up the green block and place it on the red bowl.",
        "done placing blocks in bowls.",
    ]
}

/// The shipped shape, narrowed so tests run in seconds.
pub fn small_config(vocab: usize) -> Config {
    let mut c = Config::tiny(vocab);
    c.backbone.d_model = 32;
    c.backbone.n_layers = 2;
    c.backbone.n_heads = 2;
    c.backbone.d_ff = 64;
    c.stem.hidden = 8;
    c.head.hidden = 32;
    c.head.blocks = 1;
    c
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loho-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A frame with a coloured 4 cm square at (row, col).
pub fn frame(row: usize, col: usize, rgb: [u8; 3]) -> (Vec<u8>, Vec<f32>) {
    let mut c = vec![51u8; ROWS * COLS * 3];
    let mut h = vec![0f32; ROWS * COLS];
    for r in row..(row + 13).min(ROWS) {
        for k in col..(col + 13).min(COLS) {
            c[(r * COLS + k) * 3..][..3].copy_from_slice(&rgb);
            h[r * COLS + k] = 0.04;
        }
    }
    (c, h)
}

/// A fresh model with its weights, on the small config.
pub fn fresh() -> (Loho, Vocab, VarMap) {
    let vocab = Vocab::build(texts()).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DTYPE, &Device::Cpu);
    let model = Loho::new(&small_config(vocab.len()), vb).unwrap();
    (model, vocab, vm)
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

pub fn save(vm: &VarMap, m: &Loho, vocab: &Vocab, dir: &Path) {
    checkpoint::save(dir, m.config(), vocab, vm).unwrap();
}

/// 32 samples of one red or green block each, picked and placed on a bowl.
pub fn blocks(dir: &Path) -> Dataset {
    let mut w = Writer::create(dir).unwrap();
    let colors = [("red", [255, 87, 89]), ("green", [89, 169, 78])];
    for i in 0..32 {
        let (name, rgb) = colors[i % 2];
        let (row, col) = (20 + (i * 37) % 280, 10 + (i * 53) % 130);
        let (c, h) = frame(row, col, rgb);
        let x = 0.25 + (col as f64 + 6.5) * 0.003125;
        let y = -0.5 + (row as f64 + 6.5) * 0.003125;
        let k = |z, suction| Keypose {
            x,
            y,
            z,
            yaw: 0.0,
            suction,
        };
        let s = Sample {
            task: "B".into(),
            seed: i as u64,
            step: 0,
            instruction: texts()[0].into(),
            subtask: format!("pick up the {name} block and place it on the blue bowl."),
            keyposes: vec![k(0.04, true), k(0.1, false)],
            frame: String::new(),
            alternatives: vec![],
            state: None,
        };
        w.add(s, ROWS, COLS, &c, &h).unwrap();
    }
    drop(w);
    Dataset::open(dir).unwrap()
}

/// A checkpoint of the fresh model that samples rewrites, and a copy of it named `name`
/// whose config.json `edit` changes.
pub fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> (PathBuf, PathBuf) {
    let (m, vocab, vm) = fresh();
    let (dir, copy) = (tmp(&format!("{name}-base")), tmp(name));
    save(&vm, &m, &vocab, &dir);
    let config = |dir: &Path, edit: &mut dyn FnMut(&mut serde_json::Value)| {
        let path = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut cfg);
        std::fs::write(&path, cfg.to_string()).unwrap();
    };
    config(&dir, &mut |c| c["replan_temperature"] = 1.0.into());
    save(&vm, &m, &vocab, &copy);
    std::fs::copy(dir.join("config.json"), copy.join("config.json")).unwrap();
    let mut edit = Some(edit);
    config(&copy, &mut |c| (edit.take().unwrap())(c));
    (dir, copy)
}

/// 200 steps of batch 8 that learn [`blocks`] in seconds.
pub fn short_run() -> TrainConfig {
    TrainConfig {
        steps: 200,
        batch: 8,
        lr: 3e-3,
        min_lr: 3e-4,
        warmup: 20,
        obs_noise: false,
        ..Default::default()
    }
}
