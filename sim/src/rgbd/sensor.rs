//! What a camera makes of the scene: the triangles rasterised into a depth buffer, then
//! each pixel lit, white-balanced and given sensor noise, and its depth the noise and the
//! dropouts of a structured-light sensor (the model is in the module above).

use std::sync::LazyLock;

use rand::SeedableRng;

use super::scene::Face;
use super::{Camera, Lighting, Shot};
use crate::colors::TABLE;

/// Colour of the table outside the workspace (the workspace itself is `TABLE`).
const FLOOR: [f32; 3] = [120.0, 120.0, 120.0];
/// Sensor colour noise (σ, levels), the benchmark's.
const COLOR_SIGMA: f32 = 3.0;
/// Depth is lost where the view meets the surface at less than this cosine …
const GRAZING: f32 = 0.2;
/// … along depth steps larger than this (m), with this probability …
const EDGE_STEP: f32 = 0.015;
const EDGE_DROP: f32 = 0.6;
/// … and at random.
const DROP: f32 = 0.002;
/// The D415's stereo baseline (m) and disparity noise (px).
const BASELINE: f32 = 0.055;
const SUBPIXEL: f32 = 0.08;
/// Standard normal draws that per-pixel noise picks from: 2¹⁶ of them, made once.
static NORMALS: LazyLock<Vec<f32>> = LazyLock::new(|| {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0153_7a3b);
    (0..1 << 16)
        .map(|_| crate::camera::gaussian(&mut rng) as f32)
        .collect()
});

/// A fast generator for per-pixel noise (SplitMix64).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Four standard normal draws.
    fn normals(&mut self) -> [f32; 4] {
        let x = self.next();
        std::array::from_fn(|k| NORMALS[((x >> (16 * k)) & 0xffff) as usize])
    }
}

impl Camera {
    pub(super) fn shoot(
        &self,
        faces: &[Face],
        light: &Lighting,
        white: &[f64; 3],
        seed: u64,
    ) -> Shot {
        let i = &self.lens.intrinsics;
        let (w, h) = (i.width as usize, i.height as usize);
        // Depth buffer: camera z, and which face (u32::MAX = the table).
        let mut z: Vec<f32> = self
            .table
            .iter()
            .map(|t| if t.0 > 0.0 { t.0 } else { f32::INFINITY })
            .collect();
        let mut face = vec![u32::MAX; w * h];
        for (f, tri) in faces.iter().enumerate() {
            let c = tri.v.map(|p| self.pose.to_camera(p));
            // Faces turned away from the camera, or reaching behind it, are not drawn.
            let n = self.pose.direction_to_camera(tri.normal.map(f64::from));
            if c.iter().any(|p| p[2] < 0.05)
                || n[0] * c[0][0] + n[1] * c[0][1] + n[2] * c[0][2] >= 0.0
            {
                continue;
            }
            let s = c.map(|p| [i.fx * p[0] / p[2] + i.cx, i.fy * p[1] / p[2] + i.cy]);
            let area = edge(s[0], s[1], s[2]);
            if area.abs() < 1e-12 {
                continue;
            }
            let lo = |k: usize| {
                s.iter()
                    .map(|p| p[k])
                    .fold(f64::MAX, f64::min)
                    .ceil()
                    .max(0.0) as usize
            };
            let hi = |k: usize, n: usize| {
                (s.iter().map(|p| p[k]).fold(f64::MIN, f64::max).floor() as i64).min(n as i64 - 1)
            };
            let (c0, c1, r0, r1) = (lo(0), hi(0, w), lo(1), hi(1, h));
            for r in r0 as i64..=r1 {
                for col in c0 as i64..=c1 {
                    let p = [col as f64, r as f64];
                    let l = [
                        edge(s[1], s[2], p) / area,
                        edge(s[2], s[0], p) / area,
                        edge(s[0], s[1], p) / area,
                    ];
                    if l.iter().any(|&v| v < 0.0) {
                        continue;
                    }
                    let inv = l[0] / c[0][2] + l[1] / c[1][2] + l[2] / c[2][2];
                    let d = (1.0 / inv) as f32;
                    let k = r as usize * w + col as usize;
                    if d < z[k] {
                        z[k] = d;
                        face[k] = f as u32;
                    }
                }
            }
        }
        let mut noise = Noise(seed);
        let gain = white.map(|g| g as f32);
        // Colour before noise: per face, and for the table under its normal.
        let lit = |albedo: [f32; 3], n: [f32; 3]| {
            let shade = light.shade(n);
            std::array::from_fn::<f32, 3, _>(|c| albedo[c] * shade * gain[c])
        };
        let face_rgb: Vec<[f32; 3]> = faces.iter().map(|f| lit(f.albedo, f.normal)).collect();
        let up = [0.0, 0.0, 1.0];
        let (table_rgb, floor_rgb) = (lit(TABLE.map(f32::from), up), lit(FLOOR, up));
        let sigma_per_z2 = SUBPIXEL / (i.fx as f32 * BASELINE);
        let mut rgb = vec![0u8; 3 * w * h];
        let mut depth_mm = vec![0u16; w * h];
        for k in 0..w * h {
            let (c, n) = match face[k] {
                u32::MAX if self.table[k].1 => (table_rgb, up),
                u32::MAX => (floor_rgb, up),
                f => (face_rgb[f as usize], faces[f as usize].normal),
            };
            let e = noise.normals();
            for ch in 0..3 {
                // `as` saturates to 0..=255; + 0.5 rounds (f32::round is a libm call here).
                rgb[3 * k + ch] = (c[ch] + COLOR_SIGMA * e[ch] + 0.5) as u8;
            }
            let d = z[k];
            if !d.is_finite() {
                continue;
            }
            let dir = self.rays[k];
            let cos = -(dir[0] * n[0] + dir[1] * n[1] + dir[2] * n[2]);
            let (col, row) = (k % w, k / w);
            let step = |o: usize| (z[o] - d).abs() > EDGE_STEP;
            let at_edge = (col > 0 && step(k - 1))
                || (col + 1 < w && step(k + 1))
                || (row > 0 && step(k - w))
                || (row + 1 < h && step(k + w));
            let u = noise.uniform();
            if cos < GRAZING || u < DROP || (at_edge && u < EDGE_DROP) {
                continue;
            }
            let noisy = d + sigma_per_z2 * d * d * e[3];
            depth_mm[k] = ((noisy * 1000.0 + 0.5) as u16).max(1);
        }
        Shot { rgb, depth_mm }
    }
}

/// Twice the signed area of (a, b, p).
fn edge(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}
