//! The top-down heightmap every policy reads: the robot's workspace in square cells,
//! 320 rows (base y) × 160 columns (base x), each with the colour and the height of the
//! highest surface above it. The simulator draws it directly; real cameras are fused into
//! it ([`super::fuse`]).

use crate::msg::{Header, HeightmapInfo};
use crate::robot::{Robot, Workspace};

/// Rows (base y) and columns (base x) of the heightmap.
pub const HEIGHT: usize = 320;
pub const WIDTH: usize = 160;
/// Heights above this (m) are clipped.
pub const Z_MAX: f64 = 0.28;
/// The frame of the heightmap and of every pose on the bus.
pub const FRAME: &str = "world";

/// The area the heightmap spans: the robot's workspace (`configs/robots/ur5e.toml`), in
/// `HEIGHT` × `WIDTH` square pixels.
pub fn workspace() -> &'static Workspace {
    &Robot::ur5e().workspace
}

/// Metres per pixel.
pub fn pixel() -> f64 {
    let w = workspace();
    (w.x[1] - w.x[0]) / WIDTH as f64
}

/// World x, y of the centre of cell (row `u`, column `v`).
pub fn pixel_to_world(u: usize, v: usize) -> (f64, f64) {
    (
        workspace().x[0] + (v as f64 + 0.5) * pixel(),
        workspace().y[0] + (u as f64 + 0.5) * pixel(),
    )
}

/// The cell (row, column) containing world (x, y), or `None` outside the workspace.
pub fn world_to_pixel(x: f64, y: f64) -> Option<(usize, usize)> {
    // The epsilon keeps points on a cell boundary (0.6 / 0.003125 = 191.99…) in the cell
    // they start.
    let v = ((x - workspace().x[0]) / pixel() + 1e-9).floor();
    let u = ((y - workspace().y[0]) / pixel() + 1e-9).floor();
    (v >= 0.0 && u >= 0.0 && (v as usize) < WIDTH && (u as usize) < HEIGHT)
        .then_some((u as usize, v as usize))
}

/// The heightmap's geometry as published on `camera/top/info`.
pub fn info(header: Header) -> HeightmapInfo {
    let w = workspace();
    HeightmapInfo {
        header,
        x_min: w.x[0],
        x_max: w.x[1],
        y_min: w.y[0],
        y_max: w.y[1],
        z_min: 0.0,
        z_max: Z_MAX,
        pixel_size: pixel(),
        height: HEIGHT as u32,
        width: WIDTH as u32,
    }
}

/// An RGB-D heightmap: row-major, `HEIGHT` rows × `WIDTH` columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Heightmap {
    /// RGB per cell (black where nothing was seen).
    pub color: Vec<[u8; 3]>,
    /// Height above the table per cell (m), in [0, `Z_MAX`]; NaN where no camera saw the
    /// cell (fused maps only).
    pub height: Vec<f32>,
}

impl Heightmap {
    /// Every cell `color` at height 0.
    pub fn flat(color: [u8; 3]) -> Self {
        Self {
            color: vec![color; WIDTH * HEIGHT],
            height: vec![0.0; WIDTH * HEIGHT],
        }
    }
    pub fn at(&self, u: usize, v: usize) -> ([u8; 3], f32) {
        (self.color[u * WIDTH + v], self.height[u * WIDTH + v])
    }
    /// Row-major RGB bytes.
    pub fn rgb_bytes(&self) -> Vec<u8> {
        self.color.iter().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heightmap_spans_the_robot_workspace_in_square_pixels() {
        let w = workspace();
        assert_eq!(pixel(), (w.y[1] - w.y[0]) / HEIGHT as f64);
        assert_eq!(pixel(), 0.003125);
        assert_eq!(
            pixel_to_world(0, 0),
            (w.x[0] + 0.5 * pixel(), w.y[0] + 0.5 * pixel())
        );
        assert_eq!(
            world_to_pixel(w.x[1] - 1e-6, w.y[1] - 1e-6),
            Some((HEIGHT - 1, WIDTH - 1))
        );
        assert_eq!(world_to_pixel(w.x[1] + 1e-3, 0.0), None);
    }
}
