//! The vocabulary, kept as a Hugging Face `tokenizer.json` and read with the `tokenizers`
//! crate, so the checkpoint's tokenizer opens in any HF tooling. Two kinds:
//!
//! - **word-level** ([`Vocab::build`]): one token per lowercase word or punctuation mark of
//!   the training texts — short sequences, but a word training never saw is `<unk>`;
//! - **open** (converted once from wordllama, [`crate::wordllama`]): Llama-2's 32 000 BPE
//!   pieces with byte fallback, lowercased, under which no text is `<unk>`; its specials
//!   and `<mask>` are the first [`OWN`] ids.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::utils::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{ModelWrapper, Tokenizer};

use crate::ModelError;

pub const PAD: &str = "<pad>";
pub const UNK: &str = "<unk>";
pub const BOS: &str = "<bos>";
/// Opens the sub-task text.
pub const SUB: &str = "<sub>";
/// Closes the sub-task text.
pub const END_SUB: &str = "</sub>";
/// Where the action head reads the hidden state.
pub const ACT: &str = "<act>";
/// The blank a block of parallel decoding starts from; only in the vocabularies of
/// checkpoints trained for it.
pub const MASK: &str = "<mask>";
/// Special tokens, with these ids (0..6) in every vocabulary.
pub const SPECIALS: [&str; 6] = [PAD, UNK, BOS, SUB, END_SUB, ACT];
/// In an open vocabulary, the ids below this are the specials and [`MASK`]; pieces follow.
pub const OWN: usize = SPECIALS.len() + 1;

/// A tokenizer, word-level or open.
pub struct Vocab {
    tok: Tokenizer,
}

impl Vocab {
    /// A vocabulary over every word and punctuation mark of `texts`: the specials first,
    /// then the words in sorted order, so the same texts always give the same ids.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, ModelError> {
        let mut words = BTreeSet::new();
        for t in texts {
            words.extend(split_words(t));
        }
        let vocab: HashMap<String, u32> = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(words)
            .enumerate()
            .map(|(i, w)| (w, i as u32))
            .collect();
        Self::of(vocab)
    }

    /// This vocabulary with `token` added as the last id (a no-op if it has it already):
    /// a fine-tune that needs a new token, such as [`MASK`], keeps every old id.
    pub fn with(&self, token: &str) -> Result<Self, ModelError> {
        let mut vocab = self.tok.get_vocab(true);
        if !vocab.contains_key(token) {
            vocab.insert(token.to_string(), vocab.len() as u32);
        }
        Self::of(vocab)
    }

    /// Whether every word of `other` has the same id here.
    pub fn extends(&self, other: &Vocab) -> bool {
        let mine = self.tok.get_vocab(true);
        (other.tok.get_vocab(true).iter()).all(|(w, id)| mine.get(w) == Some(id))
    }

    fn of(vocab: HashMap<String, u32>) -> Result<Self, ModelError> {
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token(UNK.into())
            .build()
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let mut tok = Tokenizer::new(model);
        tok.with_normalizer(Some(Lowercase));
        tok.with_pre_tokenizer(Some(Whitespace {}));
        Ok(Self { tok })
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let tok = Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        let v = Self { tok };
        for (i, s) in SPECIALS.iter().enumerate() {
            if v.id(s) != Some(i as u32) {
                return Err(ModelError::Tokenizer(format!(
                    "{}: special token {s} is not id {i}",
                    path.display()
                )));
            }
        }
        Ok(v)
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.tok
            .save(path, !self.is_open())
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))
    }

    pub fn len(&self) -> usize {
        self.tok.get_vocab_size(true)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is an open vocabulary (word pieces; nothing is `<unk>`).
    pub fn is_open(&self) -> bool {
        !matches!(self.tok.get_model(), ModelWrapper::WordLevel(_))
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.tok.token_to_id(token)
    }

    /// Token ids of `text`; unknown words become `<unk>`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .tok
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of token ids, written the way the tasks write it: words separated by spaces,
    /// punctuation attached to the word before it. Specials are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        if self.is_open() {
            let pieces: Vec<u32> = ids.iter().copied().filter(|&i| i as usize >= OWN).collect();
            return self.tok.decode(&pieces, false).unwrap_or_default();
        }
        let mut out = String::new();
        for &id in ids {
            let Some(w) = self.tok.id_to_token(id) else {
                continue;
            };
            if SPECIALS.contains(&w.as_str()) {
                continue;
            }
            let punct = w.chars().all(|c| c.is_ascii_punctuation());
            if !out.is_empty() && !punct {
                out.push(' ');
            }
            out.push_str(&w);
        }
        out
    }
}

/// Lowercase words and punctuation runs, as the `Whitespace` pre-tokenizer splits them.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_word = false;
    for c in text.to_lowercase().chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let word = c.is_alphanumeric() || c == '_';
        if !cur.is_empty() && word != cur_word {
            out.push(std::mem::take(&mut cur));
        }
        cur_word = word;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        Vocab::build([
            "pick up the red block and place it on the blue bowl.",
            "done placing blocks in bowls.",
        ])
        .unwrap()
    }

    #[test]
    fn texts_round_trip_and_specials_come_first() {
        let v = vocab();
        for (i, s) in SPECIALS.iter().enumerate() {
            assert_eq!(v.id(s), Some(i as u32));
        }
        let text = "pick up the red block and place it on the blue bowl.";
        let ids = v.encode(text).unwrap();
        assert_eq!(ids.len(), 13);
        assert!(!ids.contains(&v.id(UNK).unwrap()));
        assert_eq!(v.decode(&ids), text);
    }

    #[test]
    fn unknown_words_become_unk() {
        let v = vocab();
        let ids = v.encode("pick up the golden teapot.").unwrap();
        let unk = v.id(UNK).unwrap();
        assert_eq!(ids.iter().filter(|&&i| i == unk).count(), 2);
        assert_eq!(v.decode(&ids), "pick up the.");
    }

    #[test]
    fn an_added_token_takes_the_next_id_and_keeps_the_others() {
        let v = vocab();
        let w = v.with(MASK).unwrap();
        assert_eq!(w.id(MASK), Some(v.len() as u32));
        assert_eq!(w.len(), v.len() + 1);
        let text = "pick up the red block.";
        assert_eq!(v.encode(text).unwrap(), w.encode(text).unwrap());
        // Typed text cannot produce it: the pre-tokenizer splits the brackets off.
        assert!(!w.encode("<mask>").unwrap().contains(&(v.len() as u32)));
        assert_eq!(w.with(MASK).unwrap().len(), w.len());
        assert!(w.extends(&v) && !v.extends(&w));
    }

    #[test]
    fn save_then_load_gives_the_same_ids() {
        let v = vocab();
        let path = std::env::temp_dir().join(format!("loho-vocab-{}.json", std::process::id()));
        v.save(&path).unwrap();
        let w = Vocab::load(&path).unwrap();
        let text = "done placing blocks in bowls.";
        assert_eq!(v.encode(text).unwrap(), w.encode(text).unwrap());
        assert_eq!(v.len(), w.len());
        std::fs::write(&path, "{ not json").unwrap();
        assert!(Vocab::load(&path).is_err());
    }
}
