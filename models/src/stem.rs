//! The RGB-D stem: the top-down heightmap (colour + height) to a grid of image tokens
//! with 2-D positions.
//!
//! Two strided convolutions: 4×4 pixels to `hidden` channels, then `patch / 4` of those
//! to one token, so a 320×160 frame with 16-pixel (5 cm) patches is 20×10 = 200 tokens,
//! the size candle-notes measured. Token count is the main cost on this CPU; the first
//! convolution still sees every pixel, so a 4 cm block is never lost between patches.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{conv2d, embedding, Conv2d, Conv2dConfig, Embedding, VarBuilder};
use serde::{Deserialize, Serialize};

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
    /// Channels after the first convolution.
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

pub struct Stem {
    conv1: Conv2d,
    conv2: Conv2d,
    row: Embedding,
    col: Embedding,
    cfg: StemConfig,
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
        let strided = |k| Conv2dConfig {
            stride: k,
            ..Default::default()
        };
        let (rows, cols) = cfg.grid();
        Ok(Self {
            conv1: conv2d(4, cfg.hidden, 4, strided(4), vb.pp("conv1"))?,
            conv2: conv2d(cfg.hidden, d_model, p / 4, strided(p / 4), vb.pp("conv2"))?,
            row: embedding(rows, d_model, vb.pp("row"))?,
            col: embedding(cols, d_model, vb.pp("col"))?,
            cfg: cfg.clone(),
        })
    }

    /// Image tokens (batch, rows × cols, d_model), row-major, from frames made by
    /// [`Stem::frames`].
    pub fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(frames)?.relu()?;
        let h = self.conv2.forward(&h)?; // (b, d, rows, cols)
        let (b, d, rows, cols) = h.dims4()?;
        let tokens = h.flatten_from(2)?.transpose(1, 2)?; // (b, rows·cols, d)
        let dev = frames.device();
        let r = self.row.forward(&Tensor::arange(0u32, rows as u32, dev)?)?; // (rows, d)
        let c = self.col.forward(&Tensor::arange(0u32, cols as u32, dev)?)?; // (cols, d)
        let pos = r
            .unsqueeze(1)?
            .broadcast_add(&c.unsqueeze(0)?)?
            .reshape((rows * cols, d))?;
        tokens.broadcast_add(&pos)?.reshape((b, rows * cols, d))
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
        assert_eq!(vars.len(), 6);
        for v in &vars {
            let g = grads.get(v).expect("a gradient");
            let s: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(s > 0.0, "zero gradient for a {:?} tensor", v.shape());
        }
    }
}
