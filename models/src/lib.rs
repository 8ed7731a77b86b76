//! The LoHoVLA-style model of loho, in candle (DESIGN §6). No zenoh, no simulator.
//!
//! Built so far:
//! - [`vocab`]: the word-level vocabulary as a Hugging Face `tokenizer.json`;
//! - [`backbone`]: the pre-norm decoder-only transformer with its KV cache.
//!
//! Still to come (issue 3): the RGB-D stem, the language and action heads, generation,
//! training and checkpoints.

pub mod backbone;
pub mod vocab;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
