//! The RGB-D stem: the top-down heightmap to one token per visible object.
//!
//! The heightmap is split into regions of similar colour and height
//! ([`segment`](crate::segment)), and each region becomes a token from a fixed list of
//! measured features: mean colour, mean and top height, size, fill of its bounding box
//! (a zone's outline is hollow), its centroid in the workspace (raw and as Fourier
//! features) and its yaw modulo 90°. A small MLP maps the features to the model width.
//!
//! Why objects and not patches: token count is the main cost on this CPU, and what the
//! model must do — match "the red block" to a region and put its centroid, to the
//! millimetre, into the action — is one attention hop when the region is a token. A
//! pooled patch stem (50 tokens of 10 cm) trained for 66 minutes copied instructions but
//! never tied a colour word to a place (0.2 % test success; docs/model.md).

use candle_core::{Device, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops;
use crate::segment::{median3, segment, Object};
use crate::ModelError;

/// Frame geometry and stem shape, saved in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StemConfig {
    /// Rows (world y) of the heightmap.
    pub image_height: usize,
    /// Columns (world x) of the heightmap.
    pub image_width: usize,
    /// Object tokens per frame: the largest regions are kept, missing ones are padding.
    pub max_objects: usize,
    /// Width of the feature MLP.
    pub hidden: usize,
}

/// Segmentation and the token inputs depend on the frame's geometry alone, not on weights.
impl StemConfig {
    pub fn tokens(&self) -> usize {
        self.max_objects
    }

    /// The regions of a heightmap (row-major RGB bytes, heights in metres, NaN where
    /// unseen), largest first, at most `max_objects`. A frame of the wrong size is an
    /// error.
    pub fn objects(
        &self,
        rgb: &[u8],
        height: &[f32],
    ) -> std::result::Result<Vec<Object>, ModelError> {
        let (h, w) = (self.image_height, self.image_width);
        if rgb.len() != h * w * 3 || height.len() != h * w {
            return Err(ModelError::FrameSize {
                expected: (h, w),
                rgb: rgb.len(),
                height: height.len(),
            });
        }
        let seen: Vec<bool> = height.iter().map(|z| z.is_finite()).collect();
        let mut objects = segment(rgb, &median3(height, h, w), &seen, h, w);
        objects.sort_by_key(|o| std::cmp::Reverse(o.pixels));
        objects.truncate(self.max_objects);
        Ok(objects)
    }

    /// One network input (1, max_objects, FEATURES): the objects in row-major order of
    /// their centroids, then zero rows.
    pub fn frame(
        &self,
        rgb: &[u8],
        height: &[f32],
        device: &Device,
    ) -> std::result::Result<Tensor, ModelError> {
        let mut objects = self.objects(rgb, height)?;
        objects.sort_by(|a, b| {
            (a.centroid.0, a.centroid.1)
                .partial_cmp(&(b.centroid.0, b.centroid.1))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let (h, w) = (self.image_height, self.image_width);
        let mut data = vec![0f32; self.max_objects * FEATURES];
        for (o, row) in objects.iter().zip(data.chunks_mut(FEATURES)) {
            row.copy_from_slice(&features(o, h, w));
        }
        Ok(Tensor::from_vec(
            data,
            (1, self.max_objects, FEATURES),
            device,
        )?)
    }
}

/// Features per object token (see `features`).
pub const FEATURES: usize = 30;
/// Feature slots read back outside the stem: normalised centroid x, y, top height / 0.1 m,
/// and the presence flag.
pub const SLOT_X: usize = 9;
/// Right after x: [`crate::anchor::Anchor`] reads both at once.
pub const SLOT_Y: usize = SLOT_X + 1;
pub const SLOT_TOP: usize = 4;
/// sin and cos of 4 × yaw (a square's yaw is defined modulo 90°).
pub const SLOT_YAW4: usize = 11;
pub const SLOT_PRESENT: usize = 13;

#[derive(Clone)]
pub struct Stem {
    fc1: Linear,
    fc2: Linear,
}

impl Stem {
    pub fn new(cfg: &StemConfig, d_model: usize, vb: VarBuilder) -> Result<Self> {
        if cfg.max_objects == 0 {
            candle_core::bail!("max_objects must be at least 1");
        }
        Ok(Self {
            fc1: linear(FEATURES, cfg.hidden, vb.pp("fc1"))?,
            fc2: linear(cfg.hidden, d_model, vb.pp("fc2"))?,
        })
    }

    /// Object tokens (batch, max_objects, d_model) from inputs made by [`StemConfig::frame`].
    pub fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        ops::apply(&self.fc2, &ops::apply_relu(&self.fc1, frames)?)
    }

    /// Which object tokens of stem inputs (b, N, FEATURES) lie flat on the table, top
    /// below 1 cm (zones): (b, N), 1 or 0.
    pub fn flat(frames: &Tensor) -> Result<Tensor> {
        let top = frames.narrow(2, SLOT_TOP, 1)?.squeeze(2)?;
        let low = top.lt(0.01 / 0.1)?.to_dtype(frames.dtype())?;
        low * Self::present(frames)?
    }

    /// Which object tokens of stem inputs (b, N, FEATURES) are real objects: (b, N), 1 or 0.
    pub fn present(frames: &Tensor) -> Result<Tensor> {
        frames.narrow(2, SLOT_PRESENT, 1)?.squeeze(2)?.contiguous()
    }
}

/// The token's input: everything scaled to about [−1, 1]; [`SLOT_PRESENT`] is 1 for a
/// real object (padding is all zeros). x and y are the workspace's ±1 scale, the same
/// as the keyposes' ([`crate::keypose::Workspace`]) when the image spans the workspace.
fn features(o: &Object, rows: usize, cols: usize) -> [f32; FEATURES] {
    let x = 2.0 * (o.centroid.1 + 0.5) / cols as f32 - 1.0;
    let y = 2.0 * (o.centroid.0 + 0.5) / rows as f32 - 1.0;
    let mut f = [0f32; FEATURES];
    f[0] = o.mean_rgb[0] / 127.5 - 1.0;
    f[1] = o.mean_rgb[1] / 127.5 - 1.0;
    f[2] = o.mean_rgb[2] / 127.5 - 1.0;
    f[3] = o.mean_z / 0.1;
    f[SLOT_TOP] = o.top_z / 0.1;
    f[5] = (o.pixels as f32).sqrt() / 20.0;
    f[6] = o.pixels as f32 / (o.extent.0 * o.extent.1);
    f[7] = o.extent.0 / 40.0;
    f[8] = o.extent.1 / 40.0;
    f[SLOT_X] = x;
    f[SLOT_Y] = y;
    f[SLOT_YAW4] = (4.0 * o.yaw).sin();
    f[SLOT_YAW4 + 1] = (4.0 * o.yaw).cos();
    f[SLOT_PRESENT] = 1.0;
    for k in 0..4 {
        let w = std::f32::consts::PI * (1 << k) as f32;
        f[14 + 4 * k] = (w * x).sin();
        f[15 + 4 * k] = (w * x).cos();
        f[16 + 4 * k] = (w * y).sin();
        f[17 + 4 * k] = (w * y).cos();
    }
    f
}

#[cfg(test)]
mod tests {
    use candle_core::DType;
    use candle_nn::VarMap;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const ROWS: usize = 320;
    const COLS: usize = 160;
    const TABLE: [u8; 3] = [51, 51, 51];

    fn cfg() -> StemConfig {
        StemConfig {
            image_height: ROWS,
            image_width: COLS,
            max_objects: 8,
            hidden: 16,
        }
    }

    fn stem() -> (Stem, VarMap) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        (Stem::new(&cfg(), 24, vb).unwrap(), vm)
    }

    fn table() -> (Vec<u8>, Vec<f32>) {
        (TABLE.repeat(ROWS * COLS), vec![0.0; ROWS * COLS])
    }

    /// Paints an axis-aligned square of `side` px with its corner at (row, col).
    fn square(
        f: &mut (Vec<u8>, Vec<f32>),
        row: usize,
        col: usize,
        side: usize,
        c: [u8; 3],
        z: f32,
    ) {
        for u in row..row + side {
            for v in col..col + side {
                f.0[(u * COLS + v) * 3..][..3].copy_from_slice(&c);
                f.1[u * COLS + v] = z;
            }
        }
    }
    #[test]
    fn blocks_become_objects_with_their_centroid_colour_and_height() {
        let mut f = table();
        square(&mut f, 100, 40, 13, [255, 87, 89], 0.04); // small red block
        square(&mut f, 200, 100, 19, [78, 121, 167], 0.06); // big blue block
        let objs = cfg().objects(&f.0, &f.1).unwrap();
        assert_eq!(objs.len(), 2);
        let (big, small) = (&objs[0], &objs[1]);
        assert_eq!(
            big.pixels,
            19 * 19 - 4,
            "the median rounds off the four corners"
        );
        assert!((big.centroid.0 - 209.0).abs() < 0.01 && (big.centroid.1 - 109.0).abs() < 0.01);
        assert!((small.mean_rgb[0] - 255.0).abs() < 0.01);
        assert!((small.top_z - 0.04).abs() < 1e-6);
    }

    #[test]
    fn the_table_is_found_in_the_frame_whatever_the_light_and_depth_offset() {
        // Dim bluish light (×0.5, blue ×0.55), depth 6 mm high, a patch no camera saw.
        let light = |c: [u8; 3]| {
            [c[0] as f32 * 0.5, c[1] as f32 * 0.5, c[2] as f32 * 0.55].map(|v| v as u8)
        };
        let mut f = (light(TABLE).repeat(ROWS * COLS), vec![0.006; ROWS * COLS]);
        square(&mut f, 100, 40, 13, light([78, 121, 167]), 0.046); // small blue block
        square(&mut f, 200, 100, 19, light([89, 169, 78]), 0.066); // big green block
        square(&mut f, 10, 10, 30, [0, 0, 0], f32::NAN);
        let objs = cfg().objects(&f.0, &f.1).unwrap();
        assert_eq!(objs.len(), 2, "{objs:?}");
        assert!((objs[0].top_z - 0.06).abs() < 1e-6 && (objs[1].top_z - 0.04).abs() < 1e-6);
        // Read against the simulator's grey 51 with its old fixed threshold of 24 levels,
        // this table (25, 25, 28) would be one object covering the frame.
        assert!(objs.iter().all(|o| o.pixels < 400));
    }

    #[test]
    fn a_small_block_on_a_big_one_of_the_same_colour_is_two_objects_even_with_noise() {
        let mut f = table();
        square(&mut f, 100, 60, 19, [255, 87, 89], 0.06);
        square(&mut f, 103, 63, 13, [255, 87, 89], 0.08);
        // The benchmark's sensor noise: colour σ = 3, depth σ = 3 mm.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for c in f.0.iter_mut() {
            *c = (*c as f32 + 3.0 * crate::normal(&mut rng))
                .round()
                .clamp(0.0, 255.0) as u8;
        }
        for z in f.1.iter_mut() {
            *z = (*z + 0.003 * crate::normal(&mut rng)).max(0.0);
        }
        let objs = cfg().objects(&f.0, &f.1).unwrap();
        let sizes: Vec<usize> = objs.iter().map(|o| o.pixels).collect();
        assert_eq!(objs.len(), 2, "regions of {sizes:?} pixels");
        assert!((objs[1].centroid.0 - 109.0).abs() < 0.5, "{:?}", objs[1]);
    }

    #[test]
    fn a_zone_outline_is_hollow_and_a_rotated_block_reads_its_yaw() {
        let mut f = table();
        // A 38 px zone outline, 2 px wide, 1 mm high.
        for u in 20..58 {
            for v in 20..58 {
                if !(22..56).contains(&u) || !(22..56).contains(&v) {
                    f.0[(u * COLS + v) * 3..][..3].copy_from_slice(&[89, 169, 78]);
                    f.1[u * COLS + v] = 0.001;
                }
            }
        }
        // A block turned 30°: cells whose centre is inside the rotated square.
        let (cu, cv, yaw) = (200.0f32, 80.0f32, 30f32.to_radians());
        for u in 180..220 {
            for v in 60..100 {
                let (dy, dx) = (u as f32 - cu, v as f32 - cv);
                let (lx, ly) = (
                    dx * yaw.cos() + dy * yaw.sin(),
                    -dx * yaw.sin() + dy * yaw.cos(),
                );
                if lx.abs() <= 9.5 && ly.abs() <= 9.5 {
                    f.0[(u * COLS + v) * 3..][..3].copy_from_slice(&[237, 201, 72]);
                    f.1[u * COLS + v] = 0.06;
                }
            }
        }
        let objs = cfg().objects(&f.0, &f.1).unwrap();
        assert_eq!(objs.len(), 2);
        let zone = objs.iter().find(|o| o.top_z < 0.01).unwrap();
        assert!(
            features(zone, ROWS, COLS)[6] < 0.3,
            "outline fills little of its box"
        );
        let block = objs.iter().find(|o| o.top_z > 0.01).unwrap();
        assert!((block.yaw - yaw).abs() < 0.02, "yaw {} vs {yaw}", block.yaw);
    }

    /// Paints the cells between radii `r.0` and `r.1` px of `centre` (row, column).
    fn ring(f: &mut (Vec<u8>, Vec<f32>), centre: (f32, f32), r: (f32, f32), c: [u8; 3], z: f32) {
        for u in 0..ROWS {
            for v in 0..COLS {
                let d = ((u as f32 - centre.0).powi(2) + (v as f32 - centre.1).powi(2)).sqrt();
                if (r.0..r.1).contains(&d) {
                    f.0[(u * COLS + v) * 3..][..3].copy_from_slice(&c);
                    f.1[u * COLS + v] = z;
                }
            }
        }
    }

    #[test]
    fn what_cameras_add_around_objects_does_not_become_objects() {
        let mut f = table();
        // A zone outline, 2 px wide, broken where the table showed through.
        for u in 20..58 {
            for v in 20..58 {
                let edge = !(22..56).contains(&u) || !(22..56).contains(&v);
                let gap = u == 30 || v == 40;
                if edge && !gap {
                    f.0[(u * COLS + v) * 3..][..3].copy_from_slice(&[89, 169, 78]);
                    f.1[u * COLS + v] = 0.001;
                }
            }
        }
        // A block with its side face, darker and lower, seen along one edge.
        square(&mut f, 100, 60, 19, [255, 87, 89], 0.06);
        for v in 60..79 {
            f.0[(119 * COLS + v) * 3..][..3].copy_from_slice(&[120, 40, 42]);
            f.1[119 * COLS + v] = 0.055;
        }
        // A bowl: floor at 5 mm, rim at 29 mm, and between them the far half of the inner
        // wall as the cameras see it, in steps of 8 mm that each join their neighbours.
        let bowl = (200.0, 80.0);
        ring(&mut f, bowl, (0.0, 16.0), [62, 96, 133], 0.005);
        ring(&mut f, bowl, (19.0, 22.0), [78, 121, 167], 0.029);
        for (r, z) in [((16.0, 17.0), 0.013), ((17.0, 19.0), 0.021)] {
            let mut wall = table();
            ring(&mut wall, bowl, r, [70, 108, 150], z);
            for k in (200 * COLS..ROWS * COLS).filter(|&k| wall.1[k] > 0.0) {
                f.0[3 * k..][..3].copy_from_slice(&wall.0[3 * k..][..3]);
                f.1[k] = z;
            }
        }
        // Ravens' lighter table beyond the workspace, caught in the border cells.
        for u in 0..ROWS {
            f.0[(u * COLS + COLS - 1) * 3..][..3].copy_from_slice(&[120, 120, 120]);
        }
        let objs = cfg().objects(&f.0, &f.1).unwrap();
        let tops: Vec<f32> = objs.iter().map(|o| o.top_z).collect();
        assert_eq!(
            objs.len(),
            4,
            "zone, block, bowl rim and floor: tops {tops:?}"
        );
        let zone = objs.iter().find(|o| o.centroid.0 < 60.0).unwrap();
        assert!(zone.pixels > 250, "one zone of {} px", zone.pixels);
        let block = objs.iter().find(|o| o.top_z > 0.05).unwrap();
        assert_eq!(block.mean_rgb[0], 255.0, "no dark side face in the block");
        let floor = objs
            .iter()
            .find(|o| o.centroid.0 > 150.0 && o.mean_z < 0.01);
        let floor = floor.expect("the floor is an object of its own");
        assert!(floor.top_z < 0.01, "the floor is flat: top {}", floor.top_z);
    }

    #[test]
    fn colours_are_white_balanced_on_the_table() {
        // Light ×1.2 red, ×1.1 green, ×0.9 blue on the table and on the blocks' tops.
        let light = |c: [u8; 3]| -> [u8; 3] {
            let gain = [1.2, 1.1, 0.9];
            std::array::from_fn(|k| (gain[k] * c[k] as f32).round().min(255.0) as u8)
        };
        let mut f = (light(TABLE).repeat(ROWS * COLS), vec![0.0; ROWS * COLS]);
        square(&mut f, 100, 40, 19, light([78, 121, 167]), 0.04);
        square(&mut f, 200, 40, 19, light([255, 87, 89]), 0.04); // red clips at 255
        let objs = cfg().objects(&f.0, &f.1).unwrap();
        let rgb = |row: f32| {
            let o = objs.iter().find(|o| (o.centroid.0 - row).abs() < 1.0);
            o.unwrap().mean_rgb
        };
        for (got, want) in [
            (rgb(109.0), [78.0, 121.0, 167.0]),
            (rgb(209.0), [255.0, 87.0, 89.0]),
        ] {
            for c in 0..3 {
                assert!((got[c] - want[c]).abs() < 1.5, "{got:?} against {want:?}");
            }
        }
    }

    #[test]
    fn tokens_are_padded_and_a_wrong_frame_is_an_error() {
        let (stem, _vm) = stem();
        let mut f = table();
        square(&mut f, 10, 10, 13, [255, 87, 89], 0.04);
        let x = cfg().frame(&f.0, &f.1, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[1, 8, FEATURES]);
        let rows: Vec<Vec<f32>> = x.squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(rows[0][13], 1.0);
        assert!(rows[1..].iter().all(|r| r.iter().all(|&v| v == 0.0)));
        assert_eq!(stem.forward(&x).unwrap().dims(), &[1, 8, 24]);
        let e = cfg()
            .frame(&[0; 300], &[0.0; 100], &Device::Cpu)
            .unwrap_err();
        assert!(e.to_string().contains("320×160"), "{e}");
        let nan = vec![f32::NAN; ROWS * COLS];
        assert!(
            cfg().objects(&f.0, &nan).is_ok(),
            "NaN heights are read as the table"
        );
    }

    #[test]
    fn every_stem_weight_gets_a_gradient() {
        let (stem, vm) = stem();
        let mut f = table();
        square(&mut f, 10, 10, 13, [255, 87, 89], 0.04);
        let out = stem
            .forward(&cfg().frame(&f.0, &f.1, &Device::Cpu).unwrap())
            .unwrap();
        let grads = out.sqr().unwrap().mean_all().unwrap().backward().unwrap();
        let vars = vm.all_vars();
        assert_eq!(vars.len(), 4);
        for v in &vars {
            let g = grads.get(v).expect("a gradient");
            let s: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(s > 0.0, "zero gradient for a {:?} tensor", v.shape());
        }
    }
}
