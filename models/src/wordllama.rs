//! The one-time conversion of an open vocabulary from PyPI's `wordllama` (MIT): its
//! Llama-2 BPE tokenizer (32 000 pieces, byte fallback, so no text is ever `<unk>`) and
//! its pretrained table of piece embeddings (`embedding.weight`, F16, 32 000 × 256),
//! into a vocabulary folder `loho train --vocab DIR` starts a model from (docs/model.md,
//! "Open vocabulary").
//!
//! The folder's ids put loho's specials and `<mask>` first ([`crate::vocab::OWN`] ids,
//! rows of the model's own), then Llama's pieces in their order, less its three specials
//! (`<unk>` is loho's). Text is lowercased first, as loho's word-level vocabularies do.
//! The table's rows follow the new ids; the own rows are zero.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::vocab::{MASK, OWN, SPECIALS, UNK};
use crate::words::{PIECES, TABLE};
use crate::ModelError;

/// Llama-2's own specials, whose roles loho's specials take.
const LLAMA_SPECIALS: [&str; 3] = ["<unk>", "<s>", "</s>"];

fn err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(format!("{}: {e}", path.display()))
}

/// Converts wordllama's `tokenizers/l2_supercat_tokenizer_config.json` and
/// `weights/l2_supercat_256.safetensors` (unzipped from its wheel) into `out`:
/// `tokenizer.json` and [`PIECES`]. Returns the vocabulary's size and the table's width.
pub fn import(tokenizer: &Path, table: &Path, out: &Path) -> Result<(usize, usize), ModelError> {
    let text = std::fs::read_to_string(tokenizer).map_err(|e| err(tokenizer, e))?;
    let mut tok: Value = serde_json::from_str(&text).map_err(|e| err(tokenizer, e))?;
    let vocab = tok["model"]["vocab"]
        .as_object()
        .filter(|_| tok["model"]["type"] == "BPE")
        .ok_or_else(|| err(tokenizer, "not a BPE tokenizer with a vocab"))?
        .clone();
    // Llama's id → loho's: pieces keep their order after loho's own ids.
    let mut remap: HashMap<usize, usize> = HashMap::new();
    let mut new_vocab = serde_json::Map::new();
    for (i, s) in SPECIALS.iter().chain([&MASK]).enumerate() {
        new_vocab.insert(s.to_string(), json!(i));
    }
    let mut pieces: Vec<(&String, usize)> = vocab
        .iter()
        .filter(|(p, _)| !LLAMA_SPECIALS.contains(&p.as_str()))
        .map(|(p, id)| {
            Ok((
                p,
                id.as_u64().ok_or_else(|| err(tokenizer, "bad id"))? as usize,
            ))
        })
        .collect::<Result<_, ModelError>>()?;
    pieces.sort_by_key(|p| p.1);
    for (p, old) in pieces {
        let new = OWN + remap.len();
        if new_vocab.insert(p.clone(), json!(new)).is_some() {
            return Err(err(
                tokenizer,
                format!("piece {p:?} clashes with a special"),
            ));
        }
        remap.insert(old, new);
    }
    let size = OWN + remap.len();
    tok["model"]["vocab"] = Value::Object(new_vocab);
    tok["model"]["unk_token"] = json!(UNK);
    tok["added_tokens"] = json!([]);
    tok["post_processor"] = Value::Null;
    // Lowercase first, as the word-level vocabularies do: "Red" is "red".
    let norm = tok["normalizer"].take();
    tok["normalizer"] = json!({"type": "Sequence", "normalizers": [{"type": "Lowercase"}, norm]});

    let tensors = candle_core::safetensors::load(table, &Device::Cpu).map_err(|e| err(table, e))?;
    let w = tensors
        .get(TABLE)
        .ok_or_else(|| err(table, format!("no tensor {TABLE}")))?
        .to_dtype(DType::F32)?;
    let (rows, dim) = w.dims2()?;
    let mut index = vec![0u32; size];
    let mut keep = vec![0f32; size];
    for (&old, &new) in &remap {
        if old >= rows {
            return Err(err(
                table,
                format!("{rows} rows, but the tokenizer has id {old}"),
            ));
        }
        index[new] = old as u32;
        keep[new] = 1.0;
    }
    let index = Tensor::from_vec(index, size, &Device::Cpu)?;
    let keep = Tensor::from_vec(keep, (size, 1), &Device::Cpu)?;
    let table_out = w.index_select(&index, 0)?.broadcast_mul(&keep)?;

    std::fs::create_dir_all(out).map_err(|e| err(out, e))?;
    let tok_path = out.join(crate::checkpoint::TOKENIZER);
    let text = serde_json::to_string(&tok).map_err(|e| err(&tok_path, e))?;
    std::fs::write(&tok_path, text + "\n").map_err(|e| err(&tok_path, e))?;
    let pieces_path = out.join(PIECES);
    candle_core::safetensors::save(
        &HashMap::from([(TABLE.to_string(), table_out.to_dtype(DType::F16)?)]),
        &pieces_path,
    )
    .map_err(|e| err(&pieces_path, e))?;
    Ok((size, dim))
}

/// The width of the piece table in the vocabulary folder `dir`.
pub fn table_width(dir: &Path) -> Result<usize, ModelError> {
    let path = dir.join(PIECES);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
        err(
            &path,
            format!("{e} (made by `loho vocab import`, docs/model.md)"),
        )
    })?;
    let t = tensors
        .get(TABLE)
        .ok_or_else(|| err(&path, format!("no tensor {TABLE}")))?;
    Ok(t.dims2()?.1)
}
