//! A mutation fuzzer for decoders, run as ordinary tests on stable Rust: inputs grown from
//! valid encodings by bit flips, overwritten bytes, hostile length words, cuts, growth and
//! splices, plus plain random bytes, from a fixed seed so a failure replays.
//!
//! `LOHO_FUZZ_INPUTS` sets how many inputs each target gets (CI runs the default; a long
//! run: `LOHO_FUZZ_INPUTS=1000000 cargo test --release --test fuzz -- --nocapture`).

use std::time::Instant;

/// SplitMix64: tiny, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
}

/// Words a length or count field would hold to break a decoder.
fn hostile(len: usize, rng: &mut Rng) -> u32 {
    let words = [
        0,
        1,
        3,
        len as u32,
        len as u32 + 1,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
        0x8000_0000,
        0x0001_0000,
    ];
    match rng.below(words.len() + 1) {
        i if i < words.len() => words[i],
        _ => rng.u64() as u32,
    }
}

/// One input from the seeds: one to three stacked mutations of a seed, or random bytes.
pub fn mutate(seeds: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    if rng.below(16) == 0 {
        let n = rng.below(256);
        return rng.bytes(n);
    }
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(3) {
        let len = b.len();
        match rng.below(7) {
            0 if len > 0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(len);
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 if len > 0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(len);
                    b[i] = [0, 0xFF, 0x7F, 0x80, rng.u64() as u8][rng.below(5)];
                }
            }
            2 if len >= 4 => {
                let at = rng.below(len - 3) & !3;
                let w = hostile(len, rng).to_le_bytes();
                b[at..at + 4].copy_from_slice(&w);
            }
            3 => b.truncate(rng.below(len + 1)),
            4 => {
                let n = 1 + rng.below(64);
                let extra = rng.bytes(n);
                b.extend(extra);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below(len - at);
                if rng.below(2) == 0 {
                    b.drain(at..at + n);
                } else {
                    let extra = rng.bytes(n);
                    b.splice(at..at, extra);
                }
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
        }
    }
    b
}

/// Feeds `n` inputs grown from `seeds` (the seeds themselves first, which must be
/// accepted) to `check`, which panics on a wrong answer and says whether it accepted the
/// input. Prints the count, the time and how many were accepted.
pub fn run(name: &str, seeds: &[Vec<u8>], n: usize, mut check: impl FnMut(&[u8]) -> bool) {
    let mut rng = Rng::new(0x10C0_F022 ^ name.len() as u64);
    let t = Instant::now();
    let mut accepted = 0;
    for s in seeds {
        assert!(check(s), "{name}: a seed must decode");
    }
    for _ in 0..n {
        let input = mutate(seeds, &mut rng);
        accepted += usize::from(check(&input));
    }
    eprintln!(
        "fuzz {name}: {n} inputs in {:.2} s, {accepted} decoded",
        t.elapsed().as_secs_f64()
    );
}

/// `LOHO_FUZZ_INPUTS`, or `default`.
pub fn inputs(default: usize) -> usize {
    std::env::var("LOHO_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
