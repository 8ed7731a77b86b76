//! Word embeddings and the tied language head that shares them.
//!
//! A word-level vocabulary learns one row per word ([`Words::Learned`]). An open
//! vocabulary (docs/model.md, "Open vocabulary") has 32 000 word pieces, most of which
//! no training text holds: a row learned per piece would stay where it was drawn. So a
//! piece's embedding is its row of a frozen pretrained table (wordllama's, 256 wide)
//! through one learned projection to the model's width, and the specials and `<mask>`
//! ([`OWN`] ids) have learned rows of their own: a piece training never showed still
//! lands where the pretrained table put it, beside the pieces of words that mean the same.
//!
//! The head scores a short list of pieces, not all 32 000 (a row each per written token
//! would cost ~1 ms here, more than the rest of a decision): the pieces training's texts
//! and colour names hold ([`PiecesConfig::writes`]), the only ones training taught it
//! when to write and when not. (Scoring the instruction's pieces too let a model trained
//! on A–E write H's "starting" fifteen times over: a row never trained as an output can
//! win anywhere.)

use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::backbone::embedding;
use crate::vocab::{Vocab, OWN};
use crate::ModelError;

/// The piece table's file in a vocabulary folder (`loho vocab import`).
pub const PIECES: &str = "pieces.safetensors";
/// The tensor name of the piece table, in [`PIECES`] and (under `embed.`) in a
/// checkpoint's weights.
pub const TABLE: &str = "embedding.weight";

/// An open vocabulary's embeddings, in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiecesConfig {
    /// Width of the pretrained table.
    pub dim: usize,
    /// The ids the language head scores, ascending: every piece of the training data's
    /// sub-tasks, instructions and colour names, and
    /// the own ids.
    pub writes: Vec<u32>,
}

#[derive(Clone)]
pub enum Words {
    /// One learned row per word; the head scores every word.
    Learned(Embedding),
    Pieces(Pieces),
}

#[derive(Clone)]
pub struct Pieces {
    /// The frozen pretrained table (vocabulary × dim); own ids' rows are zero.
    table: Tensor,
    proj: Linear,
    /// Rows of the own ids (the variable itself: a copy made here would miss every
    /// update training makes).
    own: Tensor,
    /// The ids the head scores, ascending, and (once an episode started) their
    /// embeddings, computed once per episode rather than once per written token.
    out: Vec<u32>,
    out_rows: Option<Tensor>,
    /// The same rows transposed (d, n) and contiguous: a written token's logits are one
    /// product with it.
    out_t: Option<Tensor>,
}

impl Words {
    /// `pieces`: an open vocabulary's (the table is read as `embed.embedding.weight`).
    pub fn new(
        vocab: usize,
        d: usize,
        pieces: Option<&PiecesConfig>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let Some(p) = pieces else {
            return Ok(Self::Learned(embedding(vocab, d, vb)?));
        };
        if p.writes.iter().any(|&w| w as usize >= vocab) || !p.writes.is_sorted() {
            candle_core::bail!("pieces.writes must be ascending ids below {vocab}");
        }
        // Zeros where a run draws its weights: training sets the table from the
        // vocabulary folder, a checkpoint loads it.
        let table = vb
            .get_with_hints((vocab, p.dim), TABLE, candle_nn::Init::Const(0.0))?
            .detach();
        let own = embedding(OWN, d, vb.pp("own"))?.embeddings().clone();
        let proj = candle_nn::linear_no_bias(p.dim, d, vb.pp("proj"))?;
        Ok(Self::Pieces(Pieces {
            table,
            proj,
            own,
            out: p.writes.clone(),
            out_rows: None,
            out_t: None,
        }))
    }

    /// Embeddings (…, d) of ids (…).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Self::Learned(e) => e.forward(ids),
            Self::Pieces(p) => {
                let shape = ids.dims().to_vec();
                let flat = ids.flatten_all()?;
                // What the model wrote is in the episode's head rows already.
                let listed = p.out_rows.as_ref().and_then(|rows| {
                    let ids: Vec<u32> = flat.to_vec1().ok()?;
                    let at: Option<Vec<u32>> = ids
                        .iter()
                        .map(|id| p.out.binary_search(id).ok().map(|i| i as u32))
                        .collect();
                    Some((rows, at?))
                });
                let x = match listed {
                    Some((rows, at)) => {
                        rows.index_select(&Tensor::new(at.as_slice(), rows.device())?, 0)?
                    }
                    None => p.rows(&flat)?,
                };
                let mut shape = shape;
                shape.push(x.dim(1)?);
                x.reshape(shape)
            }
        }
    }

    /// Logits (…, n) of hidden states (…, d) over the words the head scores; index i
    /// is word [`Words::word`]`(i)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let rows_t = match self {
            Self::Learned(e) => e.embeddings().t()?,
            Self::Pieces(p) => match &p.out_t {
                Some(t) => t.clone(),
                None => p
                    .rows(&Tensor::new(p.out.as_slice(), p.table.device())?)?
                    .t()?,
            },
        };
        hidden.broadcast_matmul(&rows_t)
    }

    /// The word of logit index `i`.
    pub fn word(&self, i: u32) -> u32 {
        match self {
            Self::Learned(_) => i,
            Self::Pieces(p) => p.out[i as usize],
        }
    }

    /// The logit index of word `id`, if the head scores it.
    pub fn index(&self, id: u32) -> Option<u32> {
        match self {
            Self::Learned(e) => (id < e.embeddings().dim(0).ok()? as u32).then_some(id),
            Self::Pieces(p) => p.out.binary_search(&id).ok().map(|i| i as u32),
        }
    }

    /// Starts an episode: the head's rows are computed once, from the weights as they
    /// are now (training, which changes them, never starts one).
    pub fn start(&mut self) -> Result<()> {
        let Self::Pieces(p) = self else {
            return Ok(());
        };
        let rows = p.rows(&Tensor::new(p.out.as_slice(), p.table.device())?)?;
        p.out_t = Some(rows.t()?.contiguous()?);
        p.out_rows = Some(rows);
        Ok(())
    }
}

impl Pieces {
    /// Embeddings (n, d) of ids (n): the table's row through the projection, plus the
    /// own row for an own id (a zero row, appended here, for every other).
    fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        let table = self.table.index_select(ids, 0)?;
        let own = Tensor::cat(&[&self.own, &self.own.zeros_like()?.narrow(0, 0, 1)?], 0)?;
        let own_ids = ids.minimum(OWN as u32)?;
        self.proj.forward(&table)? + own.index_select(&own_ids, 0)?
    }
}

/// What a language head trained on `texts` scores ([`PiecesConfig::writes`]): the own
/// ids and every piece of the texts, ascending.
pub fn writes<'a>(
    vocab: &Vocab,
    texts: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<Vec<u32>, ModelError> {
    let mut ids: std::collections::BTreeSet<u32> = (0..OWN as u32).collect();
    for t in texts {
        ids.extend(vocab.encode(t)?);
    }
    Ok(ids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::max_diff;

    /// Open-vocabulary words over a 12-piece table 4 wide, model width 8, the head
    /// writing five of them; their variables in the map.
    fn small() -> (PiecesConfig, VarMap, Words) {
        let cfg = PiecesConfig {
            dim: 4,
            writes: vec![0, 4, 6, 7, 9],
        };
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let words = Words::new(12, 8, Some(&cfg), vb).unwrap();
        (cfg, map, words)
    }

    /// Training updates variables in place: a `Words` must read them when used, or it
    /// trains on its first draw while the saved checkpoint holds the updates.
    #[test]
    fn what_a_variable_holds_now_is_what_the_words_use() {
        let (cfg, map, words) = small();
        let ids = Tensor::new(&[0u32, 4, 6, 7, 9, 11], &Device::Cpu).unwrap();
        let before = words.embed(&ids).unwrap();
        let h = Tensor::randn(0f32, 1.0, (3, 8), &Device::Cpu).unwrap();
        let logits_before = words.logits(&h).unwrap();
        for (_, var) in map.data().lock().unwrap().iter() {
            let bumped = (var.as_tensor() + 1.0).unwrap();
            var.set(&bumped).unwrap();
        }
        // Every id reads the projection, own ids their row too: all of them change.
        let after = words.embed(&ids).unwrap();
        let moved: Vec<f32> = (after - &before)
            .unwrap()
            .abs()
            .unwrap()
            .max(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(moved.iter().all(|&m| m > 0.5), "{moved:?}");
        assert!(max_diff(&words.logits(&h).unwrap(), &logits_before) > 0.5);
        // And a model loaded from those variables is the same model.
        let saved = std::env::temp_dir().join(format!("loho-words-{}.st", std::process::id()));
        map.save(&saved).unwrap();
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&saved], DType::F32, &Device::Cpu).unwrap()
        };
        let loaded = Words::new(12, 8, Some(&cfg), vb).unwrap();
        let same = max_diff(&loaded.embed(&ids).unwrap(), &words.embed(&ids).unwrap());
        assert_eq!(same, 0.0);
        std::fs::remove_file(saved).unwrap();
    }
}
