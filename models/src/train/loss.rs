//! The text loss where a word may have more than one right answer.

use candle_core::Tensor;

/// The words alternatives put at `j + 1` where they agree with `sub` up to `j` and differ
/// there: after the branch the sub-task is taught as written, so each alternative's
/// remaining words (the bowl that matches the block) are not rewarded out of context.
pub(super) fn branches<'a>(
    sub: &'a [u32],
    alts: &'a [Vec<u32>],
    j: usize,
) -> impl Iterator<Item = u32> + 'a {
    alts.iter().filter_map(move |a| {
        let next = *a.get(j + 1)?;
        (a[..=j] == sub[..=j] && next != sub[j + 1]).then_some(next)
    })
}

/// Cross-entropy where a row may have more than one right word: −log of their summed
/// probability. With one right word per row it is the usual cross-entropy.
pub(super) fn set_cross_entropy(
    logits: &Tensor,
    right: &[u32],
    also: &[(u32, u32)],
) -> candle_core::Result<Tensor> {
    let (n, v) = logits.dims2()?;
    let mut mask = vec![-1e9f32; n * v];
    let rows = right.iter().enumerate().map(|(r, &w)| (r as u32, w));
    for (r, w) in rows.chain(also.iter().copied()) {
        mask[r as usize * v + w as usize] = 0.0;
    }
    let mask = Tensor::from_vec(mask, (n, v), logits.device())?;
    let right = logits.add(&mask)?.log_sum_exp(1)?;
    (logits.log_sum_exp(1)? - right)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids;
    use candle_core::Device;

    #[test]
    fn an_alternative_is_right_only_where_it_branches() {
        // <sub> pick red on red </sub> vs <sub> pick blue on blue </sub>: blue is as right
        // as red after "pick", and nowhere else (the second "blue" follows "red").
        let (pick, red, blue, on) = (10, 11, 12, 13);
        let sub = [ids::SUB, pick, red, on, red, ids::END_SUB];
        let alts = [vec![ids::SUB, pick, blue, on, blue, ids::END_SUB]];
        let at: Vec<Vec<u32>> = (0..sub.len() - 1)
            .map(|j| branches(&sub, &alts, j).collect())
            .collect();
        assert_eq!(at, [vec![], vec![blue], vec![], vec![], vec![]]);
    }

    #[test]
    fn set_cross_entropy_sums_the_right_words() {
        let logits = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.0, -1.0, 3.0]], &Device::Cpu).unwrap();
        let p: Vec<Vec<f32>> = candle_nn::ops::softmax(&logits, 1)
            .unwrap()
            .to_vec2()
            .unwrap();
        let plain = set_cross_entropy(&logits, &[1, 2], &[]).unwrap();
        let want = candle_nn::loss::cross_entropy(
            &logits,
            &Tensor::new(&[1u32, 2], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let (plain, want) = (
            plain.to_scalar::<f32>().unwrap(),
            want.to_scalar::<f32>().unwrap(),
        );
        assert!((plain - want).abs() < 1e-6, "{plain} vs {want}");
        // Row 0 also accepts word 0: −log(p00 + p01); row 1 unchanged.
        let set = set_cross_entropy(&logits, &[1, 2], &[(0, 0)])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (-(p[0][0] + p[0][1]).ln() - p[1][2].ln()) / 2.0;
        assert!((set - want).abs() < 1e-6, "{set} vs {want}");
        assert!(set < plain);
    }
}
