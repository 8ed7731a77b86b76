//! The LoHoVLA-style model of loho, in candle (DESIGN §6). No zenoh, no simulator.
//!
//! Built so far:
//! - [`vocab`]: the word-level vocabulary as a Hugging Face `tokenizer.json`;
//! - [`stem`]: the RGB-D heightmap to image tokens with 2-D positions;
//! - [`backbone`]: the pre-norm decoder-only transformer with its KV cache.
//!
//! Still to come (issue 3): the language and action heads, generation, training and
//! checkpoints.

pub mod backbone;
pub mod stem;
pub mod vocab;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("frame must be {}×{} (rows × columns): got {rgb} colour bytes and {height} heights", expected.0, expected.1)]
    FrameSize {
        expected: (usize, usize),
        rgb: usize,
        height: usize,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
