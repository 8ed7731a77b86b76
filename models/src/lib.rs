//! The LoHoVLA-style model of loho, in candle (docs/model.md). No simulator; of the runtime
//! it uses only the [`Policy`](loho_core::policy::Policy) trait it implements
//! ([`ModelPolicy`]).
//!
//! Main types: [`Loho`] (the network, candle-transformers style), [`Vla`] (one decision
//! on a frame), [`ModelPolicy`] (the closed loop as a runtime policy), [`Config`].
//!
//! - [`vocab`]: the vocabulary as a Hugging Face `tokenizer.json`: word-level, or open
//!   (word pieces, converted once from PyPI's wordllama by [`wordllama`]);
//! - [`words`]: word embeddings (learned, or projected from the pretrained pieces) and
//!   the tied language head;
//! - [`segment`]: the RGB-D heightmap's regions (objects), measured;
//! - [`stem`]: one token per region, with its position;
//! - [`backbone`]: the pre-norm transformer (bidirectional prefix, causal sub-task) with
//!   its KV cache;
//! - [`ops`]: fused CPU kernels with a backward (norm, attention, linear, …) the
//!   network is built from;
//! - [`pointer`]: attention from `<act>` to the objects, feeding the action head;
//! - [`anchor`]: the picked objects' centroid and yaw, that keyposes are relative to;
//! - [`head`]: the flow-matching action head; [`keypose`]: its normalised outputs;
//! - [`model`]: all of it in one sequence layout, with the tied language head;
//! - [`decode`]: writing the sub-task, a token per pass or blocks in parallel;
//! - [`vla`]: one decision (sub-task text, keyposes, timings) on a frame;
//! - [`policy`]: the model in LoHoVLA's closed loop, as a runtime policy;
//! - [`device`]: the CPU or a GPU (`cuda` feature);
//! - [`checkpoint`]: the checkpoint folder; [`data`] and [`train`]: demonstrations and
//!   training; [`lerobot`]: demonstrations as a LeRobotDataset.

pub mod anchor;
pub mod backbone;
pub mod checkpoint;
pub mod data;
pub mod decode;
pub mod device;
pub mod head;
pub mod keypose;
pub mod lerobot;
pub mod model;
pub mod ops;
pub mod pointer;
pub mod policy;
pub mod segment;
pub mod stem;
pub mod train;
pub mod vla;
pub mod vocab;
pub mod wordllama;
pub mod words;

use std::path::PathBuf;

use rand::Rng;
use thiserror::Error;

pub use candle_core::Device;
pub use device::DeviceSpec;
pub use keypose::Keypose;
pub use model::{Config, Loho};
pub use policy::{default_checkpoint, ModelPolicy};
pub use vla::Vla;

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
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    #[error("data: {0}")]
    Data(String),
    #[error("{0}")]
    Device(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `f` of each item, in order, the items split evenly over `threads` threads.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads.max(1)).max(1))
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("a par_map thread panicked"))
            .collect()
    })
}

/// Every core this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A standard normal draw (Box–Muller), for noise that must follow a seed.
pub(crate) fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Largest absolute difference between two tensors of one shape (for tests).
#[cfg(test)]
pub(crate) fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}
