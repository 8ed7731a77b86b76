//! The fused kernels against candle's composite ops: values and gradients.

use candle_core::{Device, Var};
use candle_nn::Module;

use super::kernels::Attention;
use super::*;
use crate::max_diff;

fn randn(shape: &[usize], seed: u64) -> Var {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| crate::normal(&mut rng)).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

/// The fused op and candle's composite ops give the same values and gradients for a
/// random weighting of the output.
fn check(
    vars: &[&Var],
    fused: impl Fn(&[&Tensor]) -> Result<Tensor>,
    composite: impl Fn(&[&Tensor]) -> Result<Tensor>,
) {
    let ts: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
    let (a, b) = (fused(&ts).unwrap(), composite(&ts).unwrap());
    assert!(
        max_diff(&a, &b) <= 1e-5,
        "values differ by {}",
        max_diff(&a, &b)
    );
    let w = randn(a.dims(), 99);
    let ga = (a * w.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gb = (b * w.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in vars {
        let (x, y) = (ga.get(v).unwrap(), gb.get(v).unwrap());
        let d = max_diff(x, y);
        assert!(
            d <= 1e-4,
            "gradients of a {:?} input differ by {d}",
            v.shape()
        );
    }
}

#[test]
fn layer_norm_bias_relu_heads_and_linear_match_candles_composite_ops() {
    let (x, w, b) = (randn(&[3, 5, 8], 1), randn(&[8], 2), randn(&[8], 3));
    check(
        &[&x, &w, &b],
        |t| layer_norm(t[0], t[1], t[2], 1e-5),
        |t| {
            let mean = t[0].mean_keepdim(D::Minus1)?;
            let xc = t[0].broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
            xn.broadcast_mul(t[1])?.broadcast_add(t[2])
        },
    );
    let pos = randn(&[5, 8], 4);
    check(
        &[&x, &pos],
        |t| add_rows(t[0], t[1]),
        |t| t[0].broadcast_add(t[1]),
    );
    check(&[&x], |t| relu(t[0]), |t| t[0].relu());
    let y = randn(&[3, 5, 8], 9);
    check(&[&x, &y], |t| add(t[0], t[1]), |t| t[0] + t[1]);
    let rows = randn(&[6, 8], 8);
    check(
        &[&rows],
        |t| split_heads(t[0], 2, 4, false, None),
        |t| t[0].reshape((2, 3, 4, 2))?.transpose(1, 2)?.contiguous(),
    );
    check(
        &[&rows],
        |t| split_heads(t[0], 2, 4, true, None),
        |t| {
            t[0].reshape((2, 3, 4, 2))?
                .permute((0, 2, 3, 1))?
                .contiguous()
        },
    );
    let (lw, lb) = (randn(&[6, 8], 5), randn(&[6], 6));
    check(
        &[&x, &lw, &lb],
        |t| linear(t[0], t[1], Some(t[2])),
        |t| candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(t[0]),
    );
    check(
        &[&x, &lw, &lb],
        |t| linear_relu(t[0], t[1], t[2]),
        |t| {
            candle_nn::Linear::new(t[1].clone(), Some(t[2].clone()))
                .forward(t[0])?
                .relu()
        },
    );
}

#[test]
fn attention_matches_an_additive_mask_and_hides_padding() {
    let (q, kt, v) = (
        randn(&[2, 3, 4, 5], 7),
        randn(&[2, 3, 5, 7], 8),
        randn(&[2, 3, 7, 5], 9),
    );
    let keys: Vec<bool> = (0..14).map(|i| i % 7 != 2 && i != 12).collect();
    let mask = Mask {
        prefix: 4,
        past: 3,
        blocks: None,
        keys: Some(Arc::new(keys)),
    };
    check(
        &[&q, &kt, &v],
        |t| attention(t[0], t[1], t[2], 0.5, &mask, None),
        |t| composite_attention(t[0], t[1], t[2], 0.5, &mask),
    );
    // Row 0, query 0 sits at position 3 < prefix 4: it sees keys 0, 1 and 3 (2 is
    // padding) and nothing after the prefix.
    let a = Attention {
        scale: 0.5,
        mask: mask.clone(),
        packed: None,
        kept: Default::default(),
    };
    let w = a.weights(q.as_tensor(), kt.as_tensor()).unwrap();
    let first: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap()[..7].to_vec();
    assert!(
        first[2] == 0.0 && first[4..].iter().all(|&v| v == 0.0),
        "{first:?}"
    );
    assert!((first.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn packed_rows_are_the_real_tokens_and_attend_as_padded_ones() {
    // Two sequences of 4 slots; slots 1 and 6, 7 are padding.
    let real = [true, false, true, true, true, true, false, false];
    let packed = Packed::new(&real);
    assert_eq!(packed.len(), 5);
    let rows: Vec<u32> = (0..8).filter(|&i| real[i as usize]).collect();
    let rows = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
    let x = randn(&[8, 6], 3);
    check(
        &[&x],
        |t| packed.pack(t[0], 2),
        |t| t[0].index_select(&rows, 0),
    );
    // Unpacking puts every row back in its slot and zeros in the padding.
    let zero_padding = Tensor::new(real.map(|r| r as u8 as f32).as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(1)
        .unwrap();
    let n = randn(&[5, 6], 4);
    check(
        &[&x],
        |t| packed.unpack(&packed.pack(t[0], 2)?, 2),
        |t| t[0].broadcast_mul(&zero_padding),
    );
    check(
        &[&n],
        |t| packed.pack(&packed.unpack(t[0], 2)?, 2),
        |t| Ok(t[0].clone()),
    );
    // Heads and attention of packed rows: those of the padded rows, padding left out.
    let mask = Mask {
        prefix: 2,
        past: 0,
        blocks: None,
        keys: Some(Arc::new(real.to_vec())),
    };
    let (q, k, v) = (randn(&[5, 6], 5), randn(&[5, 6], 6), randn(&[5, 6], 7));
    check(
        &[&q, &k, &v],
        |t| {
            let heads = |x: &Tensor, tr| split_heads(x, 2, 3, tr, Some(&packed));
            let (q, kt, v) = (heads(t[0], false)?, heads(t[1], true)?, heads(t[2], false)?);
            attention(&q, &kt, &v, 0.5, &mask, Some(&packed))
        },
        |t| {
            let heads = |x: &Tensor, tr| split_heads(&packed.unpack(x, 2)?, 2, 3, tr, None);
            let (q, kt, v) = (heads(t[0], false)?, heads(t[1], true)?, heads(t[2], false)?);
            let y = composite_attention(&q, &kt, &v, 0.5, &mask)?;
            y.index_select(&rows, 0)
        },
    );
}

#[test]
fn a_block_of_new_tokens_sees_itself_both_ways() {
    let mask = Mask {
        prefix: 2,
        past: 5,
        blocks: Some(Arc::new(vec![5..8, 6..8])),
        keys: None,
    };
    // Row 0: queries 0..3 (positions 5..8) see up to position 7; the fourth is causal
    // again. Row 1's block starts a position later.
    assert_eq!(
        (0..4).map(|q| mask.last_key(0, q)).collect::<Vec<_>>(),
        [7, 7, 7, 8]
    );
    assert_eq!(
        (0..4).map(|q| mask.last_key(1, q)).collect::<Vec<_>>(),
        [5, 7, 7, 8]
    );
    let (q, kt, v) = (
        randn(&[2, 2, 4, 5], 3),
        randn(&[2, 2, 5, 9], 4),
        randn(&[2, 2, 9, 5], 5),
    );
    check(
        &[&q, &kt, &v],
        |t| attention(t[0], t[1], t[2], 0.5, &mask, None),
        |t| composite_attention(t[0], t[1], t[2], 0.5, &mask),
    );
}
