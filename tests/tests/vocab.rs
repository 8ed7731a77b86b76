//! The open vocabulary (models/vocab/wordllama) on the simulator's own texts: no
//! instruction or "done" sentence of tasks A–K or of the families, on any split, has an
//! `<unk>` piece, and each comes back from its pieces as it was written.

use std::path::Path;

use loho_models::vocab::{Vocab, UNK};
use loho_sim::{tasks, Split, ALL_TASKS, FAMILIES};

#[test]
fn every_task_text_is_known_pieces() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/vocab/wordllama/tokenizer.json");
    let v = Vocab::load(&path).unwrap();
    let unk = v.id(UNK).unwrap();
    let mut texts = 0;
    for task in ALL_TASKS.into_iter().chain(FAMILIES) {
        for split in [Split::Train, Split::Val, Split::Test] {
            for seed in 0..20 {
                let e = tasks::generate(task, split, seed).unwrap();
                for text in [&e.instruction, &e.completed] {
                    let ids = v.encode(text).unwrap();
                    assert!(!ids.contains(&unk), "{task:?} {text:?}");
                    assert_eq!(&v.decode(&ids), text);
                    texts += 1;
                }
            }
        }
    }
    assert_eq!(texts, (ALL_TASKS.len() + FAMILIES.len()) * 3 * 20 * 2);
}
