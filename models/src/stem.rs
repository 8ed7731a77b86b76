//! The RGB-D stem: the top-down heightmap (colour + height) to a grid of image tokens
//! with 2-D positions.
//!
//! Each 4×4-pixel cell goes through one small MLP (shared by all cells), and a token is the
//! mean of its patch's cell features, then a linear map: a strided convolution followed by
//! average pooling, written as reshape + matmul (profiling a step showed candle's `conv2d`
//! backward among its largest costs on this CPU). Pooling makes "a red block" the same feature wherever it
//! sits in the patch, which is what attention must match a colour word against; a stem
//! with separate weights per position learned no grounding in 1750 steps.
//!
//! Token count is the main cost on this CPU, so patches are large (32 px = 10 cm: 10×5 =
//! 50 tokens for a 320×160 frame); every pixel still reaches a cell, so a 4 cm block is
//! never lost. Two constant input channels hold each pixel's (x, y) in the workspace
//! (CoordConv): pooled, features gated by colour give the block's centroid, which the
//! action head needs to millimetres (placements are checked to 1 cm).

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{linear, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::backbone::embedding;
use crate::ModelError;

/// Frame geometry and stem shape, saved in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StemConfig {
    /// Rows (world y) of the heightmap.
    pub image_height: usize,
    /// Columns (world x) of the heightmap.
    pub image_width: usize,
    /// Heights are divided by this (m) before entering the network.
    pub z_max: f64,
    /// Pixels per token side; a multiple of 4 dividing both image sides.
    pub patch: usize,
    /// Width of the cell MLP's first layer.
    pub hidden: usize,
}

impl StemConfig {
    /// Rows and columns of the token grid.
    pub fn grid(&self) -> (usize, usize) {
        (
            self.image_height / self.patch,
            self.image_width / self.patch,
        )
    }
    pub fn tokens(&self) -> usize {
        let (r, c) = self.grid();
        r * c
    }
}

/// Channels entering the stem: colour, height, and the pixel's (x, y).
const IN_CHANNELS: usize = 6;

pub struct Stem {
    cell: Linear,
    mix: Linear,
    out: Linear,
    /// (1, 2, height, width): x and y of every pixel in [−1, 1].
    coords: Tensor,
    row: Embedding,
    col: Embedding,
    cfg: StemConfig,
}

/// (b, h, w, c) → (b, h/k, w/k, k·k·c): each k×k block of cells becomes one cell.
fn group(x: &Tensor, k: usize) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    x.reshape((b, h / k, k, w / k, k * c))?
        .transpose(2, 3)?
        .reshape((b, h / k, w / k, k * k * c))
}

impl Stem {
    pub fn new(cfg: &StemConfig, d_model: usize, vb: VarBuilder) -> Result<Self> {
        let p = cfg.patch;
        let divides = |n: usize| n.is_multiple_of(p);
        if p < 4 || !p.is_multiple_of(4) || !divides(cfg.image_height) || !divides(cfg.image_width)
        {
            candle_core::bail!(
                "patch {p} must be a multiple of 4 dividing {}×{}",
                cfg.image_height,
                cfg.image_width
            );
        }
        let (rows, cols) = cfg.grid();
        let (h, w) = (cfg.image_height, cfg.image_width);
        let lin = |n: usize, i: usize| 2.0 * (i as f32 + 0.5) / n as f32 - 1.0;
        let xs: Vec<f32> = (0..h * w).map(|i| lin(w, i % w)).collect();
        let ys: Vec<f32> = (0..h * w).map(|i| lin(h, i / w)).collect();
        let coords = Tensor::cat(
            &[
                Tensor::from_vec(xs, (1, 1, h, w), vb.device())?,
                Tensor::from_vec(ys, (1, 1, h, w), vb.device())?,
            ],
            1,
        )?;
        Ok(Self {
            cell: linear(16 * IN_CHANNELS, cfg.hidden, vb.pp("cell"))?,
            mix: linear(cfg.hidden, d_model, vb.pp("mix"))?,
            out: linear(d_model, d_model, vb.pp("out"))?,
            coords,
            row: embedding(rows, d_model, vb.pp("row"))?,
            col: embedding(cols, d_model, vb.pp("col"))?,
            cfg: cfg.clone(),
        })
    }

    /// Image tokens (batch, rows × cols, d_model), row-major, from frames made by
    /// [`Stem::frame`].
    pub fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        let b = frames.dim(0)?;
        let coords = self.coords.repeat((b, 1, 1, 1))?;
        let x = Tensor::cat(&[frames, &coords], 1)?.permute((0, 2, 3, 1))?; // (b, h, w, 6)
        let h = self.cell.forward(&group(&x, 4)?)?.relu()?;
        let h = self.mix.forward(&h)?.relu()?; // (b, h/4, w/4, d): one feature per cell
        let (_, hc, wc, d) = h.dims4()?;
        let g = self.cfg.patch / 4;
        let (rows, cols) = (hc / g, wc / g);
        let pooled = (h.reshape((b, rows, g, cols, g, d))?.sum(4)?.sum(2)? / (g * g) as f64)?;
        let h = self.out.forward(&pooled)?; // (b, rows, cols, d)
        let tokens = h.reshape((b, rows * cols, d))?;
        let dev = frames.device();
        let r = self.row.forward(&Tensor::arange(0u32, rows as u32, dev)?)?; // (rows, d)
        let c = self.col.forward(&Tensor::arange(0u32, cols as u32, dev)?)?; // (cols, d)
        let pos = r
            .unsqueeze(1)?
            .broadcast_add(&c.unsqueeze(0)?)?
            .reshape((rows * cols, d))?;
        tokens.broadcast_add(&pos)
    }

    /// One network input (1, 4, height, width) from a heightmap: colour scaled to
    /// [−0.5, 0.5], height divided by `z_max`. A frame of the wrong size is an error.
    pub fn frame(
        &self,
        rgb: &[u8],
        height: &[f32],
        device: &Device,
    ) -> std::result::Result<Tensor, ModelError> {
        let (h, w) = (self.cfg.image_height, self.cfg.image_width);
        if rgb.len() != h * w * 3 || height.len() != h * w {
            return Err(ModelError::FrameSize {
                expected: (h, w),
                rgb: rgb.len(),
                height: height.len(),
            });
        }
        let mut data = Vec::with_capacity(4 * h * w);
        for ch in 0..3 {
            data.extend(
                rgb.iter()
                    .skip(ch)
                    .step_by(3)
                    .map(|&v| v as f32 / 255.0 - 0.5),
            );
        }
        let z = self.cfg.z_max as f32;
        data.extend(
            height
                .iter()
                .map(|&v| if v.is_finite() { v / z } else { 0.0 }),
        );
        Ok(Tensor::from_vec(data, (1, 4, h, w), device)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::DType;
    use candle_nn::VarMap;

    use super::*;

    fn cfg() -> StemConfig {
        StemConfig {
            image_height: 320,
            image_width: 160,
            z_max: 0.28,
            patch: 16,
            hidden: 8,
        }
    }

    /// A stem with fresh weights, and the map holding them.
    fn stem() -> (Stem, VarMap) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        (Stem::new(&cfg(), 24, vb).unwrap(), vm)
    }

    #[test]
    fn a_frame_becomes_200_tokens_and_a_wrong_frame_is_an_error() {
        let (stem, _vm) = stem();
        let n = 320 * 160;
        let f = stem
            .frame(&vec![128; 3 * n], &vec![0.04; n], &Device::Cpu)
            .unwrap();
        assert_eq!(f.dims(), &[1, 4, 320, 160]);
        let t = stem.forward(&f).unwrap();
        assert_eq!(t.dims(), &[1, 200, 24]);
        assert_eq!(cfg().tokens(), 200);
        let e = stem
            .frame(&vec![0; 3 * 100], &vec![0.0; 100], &Device::Cpu)
            .unwrap_err();
        assert!(e.to_string().contains("320×160"), "{e}");
        assert!(stem
            .frame(&vec![0; 3 * n], &vec![0.0; n - 1], &Device::Cpu)
            .is_err());
    }

    #[test]
    fn a_block_changes_only_its_own_token() {
        let (stem, _vm) = stem();
        let n = 320 * 160;
        let rgb = vec![51u8; 3 * n];
        let mut height = vec![0.0f32; n];
        let base = stem
            .forward(&stem.frame(&rgb, &height, &Device::Cpu).unwrap())
            .unwrap();
        // A 4 cm block (13 px) inside the patch at token row 5, column 3.
        for u in 81..94 {
            for v in 49..62 {
                height[u * 160 + v] = 0.04;
            }
        }
        let with = stem
            .forward(&stem.frame(&rgb, &height, &Device::Cpu).unwrap())
            .unwrap();
        let diff = (with - base)
            .unwrap()
            .abs()
            .unwrap()
            .sum(2)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff: Vec<f32> = diff.to_vec1().unwrap();
        let changed: Vec<usize> = (0..200).filter(|&i| diff[i] > 0.0).collect();
        assert_eq!(changed, vec![5 * 10 + 3]);
    }

    #[test]
    fn bad_patch_is_an_error() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        assert!(Stem::new(&StemConfig { patch: 12, ..cfg() }, 24, vb).is_err());
    }

    #[test]
    fn every_stem_weight_gets_a_gradient() {
        let (stem, vm) = stem();
        let n = 320 * 160;
        let rgb: Vec<u8> = (0..3 * n).map(|i| (i % 251) as u8).collect();
        let height: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.01).collect();
        let out = stem
            .forward(&stem.frame(&rgb, &height, &Device::Cpu).unwrap())
            .unwrap();
        let grads = out.sqr().unwrap().mean_all().unwrap().backward().unwrap();
        let vars = vm.all_vars();
        assert_eq!(vars.len(), 8);
        for v in &vars {
            let g = grads.get(v).expect("a gradient");
            let s: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(s > 0.0, "zero gradient for a {:?} tensor", v.shape());
        }
    }
}
