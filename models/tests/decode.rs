//! Writing the sub-task, autoregressively and in parallel blocks: the two modes agree
//! where they must, blocks train as they decode, and a fine-tune learns to fill them.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use loho_core::policy::Plan;
use loho_models::head::Decoding;
use loho_models::Vla;

#[test]
fn parallel_decoding_in_blocks_of_one_is_autoregressive_decoding() {
    let (ar, par) = edited("dec-par", |c| {
        c["head"]["decoding"] = "parallel".into();
        c["head"]["block"] = 1.into();
        c["head"]["refine_steps"] = 1.into();
    });
    let mut words = 0;
    for (i, plan) in [Plan::Write, Plan::Rewrite, Plan::Rewrite]
        .iter()
        .enumerate()
    {
        let mut a = Vla::load(&ar, i as u64, &Device::Cpu).unwrap();
        let mut b = Vla::load(&par, i as u64, &Device::Cpu).unwrap();
        for (k, (rgb, h)) in [frame(200, 30, [78, 121, 167]), frame(40, 90, [225, 87, 89])]
            .iter()
            .enumerate()
        {
            a.start(texts()[k]).unwrap();
            b.start(texts()[k]).unwrap();
            let (oa, ob) = (
                a.decide(rgb, h, plan).unwrap(),
                b.decide(rgb, h, plan).unwrap(),
            );
            words += oa.timing.tokens;
            assert_eq!(oa.subtask, ob.subtask);
            assert_eq!(oa.keyposes, ob.keyposes);
            assert_eq!(oa.timing.passes, ob.timing.passes);
        }
    }
    assert!(
        words > 30,
        "the untrained model writes words ({words} in all)"
    );
    for d in [ar, par] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_block_is_filled_in_its_passes_and_stays_in_the_cache() {
    use loho_models::decode::{write, Mode};
    let (mut m, _, _) = fresh();
    let (rgb, h) = frame(200, 30, [78, 121, 167]);
    let instr = m.config().instruction_ids(&[7, 8, 9]).0;
    m.start(&instr).unwrap();
    let f = m.config().stem.frame(&rgb, &h, &Device::Cpu).unwrap();
    let last = m.observe(&f).unwrap();
    let base = m.cached();
    // A pick that never ends the sub-task: the highest-scoring word that is not `</sub>`,
    // given as 0.5 sure.
    let mut pick = |logits: &Tensor| -> candle_core::Result<(u32, f32)> {
        let l: Vec<f32> = logits.to_vec1()?;
        let (i, _) =
            (6..l.len())
                .map(|i| (i, l[i]))
                .fold((6, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
        Ok((i as u32, 0.5))
    };
    let mode = |confidence| Mode::Parallel {
        block: 4,
        steps: 2,
        confidence,
        mask: 1,
    };
    // Every token as sure as 0.4 asks: each block in one pass.
    let w = write(&mut m, last.clone(), 10, mode(0.4), &mut pick).unwrap();
    assert_eq!((w.words.len(), w.passes, w.unfed), (10, 3, 2));
    m.rewind(base).unwrap();
    let w = write(&mut m, last, 10, mode(1.0), &mut pick).unwrap();
    assert_eq!(w.words.len(), 10);
    // Blocks of 4, 4 and 2: two passes each, a block's words going in with the next
    // block's first; the last block's are left to the caller.
    assert_eq!(w.passes, 6);
    assert_eq!(w.unfed, 2);
    assert_eq!(m.cached(), base + 8);
    // The cache holds the words as autoregressive decoding would have fed them.
    let h = m.feed(&w.words[8..]).unwrap();
    assert_eq!(m.cached(), base + 10);
    let full = m
        .recompute(&instr, &f, &[&[3][..], &w.words].concat())
        .unwrap();
    let d = max_diff(&h, &full.narrow(0, full.dim(0).unwrap() - 2, 2).unwrap());
    assert!(d < 1e-4, "cached and recomputed words differ by {d}");
}

#[test]
fn malformed_decoding_settings_are_named() {
    for (block, steps, says) in [
        (0, 1, "head.block is 0"),
        (4, 0, "head.refine_steps is 0"),
        (2, 3, "head.refine_steps 3 > head.block 2"),
        (4, 4, "head.confidence 0 is not a probability"),
        (4, 2, "needs a <mask> token"),
    ] {
        let (base, dir) = edited("dec-bad", |c| {
            c["head"]["decoding"] = "parallel".into();
            c["head"]["block"] = block.into();
            c["head"]["refine_steps"] = steps.into();
            if steps == 4 {
                c["head"]["confidence"] = 0.0.into();
            }
        });
        let err = Vla::load(&dir, 0, &Device::Cpu)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(says), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
    // `--decoding parallel` on a checkpoint with blocks of 4 and no <mask>: refused.
    let (base, dir) = edited("dec-flag", |_| {});
    let mut v = Vla::load(&dir, 0, &Device::Cpu).unwrap();
    let err = v.set_decoding(Decoding::Parallel).unwrap_err().to_string();
    assert!(err.contains("needs a <mask> token"), "{err}");
    v.set_decoding(Decoding::Ar).unwrap();
    for d in [base, dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A training row with a block (its positions both ways, [`Loho::forward_train`]'s
/// `blocks`) computes the hidden states decoding computes for that block after the same
/// clean words: two rows whose blocks start at different positions, against the cache.
#[test]
fn a_training_row_sees_its_block_as_decoding_does() {
    let (mut m, _, _) = fresh();
    let cfg = m.config().clone();
    let instr = cfg.instruction_ids(&[7, 8, 9]).0;
    let frames: Vec<Tensor> = [frame(200, 30, [78, 121, 167]), frame(40, 90, [225, 87, 89])]
        .iter()
        .map(|(rgb, h)| cfg.stem.frame(rgb, h, &Device::Cpu).unwrap())
        .collect();
    let mask = 1; // any id: the test compares the two computations
    let rows: [(Vec<u32>, Vec<u32>); 2] = [
        (vec![10, 11, 12], vec![13, mask, 14, mask]),
        (vec![10], vec![mask, mask, 15, 16]),
    ];
    let (start, len) = (cfg.subtask_start(), 8);
    let mut subtasks = Vec::new();
    let mut blocks = Vec::new();
    for (clean, block) in &rows {
        let mut sub = vec![3]; // <sub>
        sub.extend(clean);
        let first = start + sub.len();
        sub.extend(block);
        blocks.push(first..first + block.len());
        sub.resize(len, 0);
        subtasks.extend(sub);
    }
    let all = Tensor::cat(&frames, 0).unwrap();
    let instrs = instr.repeat(2);
    let trained = m
        .forward_train(&instrs, &all, &subtasks, Some(blocks.clone()))
        .unwrap();
    let causal = m.forward_train(&instrs, &all, &subtasks, None).unwrap();
    for (i, ((clean, block), range)) in rows.iter().zip(&blocks).enumerate() {
        m.start(&instr).unwrap();
        m.observe(&frames[i]).unwrap();
        let decoded = m.feed_block(clean, block).unwrap();
        let decoded = decoded.narrow(0, clean.len(), block.len()).unwrap();
        let row = trained.get(i).unwrap().narrow(0, range.start, 4).unwrap();
        let d = max_diff(&row, &decoded);
        assert!(d < 1e-4, "row {i}: training and decoding differ by {d}");
        let row = causal.get(i).unwrap().narrow(0, range.start, 4).unwrap();
        assert!(
            max_diff(&row, &decoded) > 1e-3,
            "row {i}: the block is not causal"
        );
    }
}

/// `loho train --from CKPT --parallel 4`: the checkpoint gains `<mask>` (its other weights
/// kept), and a short fine-tune distilled from it fills blocks of 4 in 2 passes to write
/// the sub-tasks its teacher writes, in fewer passes than words; the run resumes exactly.
#[test]
fn a_fine_tune_learns_to_write_in_parallel_blocks() {
    use loho_models::train::{Parallel, TrainConfig, Trainer};
    use loho_models::vocab::{Vocab, MASK};
    let dir = tmp("par-ft");
    let data = blocks(&dir);
    let vocab = Vocab::build(texts()).unwrap();
    let words = vocab.len();
    let tc = short_run();
    let mut t = Trainer::new(&small_config(words), vocab, tc.clone(), &Device::Cpu).unwrap();
    for _ in 0..200 {
        t.step(&data).unwrap();
    }
    let teacher = dir.join("teacher");
    t.save(&teacher).unwrap();

    let parallel = |block| TrainConfig {
        parallel: Some(Parallel {
            block,
            distill: 1.0,
        }),
        ..tc.clone()
    };
    let err = Trainer::fine_tune(&teacher, parallel(0), &Device::Cpu, [])
        .err()
        .expect("block 0 refused")
        .to_string();
    assert!(err.contains("head.block is 0"), "{err}");
    let no_flow = TrainConfig {
        flow_steps: Some(0),
        ..tc.clone()
    };
    let err = Trainer::fine_tune(&teacher, no_flow, &Device::Cpu, [])
        .err()
        .expect("0 flow steps refused")
        .to_string();
    assert!(err.contains("at least one step"), "{err}");

    let mut ft = Trainer::fine_tune(&teacher, parallel(4), &Device::Cpu, []).unwrap();
    let student = dir.join("student");
    ft.save(&student).unwrap();
    let load = |d: &std::path::Path| {
        candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let (before, after) = (load(&teacher), load(&student));
    for (name, old) in &before {
        let new = &after[name];
        let new = new.narrow(0, 0, old.dim(0).unwrap()).unwrap();
        assert_eq!(max_diff(old, &new), 0.0, "{name} changed");
    }
    assert_eq!(after["embed.weight"].dim(0).unwrap(), words + 1);
    let v = Vocab::load(&student.join("tokenizer.json")).unwrap();
    assert_eq!(v.id(MASK), Some(words as u32));

    let mut stats = Vec::new();
    for _ in 0..200 {
        stats.push(ft.step(&data).unwrap());
    }
    let (first, last) = (&stats[0], &stats[199]);
    assert!(first.parallel > 0.0 && first.distill > 0.0, "{first:?}");
    assert!(last.parallel < first.parallel / 5.0, "{first:?} → {last:?}");
    ft.save(&student).unwrap();

    // On every training frame, parallel decoding writes what autoregressive decoding
    // of the teacher writes, in fewer forward passes than words.
    let mut ar = Vla::load(&teacher, 0, &Device::Cpu).unwrap();
    let mut par = Vla::load(&student, 0, &Device::Cpu).unwrap();
    par.set_decoding(Decoding::Parallel).unwrap();
    let (mut same, mut words, mut passes) = (0, 0, 0);
    for i in 0..data.len() {
        let f = data.frame(i).unwrap();
        let instruction = &data.samples[i].instruction;
        ar.start(instruction).unwrap();
        par.start(instruction).unwrap();
        let a = ar.decide(&f.rgb, &f.height, &Plan::Write).unwrap();
        let p = par.decide(&f.rgb, &f.height, &Plan::Write).unwrap();
        same += usize::from(a.subtask == p.subtask);
        // Without `</sub> <act>`, which take one pass in both modes.
        words += p.timing.tokens - 2;
        passes += p.timing.passes - 1;
    }
    assert!(same >= 30, "{same} of {} sub-tasks the same", data.len());
    assert!(2 * words > 3 * passes, "{words} words in {passes} passes");

    let mut r = Trainer::resume(&student, &Device::Cpu).unwrap();
    assert_eq!(r.step(&data).unwrap().loss, ft.step(&data).unwrap().loss);
    std::fs::remove_dir_all(&dir).unwrap();
}
