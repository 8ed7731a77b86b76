//! A checkpoint is a folder: `config.json`, `model.safetensors`, `tokenizer.json`. An
//! open vocabulary's frozen pretrained table is in `model.safetensors` too, kept at F16
//! (16 MB instead of 33), as it was converted; loading widens it to f32.
//!
//! Loading checks what a half-written or mismatched folder would break: the vocabulary
//! must have the size the config says, and a missing or mis-shaped tensor is an error
//! that names it (candle's own messages do). Saving writes each file under a temporary
//! name and renames it, so a kill mid-save never leaves a torn checkpoint behind.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::{VarBuilder, VarMap};

use crate::model::{Config, Loho, DTYPE};
use crate::vocab::Vocab;
use crate::ModelError;

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const TOKENIZER: &str = "tokenizer.json";

fn err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

pub fn read_config(dir: &Path) -> Result<Config, ModelError> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e))?;
    serde_json::from_str(&text).map_err(|e| err(&path, e))
}

/// The model and its vocabulary from a checkpoint folder.
pub fn load(dir: &Path, device: &Device) -> Result<(Loho, Vocab), ModelError> {
    let cfg = read_config(dir)?;
    let vocab = Vocab::load(&dir.join(TOKENIZER))?;
    if vocab.len() != cfg.vocab_size {
        return Err(err(
            &dir.join(TOKENIZER),
            format!(
                "{} words, but config.json says {}",
                vocab.len(),
                cfg.vocab_size
            ),
        ));
    }
    crate::decode::mode(&cfg.head, cfg.head.decoding, &vocab)
        .map_err(|e| err(&dir.join(CONFIG), e))?;
    let weights = dir.join(WEIGHTS);
    if !weights.is_file() {
        return Err(err(&weights, "no such file"));
    }
    // SAFETY: the file is mapped read-only; like every safetensors reader we assume
    // nobody truncates it while it is open (saves go through a rename).
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DTYPE, device) }
        .map_err(|e| err(&weights, e))?;
    let model = Loho::new(&cfg, vb).map_err(|e| err(&weights, e))?;
    Ok((model, vocab))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let tmp = tmp_path(path);
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Saves a checkpoint folder (created if needed): weights, config and vocabulary.
pub fn save(dir: &Path, cfg: &Config, vocab: &Vocab, weights: &VarMap) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    write_atomic(&dir.join(WEIGHTS), |p| save_weights(weights, p))?;
    write_atomic(&dir.join(TOKENIZER), |p| vocab.save(p))?;
    write_atomic(&dir.join(CONFIG), |p| {
        let text = serde_json::to_string_pretty(cfg).map_err(|e| err(p, e))?;
        std::fs::write(p, text + "\n").map_err(|e| err(p, e))
    })
}

/// Whether a weight is a frozen table kept at F16 ([`crate::words`]).
pub fn frozen(name: &str) -> bool {
    name.ends_with(crate::words::TABLE)
}

/// Writes every variable of `weights` to `path`, [`frozen`] tables at F16.
pub fn save_weights(weights: &VarMap, path: &Path) -> Result<(), ModelError> {
    let data = weights.data().lock().expect("var map lock");
    let mut out = std::collections::HashMap::new();
    for (name, var) in data.iter() {
        let t = var.as_tensor();
        let t = match frozen(name) {
            true => t.to_dtype(candle_core::DType::F16)?,
            false => t.clone(),
        };
        out.insert(name.clone(), t);
    }
    candle_core::safetensors::save(&out, path).map_err(|e| err(path, e))
}

/// Sets every variable of `weights` from `path` (as [`save_weights`] wrote it).
pub fn load_weights(weights: &VarMap, path: &Path) -> Result<(), ModelError> {
    let saved = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| err(path, e))?;
    for (name, var) in weights.data().lock().expect("var map lock").iter() {
        let t = saved
            .get(name)
            .ok_or_else(|| err(path, format!("no tensor {name}")))?;
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)
            .map_err(|e| err(path, format!("{name}: {e}")))?;
    }
    Ok(())
}
