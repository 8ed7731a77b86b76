//! Training rows for parallel decoding ([`crate::decode`]): a sample's sub-task cut after
//! one of its blocks, the block's tokens partly replaced by `<mask>`.
//!
//! Decoding fills a block from `<mask>` tokens in a few passes, the block seeing itself
//! both ways and the committed words before it causally, and reads token `i` from the
//! hidden state of position `i − 1` (the last committed word for the block's first). A
//! training row is that state at a random point: the clean words before the block, then
//! the block with a random number of its positions masked; the masked ones are learnt.
//! Past `</sub>` a block holds `</sub>` again, which decoding cuts at the first.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::ids;

/// How `loho train` trains parallel decoding beside the usual losses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parallel {
    /// Tokens per block (the checkpoint's `head.block`).
    pub block: usize,
    /// Weight of learning the [`TrainConfig::teacher`](super::TrainConfig)'s next-word
    /// distributions at the masked tokens (KL from them); 0 learns the data's words alone.
    pub distill: f64,
}

/// One block of a sample as a training row sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Block {
    /// Words before the block (committed, clean).
    pub(super) start: usize,
    /// The block's input: its words, or `mask` where `masked`.
    pub(super) input: Vec<u32>,
    pub(super) masked: Vec<bool>,
    /// The block's words (`</sub>` and after it, `</sub>`).
    pub(super) target: Vec<u32>,
}

/// A block of `sub` (`<sub>`, words, `</sub>`, maybe `<act>`) drawn by `seed`: which block
/// of `block` tokens (blocks cover the words and `</sub>`, within `max_words`, as decoding
/// does), and how many of its tokens are masked (1 to all, uniformly), which at random.
pub(super) fn draw(sub: &[u32], block: usize, max_words: usize, mask: u32, seed: u64) -> Block {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words = sub
        .iter()
        .position(|&t| t == ids::END_SUB)
        .unwrap_or(sub.len())
        - 1;
    let block = block.max(1);
    let span = (words + 1).min(max_words).max(1);
    let start = rng.gen_range(0..span.div_ceil(block)) * block;
    let k = block.min(max_words.max(start + 1) - start);
    let target: Vec<u32> = (start..start + k)
        .map(|j| if j < words { sub[1 + j] } else { ids::END_SUB })
        .collect();
    let m = rng.gen_range(1..=k);
    let mut order: Vec<usize> = (0..k).collect();
    order.shuffle(&mut rng);
    let mut masked = vec![false; k];
    order[..m].iter().for_each(|&i| masked[i] = true);
    let input = target
        .iter()
        .zip(&masked)
        .map(|(&t, &m)| if m { mask } else { t })
        .collect();
    Block {
        start,
        input,
        masked,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_words_and_end_and_mask_at_least_one_token() {
        // <sub> a b c d e </sub> <act>, blocks of 4: the block at 0 (a b c d) or at 4
        // (e </sub> </sub> </sub>).
        let (a, mask) = (10, 99);
        let sub = [
            ids::SUB,
            a,
            a + 1,
            a + 2,
            a + 3,
            a + 4,
            ids::END_SUB,
            ids::ACT,
        ];
        let mut starts = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let b = draw(&sub, 4, 21, mask, seed);
            starts.insert(b.start);
            let want: Vec<u32> = match b.start {
                0 => vec![a, a + 1, a + 2, a + 3],
                4 => vec![a + 4, ids::END_SUB, ids::END_SUB, ids::END_SUB],
                s => panic!("block at {s}"),
            };
            assert_eq!(b.target, want);
            assert!(b.masked.iter().any(|&m| m));
            for ((&input, &masked), &word) in b.input.iter().zip(&b.masked).zip(&want) {
                assert_eq!(input, if masked { mask } else { word });
            }
        }
        assert_eq!(starts.into_iter().collect::<Vec<_>>(), [0, 4]);
        // Blocks stop at the words' limit: with 5 words allowed the last block is 1 long.
        for seed in 0..50 {
            let b = draw(&sub, 4, 5, mask, seed);
            assert_eq!(b.target.len(), if b.start == 4 { 1 } else { 4 });
        }
    }
}
