//! The open vocabulary (models/vocab/wordllama, docs/model.md): its tokenizer on English
//! it never saw, and a model on its word pieces that trains, saves, resumes and loads,
//! its pretrained table frozen.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::*;
use loho_core::policy::Plan;
use loho_models::train::Trainer;
use loho_models::vocab::{Vocab, MASK, OWN, SPECIALS, UNK};
use loho_models::words::{writes, PiecesConfig, PIECES, TABLE};
use loho_models::{checkpoint, Vla};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vocab/wordllama")
}

fn open() -> Vocab {
    Vocab::load(&folder().join(checkpoint::TOKENIZER)).unwrap()
}

#[test]
fn no_english_word_is_unknown_and_texts_round_trip() {
    let v = open();
    assert!(v.is_open());
    for (i, s) in SPECIALS.iter().chain([&MASK]).enumerate() {
        assert_eq!(v.id(s), Some(i as u32));
    }
    let unk = v.id(UNK).unwrap();
    let words = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/common-words.txt"),
    )
    .unwrap();
    let words: Vec<&str> = words.lines().collect();
    assert_eq!(words.len(), 500);
    for w in words.iter().copied().chain([
        "mismatched",
        "respectively",
        "teal",
        "chartreuse",
        "Ünïcode ✓",
    ]) {
        let ids = v.encode(w).unwrap();
        assert!(!ids.is_empty() && !ids.contains(&unk), "{w:?} → {ids:?}");
        assert!(ids.iter().all(|&i| i as usize >= OWN), "{w:?} → {ids:?}");
        assert_eq!(v.decode(&ids), w.to_lowercase());
    }
    for text in texts().into_iter().chain([
        "stack all the blocks of the same color together, starting with the bigger ones.",
        "move all the blocks in the top left area to the bottom right area.",
    ]) {
        assert_eq!(v.decode(&v.encode(text).unwrap()), text);
    }
    // Case folds, and typed specials stay text.
    assert_eq!(
        v.encode("Pick up the RED block.").unwrap(),
        v.encode("pick up the red block.").unwrap()
    );
    for s in SPECIALS.iter().chain([&MASK]) {
        let id = v.id(s).unwrap();
        assert!(!v.encode(s).unwrap().contains(&id), "{s} typed");
    }
    assert_eq!(v.with(MASK).unwrap().len(), v.len());
}

/// A vocabulary folder with the real tokenizer and a small random table (the converted
/// one is 16 MB and not in git).
fn folder_with_table(dir: &Path, width: usize, vocab: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        folder().join(checkpoint::TOKENIZER),
        dir.join(checkpoint::TOKENIZER),
    )
    .unwrap();
    // Seeded (candle's own generator is not), so the run below is the same every time.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let values: Vec<f32> = (0..vocab * width)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let t = Tensor::from_vec(values, (vocab, width), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let zero = Tensor::zeros((OWN, width), DType::F16, &Device::Cpu).unwrap();
    let t = Tensor::cat(&[&zero, &t.narrow(0, OWN, vocab - OWN).unwrap()], 0).unwrap();
    candle_core::safetensors::save(&HashMap::from([(TABLE.to_string(), t)]), dir.join(PIECES))
        .unwrap();
}

#[test]
fn a_model_on_word_pieces_learns_saves_resumes_and_keeps_its_table_frozen() {
    let dir = tmp("open-vocab");
    let data = blocks(&dir.join("data"));
    let vocab_dir = dir.join("vocab");
    let vocab = open();
    folder_with_table(&vocab_dir, 16, vocab.len());
    let mut cfg = small_config(vocab.len());
    let said: Vec<String> = data
        .samples
        .iter()
        .flat_map(|s| [s.instruction.clone(), s.subtask.clone()])
        .collect();
    let writes = writes(&vocab, said.iter().map(String::as_str)).unwrap();
    assert!(writes.len() < 40, "{} pieces written", writes.len());
    cfg.pieces = Some(PiecesConfig { dim: 16, writes });
    let tc = loho_models::train::TrainConfig {
        vocab: Some(vocab_dir.clone()),
        ..short_run()
    };
    let mut t = Trainer::new(&cfg, vocab, tc, &Device::Cpu).unwrap();
    let losses: Vec<f32> = (0..200).map(|_| t.step(&data).unwrap().loss).collect();
    let first = losses[..10].iter().sum::<f32>() / 10.0;
    let last = losses[190..].iter().sum::<f32>() / 10.0;
    assert!(first >= 10.0 * last, "loss {first} → {last}");

    // The checkpoint holds the table at F16, as converted, untouched by training.
    let run = dir.join("run");
    t.save(&run).unwrap();
    let saved =
        candle_core::safetensors::load(run.join(checkpoint::WEIGHTS), &Device::Cpu).unwrap();
    let table = &saved[&format!("embed.{TABLE}")];
    assert_eq!(table.dtype(), DType::F16);
    let given =
        &candle_core::safetensors::load(vocab_dir.join(PIECES), &Device::Cpu).unwrap()[TABLE];
    assert_eq!(
        max_diff(
            &table.to_dtype(DType::F32).unwrap(),
            &given.to_dtype(DType::F32).unwrap()
        ),
        0.0
    );

    // A resume continues the same run.
    let mut r = Trainer::resume(&run, &Device::Cpu).unwrap();
    assert_eq!(t.step(&data).unwrap().loss, r.step(&data).unwrap().loss);

    // Fine-tuned on texts with a word it never wrote, the head writes that word's pieces
    // too, and the checkpoint it saves keeps them (every weight as before in shape).
    let new_word = open().encode("chartreuse").unwrap();
    let head = |dir: &std::path::Path| checkpoint::read_config(dir).unwrap().pieces.unwrap();
    assert!(new_word.iter().any(|w| !head(&run).writes.contains(w)));
    let tc = loho_models::train::TrainConfig {
        vocab: Some(vocab_dir.clone()),
        ..short_run()
    };
    let said = ["done putting the chartreuse blocks in the bowls."];
    let mut ft = Trainer::fine_tune(&run, tc, &Device::Cpu, said).unwrap();
    ft.step(&data).unwrap();
    let tuned = dir.join("tuned");
    ft.save(&tuned).unwrap();
    let writes = head(&tuned).writes;
    assert!(new_word.iter().all(|w| writes.contains(w)), "{writes:?}");
    assert!(head(&run).writes.iter().all(|w| writes.contains(w)));
    Vla::load(&tuned, 0, &Device::Cpu).unwrap();

    // Loaded, it writes the sub-task of the block it sees, and reads words it never
    // trained on without writing them.
    let mut vla = Vla::load(&run, 0, &Device::Cpu).unwrap();
    // (200 steps learn the sentence, not yet which colour is which: a word-level model
    // of this size does no better.)
    for rgb in [[255, 87, 89], [89, 169, 78]] {
        vla.start(texts()[0]).unwrap();
        let (c, h) = frame(100, 60, rgb);
        let out = vla.decide(&c, &h, &Plan::Write).unwrap();
        assert!(
            ["red", "green"].iter().any(|name| out.subtask
                == format!("pick up the {name} block and place it on the blue bowl.")),
            "{}",
            out.subtask
        );
    }
    vla.start("put the teal blocks in the chartreuse bowls.")
        .unwrap();
    let (c, h) = frame(100, 60, [0, 128, 128]);
    let out = vla.decide(&c, &h, &Plan::Write).unwrap();
    assert!(!out.subtask.contains("chartreuse"), "{}", out.subtask);
    std::fs::remove_dir_all(&dir).unwrap();
}
