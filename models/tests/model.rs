//! The model end to end on real tensors: cached decoding against recomputation,
//! checkpoints on disk, bad inputs, and a short training run that must learn.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use loho_core::policy::Plan;
use loho_models::checkpoint;
use loho_models::stem::SLOT_X;
use loho_models::train::{TrainConfig, Trainer};
use loho_models::vocab::Vocab;
use loho_models::{ModelError, Vla};

#[test]
fn the_model_ids_are_the_vocabulary_specials() {
    use loho_models::model::ids;
    use loho_models::vocab::{ACT, BOS, END_SUB, PAD, SUB, UNK};
    let v = Vocab::build(texts()).unwrap();
    for (word, id) in [
        (PAD, ids::PAD),
        (UNK, ids::UNK),
        (BOS, ids::BOS),
        (SUB, ids::SUB),
        (END_SUB, ids::END_SUB),
        (ACT, ids::ACT),
    ] {
        assert_eq!(v.id(word), Some(id), "{word}");
    }
}

#[test]
fn cached_decoding_gives_the_logits_of_a_full_pass_at_every_step() {
    let (mut m, vocab, _vm) = fresh();
    let words = vocab.encode(texts()[0]).unwrap();
    let (instr, _) = m.config().instruction_ids(&words);
    let (rgb, h) = frame(100, 60, [255, 87, 89]);
    let f = m.config().stem.frame(&rgb, &h, &Device::Cpu).unwrap();
    m.start(&instr).unwrap();
    let mut hid = m.observe(&f).unwrap();
    let mut seq = vec![3u32]; // <sub>
    for step in 0..20 {
        let cached = m.logits(&hid).unwrap();
        let full_h = m.recompute(&instr, &f, &seq).unwrap();
        let last = full_h.dim(0).unwrap() - 1;
        let full = m.logits(&full_h.narrow(0, last, 1).unwrap()).unwrap();
        let d = max_diff(&cached, &full);
        assert!(
            d <= 1e-4,
            "step {step}: cached and full logits differ by {d}"
        );
        // Greedy, but never a special token, so all 20 steps are real words.
        let v: Vec<f32> = cached.flatten_all().unwrap().to_vec1().unwrap();
        let next = (6..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32;
        seq.push(next);
        hid = m.feed(&[next]).unwrap();
    }
}

#[test]
fn save_then_load_decides_identically() {
    let (m, vocab, vm) = fresh();
    let dir = tmp("ckpt");
    save(&vm, &m, &vocab, &dir);
    let mut a = Vla::new(m, vocab, 7);
    let mut b = Vla::load(&dir, 7, &Device::Cpu).unwrap();
    let (rgb, h) = frame(200, 30, [78, 121, 167]);
    for plan in [
        Plan::Write,
        Plan::Keep("pick up the red block and place it on the blue bowl.".into()),
        Plan::Rewrite,
    ] {
        a.start(texts()[0]).unwrap();
        b.start(texts()[0]).unwrap();
        let oa = a.decide(&rgb, &h, &plan).unwrap();
        let ob = b.decide(&rgb, &h, &plan).unwrap();
        assert_eq!(oa.subtask, ob.subtask);
        assert_eq!(oa.keyposes, ob.keyposes);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sub-task written again after failures is sampled at the checkpoint's
/// `replan_temperature`: other seeds, other words; a first writing stays greedy.
#[test]
fn a_rewrite_samples_its_words_and_a_write_does_not() {
    let (m, vocab, vm) = fresh();
    let dir = tmp("rewrite");
    save(&vm, &m, &vocab, &dir);
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["replan_temperature"] = 1.0.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let (rgb, h) = frame(200, 30, [78, 121, 167]);
    let texts_of = |plan: &Plan| -> std::collections::BTreeSet<String> {
        (0..8)
            .map(|seed| {
                let mut v = Vla::load(&dir, seed, &Device::Cpu).unwrap();
                v.start(texts()[0]).unwrap();
                v.decide(&rgb, &h, plan).unwrap().subtask
            })
            .collect()
    };
    assert_eq!(texts_of(&Plan::Write).len(), 1);
    assert!(texts_of(&Plan::Rewrite).len() > 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_or_misshaped_tensor_is_named() {
    let (m, vocab, vm) = fresh();
    let dir = tmp("broken");
    save(&vm, &m, &vocab, &dir);
    let weights = dir.join(checkpoint::WEIGHTS);
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let name = "head.output.weight";
    let good = tensors.remove(name).unwrap();
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = Vla::load(&dir, 0, &Device::Cpu)
        .err()
        .expect("a missing tensor must fail");
    assert!(e.to_string().contains(name), "{e}");

    tensors.insert(name.into(), good.narrow(0, 0, 6).unwrap());
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = Vla::load(&dir, 0, &Device::Cpu)
        .err()
        .expect("a mis-shaped tensor must fail");
    assert!(e.to_string().contains(name), "{e}");

    std::fs::write(&weights, b"not safetensors").unwrap();
    assert!(matches!(
        Vla::load(&dir, 0, &Device::Cpu),
        Err(ModelError::Checkpoint { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_words_run_and_a_wrong_frame_is_an_error() {
    let (m, vocab, _vm) = fresh();
    let mut vla = Vla::new(m, vocab, 1);
    vla.start("pick up the golden teapot and put it in the sink.")
        .unwrap();
    let (rgb, h) = frame(10, 10, [255, 255, 255]);
    let out = vla.decide(&rgb, &h, &Plan::Write).unwrap();
    assert!(out.timing.total >= out.timing.prefill);
    let e = vla
        .decide(&rgb[..300], &h[..100], &Plan::Write)
        .unwrap_err();
    assert!(matches!(e, ModelError::FrameSize { .. }), "{e}");
    // A very long instruction is cut, not an error.
    vla.start(&"red ".repeat(100)).unwrap();
    assert!(vla.truncated);
    vla.decide(&rgb, &h, &Plan::Write).unwrap();
}

#[test]
fn two_hundred_steps_on_32_samples_lower_the_loss_tenfold() {
    let dir = tmp("learn");
    let data = blocks(&dir);
    let vocab = Vocab::build(texts()).unwrap();
    let tc = short_run();
    let mut t = Trainer::new(&small_config(vocab.len()), vocab, tc, &Device::Cpu).unwrap();
    let losses: Vec<f32> = (0..200).map(|_| t.step(&data).unwrap().loss).collect();
    let first = losses[..10].iter().sum::<f32>() / 10.0;
    let last = losses[190..].iter().sum::<f32>() / 10.0;
    assert!(
        first >= 10.0 * last,
        "loss went from {first} to {last}, less than tenfold"
    );

    // A save mid-run and a resume continue exactly where the run was.
    t.save(&dir.join("run")).unwrap();
    let mut r = Trainer::resume(&dir.join("run"), &Device::Cpu).unwrap();
    assert_eq!(r.state.step, 200);
    let a = t.step(&data).unwrap();
    let b = r.step(&data).unwrap();
    assert_eq!(
        a.loss, b.loss,
        "a resumed run draws the same batch and weights"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A step split into shards on as many threads is the step of the whole batch: the
/// same losses and gradients, step after step (to float rounding).
#[test]
fn a_batch_split_over_three_threads_trains_as_one() {
    let dir = tmp("shards");
    let data = blocks(&dir);
    let run = |workers: usize| {
        let vocab = Vocab::build(texts()).unwrap();
        let tc = TrainConfig {
            batch: 8,
            palette: vec![
                ("red".into(), [255, 87, 89]),
                ("green".into(), [89, 169, 78]),
            ],
            ..Default::default()
        };
        let mut t = Trainer::new(&small_config(vocab.len()), vocab, tc, &Device::Cpu).unwrap();
        t.workers = workers;
        (0..3).map(|_| t.step(&data).unwrap()).collect::<Vec<_>>()
    };
    let (one, three) = (run(1), run(3));
    for (step, (a, b)) in one.iter().zip(&three).enumerate() {
        // (The pointer's loss is 0 with one object per scene, but its labels are drawn.)
        assert!(a.colour > 0.0 && a.action > 0.0, "{a:?}");
        for (what, x, y) in [
            ("loss", a.loss, b.loss),
            ("text", a.text, b.text),
            ("colour", a.colour, b.colour),
            ("action", a.action, b.action),
            ("pointer", a.pointer, b.pointer),
            ("gradient norm", a.grad_norm, b.grad_norm),
        ] {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "step {step}: {what} {x} whole, {y} in shards"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sub-task that places on a zone makes the place pointer pick among flat objects only:
/// with one zone in view, the place's anchor is that zone's centroid, whatever the
/// (untrained) pointer prefers; the pick's pointer is left alone.
#[test]
fn a_place_on_a_zone_points_at_a_zone() {
    let (mut model, vocab, _vm) = fresh();
    let (mut rgb, mut h) = frame(40, 30, [255, 87, 89]);
    // A green zone outline, 38 px, 2 px wide, 1 mm high: rows 181–218, columns 81–118.
    for r in 181..219 {
        for c in 81..119 {
            if !(183..217).contains(&r) || !(83..117).contains(&c) {
                rgb[(r * COLS + c) * 3..][..3].copy_from_slice(&[89, 169, 78]);
                h[r * COLS + c] = 0.001;
            }
        }
    }
    let ids = vocab.encode(texts()[0]).unwrap();
    let (ids, _) = model.config().instruction_ids(&ids);
    model.start(&ids).unwrap();
    let f = model.config().stem.frame(&rgb, &h, &Device::Cpu).unwrap();
    let act = model.observe(&f).unwrap();
    let anchor = |on_zone: bool| -> Vec<f32> {
        let w = model.pointer_weights(&act, on_zone).unwrap();
        let (_, anchor) = model.act_condition(&act, &w).unwrap();
        let mut a = vec![0f32; 12];
        anchor.absolute(0, &mut a);
        a
    };
    // The zone's centroid (row 199.5, column 99.5) on the workspace's ±1 scale, from
    // pixel centres.
    let (zx, zy) = (
        2.0 * 100.0 / COLS as f32 - 1.0,
        2.0 * 200.0 / ROWS as f32 - 1.0,
    );
    let zoned = anchor(true);
    let (px, py) = (zoned[6], zoned[7]);
    assert!(
        (px - zx).abs() < 1e-3 && (py - zy).abs() < 1e-3,
        "place anchor {px}, {py}"
    );
    let free = anchor(false);
    assert_eq!(zoned[..6], free[..6], "the pick is not constrained");
    assert!(
        (free[6] - zx).abs() > 1e-3,
        "unconstrained, the place mixes both objects"
    );
}

#[test]
fn a_labelled_keypose_is_anchored_on_its_object_in_training() {
    let (model, _vocab, _vm) = fresh();
    // Two red blocks: an untrained pointer splits between them; a label picks one.
    let (mut rgb, mut h) = frame(40, 30, [255, 87, 89]);
    let (rgb2, h2) = frame(240, 120, [255, 87, 89]);
    for k in 240 * COLS..ROWS * COLS {
        if h2[k] > 0.0 {
            rgb[3 * k..][..3].copy_from_slice(&rgb2[3 * k..][..3]);
            h[k] = h2[k];
        }
    }
    let f = model.config().stem.frame(&rgb, &h, &Device::Cpu).unwrap();
    let xy: Vec<Vec<f32>> = f
        .narrow(2, SLOT_X, 2)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap();
    let cfg = model.config();
    let t = cfg.max_instruction + cfg.stem.tokens() + 1;
    let hidden = Tensor::randn(0f32, 1.0, (1, t, cfg.backbone.d_model), &Device::Cpu).unwrap();
    let anchors = |labels: &[(u32, u32)]| -> Vec<f32> {
        let (_, _, anchor) = model
            .act_train(&hidden, &f, &[t as u32 - 1], labels)
            .unwrap();
        let mut a = vec![0f32; 12];
        anchor.absolute(0, &mut a);
        a
    };
    let near = |a: &[f32], b: &[f32]| (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6;
    // Pick (keypose 0) on block 1, place (keypose 1) on block 0.
    let labelled = anchors(&[(0, 1), (1, 0)]);
    assert!(near(&labelled[0..2], &xy[1]), "{labelled:?} {xy:?}");
    assert!(near(&labelled[6..8], &xy[0]), "{labelled:?} {xy:?}");
    let soft = anchors(&[]);
    for a in [&soft[0..2], &soft[6..8]] {
        assert!(
            !near(a, &xy[0]) && !near(a, &xy[1]),
            "soft anchors mix: {soft:?}"
        );
    }
}

/// `loho train --from CKPT --flow-steps 2`: the head learns to land in 2 Euler steps
/// where its teacher's 10 land from the same noise, far nearer than 2 of the teacher's.
#[test]
fn a_flow_distilled_into_two_steps_lands_where_its_teachers_ten_do() {
    let dir = tmp("flow-steps");
    let data = blocks(&dir);
    let vocab = Vocab::build(texts()).unwrap();
    let mut t = Trainer::new(&small_config(vocab.len()), vocab, short_run(), &Device::Cpu).unwrap();
    for _ in 0..200 {
        t.step(&data).unwrap();
    }
    let teacher = dir.join("teacher");
    t.state.tasks = ["A".to_string(), "L".to_string()].into();
    t.save(&teacher).unwrap();
    let tc = TrainConfig {
        flow_steps: Some(2),
        lr: 1e-3,
        ..short_run()
    };
    let mut ft = Trainer::fine_tune(&teacher, tc, &Device::Cpu, []).unwrap();
    // The teacher's tasks stay among the fine-tune's (`loho eval` labels the rest held out).
    assert_eq!(ft.state.tasks, t.state.tasks);
    for _ in 0..200 {
        ft.step(&data).unwrap();
    }
    let student = dir.join("student");
    ft.save(&student).unwrap();
    // Each checkpoint at `steps` Euler steps, the same noise (the same seed) per frame.
    let actions = |ckpt: &std::path::Path, steps: usize| -> Vec<f64> {
        let cfg_path = ckpt.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg["head"]["flow_steps"] = steps.into();
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let mut v = Vla::load(ckpt, 7, &Device::Cpu).unwrap();
        let mut out = Vec::new();
        for i in 0..data.len() {
            let f = data.frame(i).unwrap();
            v.start(&data.samples[i].instruction).unwrap();
            let d = v.decide(&f.rgb, &f.height, &Plan::Write).unwrap();
            out.extend(d.keyposes.iter().flat_map(|k| [k.x, k.y, k.z]));
        }
        out
    };
    let target = actions(&teacher, 10);
    let err = |a: Vec<f64>| {
        assert_eq!(a.len(), target.len(), "same sub-tasks, same keyposes");
        a.iter()
            .zip(&target)
            .map(|(x, y)| (x - y).abs())
            .sum::<f64>()
            / a.len() as f64
    };
    let (before, after) = (err(actions(&teacher, 2)), err(actions(&student, 2)));
    assert!(
        after < before / 2.0,
        "2 steps miss the teacher's 10 by {before:.4} m before, {after:.4} m after"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `loho train --from CKPT --max-instruction N`: a wider window moves the object and
/// sub-task positions along with their learned rows, so before any step the widened
/// model decides exactly as its parent on an instruction both windows hold, and holds
/// words its parent cut. A window only widens.
#[test]
fn a_widened_instruction_window_decides_as_its_parent_until_it_trains() {
    let dir = tmp("widen");
    let data = blocks(&dir);
    let vocab = Vocab::build(texts()).unwrap();
    let mut t = Trainer::new(&small_config(vocab.len()), vocab, short_run(), &Device::Cpu).unwrap();
    for _ in 0..60 {
        t.step(&data).unwrap();
    }
    let parent = dir.join("parent");
    t.save(&parent).unwrap();
    let window = checkpoint::read_config(&parent).unwrap().max_instruction;
    let widen = |n: usize| {
        let tc = TrainConfig {
            max_instruction: Some(n),
            ..short_run()
        };
        Trainer::fine_tune(&parent, tc, &Device::Cpu, [])
    };
    let err = widen(window - 1)
        .err()
        .expect("a narrower window is refused");
    assert!(err.to_string().contains("only widens"), "{err}");
    let wide = dir.join("wide");
    widen(window + 8).unwrap().save(&wide).unwrap();
    assert_eq!(
        checkpoint::read_config(&wide).unwrap().max_instruction,
        window + 8
    );

    let decisions = |ckpt: &std::path::Path, instruction: &str| {
        let mut v = Vla::load(ckpt, 3, &Device::Cpu).unwrap();
        let mut out = Vec::new();
        for i in 0..data.len() {
            let f = data.frame(i).unwrap();
            v.start(instruction).unwrap();
            let d = v.decide(&f.rgb, &f.height, &Plan::Write).unwrap();
            let poses: Vec<f64> = d.keyposes.iter().flat_map(|k| [k.x, k.y, k.z]).collect();
            out.push((d.subtask, poses, v.truncated));
        }
        out
    };
    let (a, b) = (decisions(&parent, texts()[0]), decisions(&wide, texts()[0]));
    for ((ta, pa, _), (tb, pb, _)) in a.iter().zip(&b) {
        assert_eq!(ta, tb);
        let d = pa
            .iter()
            .zip(pb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(d < 1e-4, "keyposes differ by {d}");
    }
    let long = [texts()[0]; 3].join(" ");
    assert!(decisions(&parent, &long)[0].2, "the parent cuts it");
    assert!(!decisions(&wide, &long)[0].2, "the wider window holds it");
    std::fs::remove_dir_all(&dir).unwrap();
}
