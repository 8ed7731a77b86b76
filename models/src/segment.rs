//! Segmentation of the top-down heightmap: regions of similar colour and height
//! (4-connected pixels that differ from the table), each measured in pixels and metres.
//! The stem ([`crate::stem`]) turns each region into a token.
//!
//! The table is found in the frame, not assumed: its height is the median height (most
//! of the frame is table) and its colour the per-channel median of the cells at that
//! height, so that a real camera's lighting, white balance and depth offset move the
//! threshold with them. Cells no camera saw (NaN height) are never part of a region.
//!
//! Heights go through a 3×3 median first: it removes the benchmark's 3 mm depth noise and
//! keeps the 2 cm step between stacked blocks, which a mean would smear into a ramp.

/// A pixel differs from the table by more than this share of the table's brightness in
/// some channel (24 levels on the simulator's grey 51) …
const BACKGROUND_RGB: f32 = 0.47;
/// … but never less than 4σ of the sensor's colour noise (σ = 3) …
const BACKGROUND_RGB_MIN: i32 = 12;
/// … or stands higher than this above the table (m, after the median).
const BACKGROUND_Z: f32 = 0.012;
/// Cells this close to the table's height (m) show the table's colour.
const TABLE_BAND: f32 = 0.005;
/// Neighbours join one region when no channel differs by more than this …
const JOIN_RGB: i32 = 40;
/// … and their heights by no more than this (m): a small block on a big one is 2 cm up.
const JOIN_Z: f32 = 0.01;
/// Smaller regions are specks, not objects.
const MIN_PIXELS: usize = 12;
/// A region this small that borders a bigger one at its height (within [`JOIN_Z`]) is
/// that object's side face seen at an angle — a camera sees a block's or a bowl's rim
/// darker than its top — and not an object of its own. The smallest object of the
/// benchmark (a small block) covers ~150 cells.
const EDGE_PIXELS: usize = 40;
/// Flat regions (within [`BACKGROUND_Z`] of the table: zones, a bowl's floor) join cells
/// up to this far (rows and columns), across a missing cell: a zone's outline is two
/// cells wide, and where a camera's highest point in a cell is the table beside it, the
/// outline breaks into pieces.
const FLAT_REACH: usize = 2;
/// Flat cells this close to the frame's edge are no objects: a camera's points from the
/// table beyond the workspace (Ravens' lighter table around the dark workspace) land
/// there.
const BORDER: usize = 2;
/// A camera's colours are white-balanced on the table: a channel's value is scaled by
/// this over the table's value in that channel, the grey of LoHoRavens' table (0.2), on
/// which the policy was trained. The table and the objects' tops face the same light, so
/// this also takes out the light's intensity. The table is assumed neutral grey.
const REFERENCE_GREY: f32 = 51.0;

/// One region of the heightmap, measured in pixels and metres.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub pixels: usize,
    pub mean_rgb: [f32; 3],
    pub mean_z: f32,
    /// The top: the 90th percentile of the region's heights, which is its highest cells
    /// on a flat top but not a camera's few noisy high points, nor a bowl's inner wall
    /// climbing from its floor.
    pub top_z: f32,
    /// Centroid (row, column), in pixels.
    pub centroid: (f32, f32),
    /// Bounding box height and width, in pixels.
    pub extent: (f32, f32),
    /// Yaw modulo 90° (radians), from the region's fourth moment.
    pub yaw: f32,
}

/// Heights through a 3×3 median (edges keep their own value); non-finite heights are 0.
///
/// Each row's columns of three are sorted once (low, middle, high) and shared by the three
/// windows that hold them; a window's median is then the median of the highest low, the
/// median middle and the lowest high (Paeth's selection). Written as min/max over whole
/// rows so that it vectorises: it runs on 16 frames of 51 200 cells every training step.
pub(crate) fn median3(z: &[f32], h: usize, w: usize) -> Vec<f32> {
    let clean: Vec<f32> = z
        .iter()
        .map(|&v| if v.is_finite() { v } else { 0.0 })
        .collect();
    let mut out = clean.clone();
    let (mut lo, mut mid, mut hi) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
    for u in 1..h.saturating_sub(1) {
        let (a, b, c) = (
            &clean[(u - 1) * w..u * w],
            &clean[u * w..(u + 1) * w],
            &clean[(u + 1) * w..(u + 2) * w],
        );
        for v in 0..w {
            let (small, big) = (a[v].min(b[v]), a[v].max(b[v]));
            lo[v] = small.min(c[v]);
            hi[v] = big.max(c[v]);
            mid[v] = small.max(big.min(c[v]));
        }
        let row = &mut out[u * w..(u + 1) * w];
        for v in 1..w.saturating_sub(1) {
            let low = lo[v - 1].max(lo[v]).max(lo[v + 1]);
            let high = hi[v - 1].min(hi[v]).min(hi[v + 1]);
            row[v] = med3(low, med3(mid[v - 1], mid[v], mid[v + 1]), high);
        }
    }
    out
}

fn med3(a: f32, b: f32, c: f32) -> f32 {
    a.min(b).max(a.max(b).min(c))
}

/// The bare table as a frame shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Table {
    pub rgb: [u8; 3],
    pub z: f32,
}

fn median(v: &mut [f32]) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    Some(*v.select_nth_unstable_by(mid, f32::total_cmp).1)
}

/// The table of a frame (`z` after [`median3`], `seen` false where no camera saw).
pub(crate) fn table(rgb: &[u8], z: &[f32], seen: &[bool]) -> Table {
    let mut heights: Vec<f32> = (0..z.len()).filter(|&k| seen[k]).map(|k| z[k]).collect();
    let tz = median(&mut heights).unwrap_or(0.0);
    let mut hist = [[0u32; 256]; 3];
    let mut n = 0;
    for k in (0..z.len()).filter(|&k| seen[k] && (z[k] - tz).abs() <= TABLE_BAND) {
        for (c, h) in hist.iter_mut().enumerate() {
            h[rgb[3 * k + c] as usize] += 1;
        }
        n += 1;
    }
    let rgb = hist.map(|h| {
        let mut acc = 0;
        h.iter()
            .position(|&count| {
                acc += count;
                2 * acc > n
            })
            .unwrap_or(0) as u8
    });
    Table { rgb, z: tz }
}

/// Labels 4-connected regions of similar colour and height that differ from the table
/// (flat ones also across a missing cell), drops specks and side faces;
/// heights are measured from the table's, colours white-balanced on it.
pub(crate) fn segment(rgb: &[u8], z: &[f32], seen: &[bool], h: usize, w: usize) -> Vec<Object> {
    let px = |k: usize| {
        [
            rgb[3 * k] as i32,
            rgb[3 * k + 1] as i32,
            rgb[3 * k + 2] as i32,
        ]
    };
    let far = |a: [i32; 3], b: [i32; 3], t: i32| (0..3).any(|c| (a[c] - b[c]).abs() > t);
    let t = table(rgb, z, seen);
    let brightness = t.rgb.iter().map(|&c| c as f32).sum::<f32>() / 3.0;
    let threshold = ((BACKGROUND_RGB * brightness).round() as i32).max(BACKGROUND_RGB_MIN);
    let bare = t.rgb.map(i32::from);
    let flat = |k: usize| z[k] - t.z <= BACKGROUND_Z;
    let border = |k: usize| {
        let (u, v) = (k / w, k % w);
        u.min(h - 1 - u).min(v).min(w - 1 - v) < BORDER
    };
    let fg: Vec<bool> = (0..h * w)
        .map(|k| seen[k] && (far(px(k), bare, threshold) || !flat(k)) && !(flat(k) && border(k)))
        .collect();
    let mut label = vec![usize::MAX; h * w];
    let mut regions: Vec<Vec<usize>> = Vec::new();
    let mut stack = Vec::new();
    for seed in 0..h * w {
        if !fg[seed] || label[seed] != usize::MAX {
            continue;
        }
        let id = regions.len();
        label[seed] = id;
        stack.push(seed);
        let mut members = Vec::new();
        let (mut sum_z, mut count) = (z[seed], 1.0);
        while let Some(k) = stack.pop() {
            members.push(k);
            let (u, v) = (k / w, k % w);
            let mut visit = |n: usize| {
                if fg[n]
                    && label[n] == usize::MAX
                    && !far(px(k), px(n), JOIN_RGB)
                    && (z[k] - z[n]).abs() <= JOIN_Z
                    && (z[n] - sum_z / count).abs() <= JOIN_Z
                {
                    label[n] = id;
                    stack.push(n);
                    sum_z += z[n];
                    count += 1.0;
                }
            };
            if flat(k) {
                for nu in u.saturating_sub(FLAT_REACH)..(u + FLAT_REACH + 1).min(h) {
                    for nv in v.saturating_sub(FLAT_REACH)..(v + FLAT_REACH + 1).min(w) {
                        let n = nu * w + nv;
                        if flat(n) {
                            visit(n);
                        }
                    }
                }
            }
            if u > 0 {
                visit(k - w);
            }
            if u + 1 < h {
                visit(k + w);
            }
            if v > 0 {
                visit(k - 1);
            }
            if v + 1 < w {
                visit(k + 1);
            }
        }
        regions.push(members);
    }
    let mut side_face = vec![false; regions.len()];
    for k in (0..h * w).filter(|&k| label[k] != usize::MAX) {
        let right = (k % w + 1 < w).then_some(k + 1);
        let down = (k + w < h * w).then_some(k + w);
        for n in [right, down].into_iter().flatten() {
            let (a, b) = (label[k], label[n]);
            if b == usize::MAX || a == b || (z[k] - z[n]).abs() > JOIN_Z {
                continue;
            }
            let (small, big) = if regions[a].len() < regions[b].len() {
                (a, b)
            } else {
                (b, a)
            };
            if regions[small].len() < EDGE_PIXELS && regions[small].len() < regions[big].len() {
                side_face[small] = true;
            }
        }
    }
    let gain = t.rgb.map(|c| REFERENCE_GREY / f32::from(c.max(1)));
    regions
        .iter()
        .zip(side_face)
        .filter(|(_, side)| !side)
        .filter_map(|(members, _)| measure(members, rgb, gain, z, t.z, w))
        .collect()
}

/// The features of one region (heights above `table_z`, colours times `gain` but a
/// clipped channel left at full scale, where most of the benchmark's colours are), or
/// `None` for a speck.
fn measure(
    members: &[usize],
    rgb: &[u8],
    gain: [f32; 3],
    z: &[f32],
    table_z: f32,
    w: usize,
) -> Option<Object> {
    let n = members.len();
    if n < MIN_PIXELS {
        return None;
    }
    let mut sum = [0f64; 6]; // r, g, b, z, row, column
    let mut heights = Vec::with_capacity(n);
    let (mut u0, mut u1, mut v0, mut v1) = (usize::MAX, 0, usize::MAX, 0);
    for &k in members {
        let (u, v) = (k / w, k % w);
        for c in 0..3 {
            sum[c] += match rgb[3 * k + c] {
                255 => 255.0,
                v => (v as f32 * gain[c]) as f64,
            };
        }
        let above = z[k] - table_z;
        sum[3] += above as f64;
        sum[4] += u as f64;
        sum[5] += v as f64;
        heights.push(above);
        (u0, u1, v0, v1) = (u0.min(u), u1.max(u), v0.min(v), v1.max(v));
    }
    let mean = sum.map(|s| (s / n as f64) as f32);
    // A square's fourth moment Σ (column + i·row)⁴ about the centroid points at its corners,
    // 45° off its yaw: every pixel votes, where the single farthest pixel read blocks up to
    // 6.5° off.
    let (mut re, mut im) = (0f64, 0f64);
    for &k in members {
        let (dv, du) = (
            (k % w) as f64 - mean[5] as f64,
            (k / w) as f64 - mean[4] as f64,
        );
        let (r2, c2) = (dv * dv - du * du, 2.0 * dv * du);
        re += r2 * r2 - c2 * c2;
        im += 2.0 * r2 * c2;
    }
    // Rows are world y and columns world x, so this is a world angle.
    let yaw = ((im.atan2(re) - std::f64::consts::PI) / 4.0).rem_euclid(std::f64::consts::FRAC_PI_2)
        as f32;
    Some(Object {
        pixels: n,
        mean_rgb: [mean[0], mean[1], mean[2]],
        mean_z: mean[3],
        top_z: *heights.select_nth_unstable_by(n * 9 / 10, f32::total_cmp).1,
        centroid: (mean[4], mean[5]),
        extent: ((u1 - u0 + 1) as f32, (v1 - v0 + 1) as f32),
        yaw,
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn every_window_gets_the_median_of_its_nine_cells() {
        let (h, w) = (7, 9);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            // Few distinct values, so ties are common; a NaN counts as 0.
            let mut z: Vec<f32> = (0..h * w)
                .map(|_| (crate::normal(&mut rng) * 2.0).round())
                .collect();
            z[rng.gen_range(0..h * w)] = f32::NAN;
            let m = median3(&z, h, w);
            for u in 0..h {
                for v in 0..w {
                    let clean = |u: usize, v: usize| {
                        let x = z[u * w + v];
                        if x.is_finite() {
                            x
                        } else {
                            0.0
                        }
                    };
                    let want = if u == 0 || v == 0 || u == h - 1 || v == w - 1 {
                        clean(u, v)
                    } else {
                        let mut win: Vec<f32> = (0..9)
                            .map(|k| clean(u + k / 3 - 1, v + k % 3 - 1))
                            .collect();
                        win.sort_by(f32::total_cmp);
                        win[4]
                    };
                    assert_eq!(m[u * w + v], want, "cell ({u}, {v}) of {z:?}");
                }
            }
        }
    }
}
