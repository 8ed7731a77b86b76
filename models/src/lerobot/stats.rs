//! `meta/stats.json`: min, max, mean, std, count and the quantiles LeRobot normalises with
//! (q01, q10, q50, q90, q99), exact over every frame. Images are per channel over all
//! pixels, scaled to [0, 1] and shaped `[c, 1, 1]`, as LeRobot computes them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

const QUANTILES: [(f64, &str); 5] = [
    (0.01, "q01"),
    (0.10, "q10"),
    (0.50, "q50"),
    (0.90, "q90"),
    (0.99, "q99"),
];

#[derive(Default)]
pub(super) struct Stats {
    /// Per feature, per dimension, every frame's value.
    numeric: BTreeMap<String, Vec<Vec<f64>>>,
    /// Per image feature, the images and, per channel, a histogram of byte values.
    images: BTreeMap<String, (u64, Vec<[u64; 256]>)>,
}

/// The value at fractional rank `q` of `n` sorted values, interpolated as numpy does;
/// `at(i)` is the `i`th smallest.
fn quantile(q: f64, n: u64, at: impl Fn(u64) -> f64) -> f64 {
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as u64;
    let hi = (lo + 1).min(n - 1);
    at(lo) + (at(hi) - at(lo)) * (pos - lo as f64)
}

impl Stats {
    pub fn add(&mut self, key: &str, values: &[f64]) {
        let dims = self
            .numeric
            .entry(key.to_string())
            .or_insert_with(|| vec![Vec::new(); values.len()]);
        for (d, v) in dims.iter_mut().zip(values) {
            d.push(*v);
        }
    }

    /// One image's pixels, `channels` interleaved.
    pub fn add_image(&mut self, key: &str, channels: usize, pixels: &[u8]) {
        let (count, hist) = self
            .images
            .entry(key.to_string())
            .or_insert_with(|| (0, vec![[0; 256]; channels]));
        *count += 1;
        for px in pixels.chunks_exact(channels) {
            for (h, v) in hist.iter_mut().zip(px) {
                h[*v as usize] += 1;
            }
        }
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (key, dims) in &self.numeric {
            let mut per: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for d in dims {
                let mut s = d.clone();
                s.sort_by(f64::total_cmp);
                let n = s.len() as f64;
                let mean = s.iter().sum::<f64>() / n;
                let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                for (name, v) in [
                    ("min", s[0]),
                    ("max", s[s.len() - 1]),
                    ("mean", mean),
                    ("std", var.sqrt()),
                ] {
                    per.entry(name).or_default().push(v);
                }
                for (q, name) in QUANTILES {
                    let v = quantile(q, s.len() as u64, |i| s[i as usize]);
                    per.entry(name).or_default().push(v);
                }
            }
            let mut m: Map<String, Value> =
                per.into_iter().map(|(k, v)| (k.into(), json!(v))).collect();
            m.insert("count".into(), json!([dims[0].len()]));
            out.insert(key.clone(), Value::Object(m));
        }
        for (key, (count, channels)) in &self.images {
            let mut per: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
            for h in channels {
                let n: u64 = h.iter().sum();
                let at = |r: u64| {
                    let mut seen = 0;
                    for (v, c) in h.iter().enumerate() {
                        seen += c;
                        if seen > r {
                            return v as f64;
                        }
                    }
                    255.0
                };
                let mean = h
                    .iter()
                    .enumerate()
                    .map(|(v, c)| v as f64 * *c as f64)
                    .sum::<f64>()
                    / n as f64;
                let var = h
                    .iter()
                    .enumerate()
                    .map(|(v, c)| (v as f64 - mean).powi(2) * *c as f64)
                    .sum::<f64>()
                    / n as f64;
                let mut put =
                    |name, v: f64| per.entry(name).or_default().push(json!([[v / 255.0]]));
                put("min", at(0));
                put("max", at(n - 1));
                put("mean", mean);
                put("std", var.sqrt());
                for (q, name) in QUANTILES {
                    put(name, quantile(q, n, at));
                }
            }
            let mut m: Map<String, Value> = per
                .into_iter()
                .map(|(k, v)| (k.into(), Value::Array(v)))
                .collect();
            m.insert("count".into(), json!([count]));
            out.insert(key.clone(), Value::Object(m));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_image_stats_are_numpys() {
        let mut s = Stats::default();
        for v in [1.0, 2.0, 3.0, 4.0] {
            s.add("x", &[v, -v]);
        }
        s.add_image("im", 1, &[0, 255, 255, 0]);
        let j = s.to_json();
        assert_eq!(j["x"]["mean"], json!([2.5, -2.5]));
        assert_eq!(j["x"]["min"], json!([1.0, -4.0]));
        // numpy.quantile([1, 2, 3, 4], 0.1) = 1.3; std with ddof 0.
        assert!((j["x"]["q10"][0].as_f64().unwrap() - 1.3).abs() < 1e-12);
        assert!((j["x"]["std"][0].as_f64().unwrap() - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(j["x"]["count"], json!([4]));
        assert_eq!(j["im"]["mean"], json!([[[0.5]]]));
        assert_eq!(j["im"]["max"], json!([[[1.0]]]));
        assert_eq!(j["im"]["q50"], json!([[[0.5]]]));
    }
}
