//! Writing the sub-task text after the frame: one token per forward pass (`ar`), or blocks
//! of tokens filled in together over a few passes (`parallel`, discrete diffusion forcing).
//!
//! Both share the KV cache of the instruction, the objects and `<sub>`. A token is read
//! from the hidden state one position before it, as in autoregressive decoding: a block's
//! first token from the last committed word, its others from the block itself, whose
//! tokens (`<mask>` until fixed) see each other both ways and every cached token. Each pass
//! fixes the most confident of the open positions — a share so that the last of
//! `refine_steps` passes fixes the rest, and any the model is `confidence` sure of — and
//! its block is rolled back from the cache. The fixed words go in causally,
//! up to a `</sub>`, in front of the next pass: the cache holds what autoregressive
//! decoding of the same words would hold, which is what training's rows see
//! (`train::parallel`). Blocks of one token are autoregressive decoding
//! exactly. docs/model.md draws the blocks.

use candle_core::{Result, Tensor};

use crate::head::{Decoding, HeadConfig};
use crate::model::{ids, Loho};
use crate::vocab::{Vocab, MASK};

/// How to write the sub-task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Ar,
    /// Blocks of `block` tokens, each filled in at most `steps` passes from `mask`
    /// tokens, a pass fixing its share and every token of at least `confidence`.
    Parallel {
        block: usize,
        steps: usize,
        confidence: f32,
        mask: u32,
    },
}

/// The decoding mode of `decoding` with the model's block settings, or why it cannot run.
pub fn mode(
    head: &HeadConfig,
    decoding: Decoding,
    vocab: &Vocab,
) -> std::result::Result<Mode, String> {
    head.check_decoding()?;
    match (decoding, vocab.id(MASK)) {
        (Decoding::Ar, _) => Ok(Mode::Ar),
        (Decoding::Parallel, mask) if head.block == 1 || mask.is_some() => Ok(Mode::Parallel {
            block: head.block,
            steps: head.refine_steps,
            confidence: head.confidence,
            mask: mask.unwrap_or(ids::PAD),
        }),
        (Decoding::Parallel, _) => Err(format!(
            "parallel decoding in blocks of {} needs a {MASK} token, which this vocabulary \
             lacks: use a checkpoint trained for it, or head.decoding \"ar\" (--decoding ar)",
            head.block
        )),
    }
}

/// The words written (without `</sub>`) and the forward passes it took. The last
/// `unfed` words are not in the cache yet: the caller feeds them with what follows
/// (`</sub> <act>`), or not at all when nothing follows ("done").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub words: Vec<u32>,
    pub unfed: usize,
    pub passes: usize,
}

/// A logit index (the model's [`Loho::word`]) for each row of logits, with the
/// probability the model gave it.
pub type Pick<'a> = dyn FnMut(&Tensor) -> Result<(u32, f32)> + 'a;

/// Writes at most `max_words` words after the cache, `last` being the hidden state (1, d)
/// of its last token; `pick` chooses each word from its logits (greedy or sampled).
///
/// A block's words, once fixed, go into the cache causally with the next block's first
/// pass (the same keys and values as fed one at a time): a block costs its `steps`
/// passes, and autoregressive decoding one pass per word after the first.
pub fn write(
    model: &mut Loho,
    last: Tensor,
    max_words: usize,
    mode: Mode,
    pick: &mut Pick,
) -> Result<Written> {
    let (block, steps, confidence, mask) = match mode {
        Mode::Ar => (1, 1, 1.0, ids::PAD),
        Mode::Parallel {
            block,
            steps,
            confidence,
            mask,
        } => (block.max(1), steps.clamp(1, block.max(1)), confidence, mask),
    };
    let mut out = Written {
        words: vec![],
        unfed: 0,
        passes: 0,
    };
    let mut h = last;
    while out.words.len() < max_words {
        let k = block.min(max_words - out.words.len());
        let steps = steps.min(k);
        let mut toks = vec![mask; k];
        let mut open: Vec<usize> = (0..k).collect();
        let mut step = 0;
        while !open.is_empty() {
            // The rows that predict positions 0..k: the last committed word's, then the
            // block's own (a block of one needs none of its own).
            let pending = out.words.len() - out.unfed..out.words.len();
            let trial = if k > 1 { &toks[..] } else { &[] };
            let mut rows = h.clone();
            if !pending.is_empty() || !trial.is_empty() {
                let base = model.cached();
                let hs = model.feed_block(&out.words[pending.clone()], trial)?;
                out.passes += 1;
                model.rewind(base + pending.len())?;
                out.unfed = 0;
                if !pending.is_empty() {
                    h = hs.narrow(0, pending.len() - 1, 1)?;
                }
                if trial.len() > 1 {
                    let own = hs.narrow(0, pending.len(), trial.len() - 1)?;
                    rows = Tensor::cat(&[&h, &own], 0)?;
                } else {
                    rows = h.clone();
                }
            }
            let logits = model.logits(&rows)?;
            let mut chosen = open
                .iter()
                .map(|&i| {
                    let (j, p) = pick(&logits.get(i)?)?;
                    Ok((i, (model.word(j), p)))
                })
                .collect::<Result<Vec<_>>>()?;
            // Most confident first; ties go left to right.
            chosen.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1).then(a.0.cmp(&b.0)));
            let share = open.len().div_ceil(steps - step);
            let sure = chosen.iter().take_while(|c| c.1 .1 >= confidence).count();
            let n = share.max(sure);
            for &(i, (t, _)) in &chosen[..n] {
                toks[i] = t;
            }
            open.retain(|i| !chosen[..n].iter().any(|c| c.0 == *i));
            step += 1;
        }
        let end = toks.iter().position(|&t| t == ids::END_SUB);
        let keep = end.unwrap_or(k);
        out.words.extend_from_slice(&toks[..keep]);
        out.unfed = keep;
        if end.is_some() {
            break;
        }
    }
    Ok(out)
}
