//! The top-down heightmap every policy reads: the robot's workspace in square cells,
//! 320 rows (base y) × 160 columns (base x), each with the colour and the height of the
//! highest surface above it. The simulator draws it directly; real cameras are fused into
//! it ([`super::fuse`]).

use crate::msg::{Header, HeightmapInfo};
use crate::robot::Workspace;

/// Rows (base y) and columns (base x) of the heightmap.
pub const HEIGHT: usize = 320;
pub const WIDTH: usize = 160;
/// Heights above this (m) are clipped.
pub const Z_MAX: f64 = 0.28;
/// The frame of the heightmap and of every pose on the bus.
pub const FRAME: &str = "world";

/// Where the heightmap lies: the robot's workspace (x and y of its robot file), in
/// `HEIGHT` × `WIDTH` square cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    x: [f64; 2],
    y: [f64; 2],
}

impl Grid {
    /// The grid over `workspace`.
    pub fn new(workspace: &Workspace) -> Self {
        Self {
            x: workspace.x,
            y: workspace.y,
        }
    }

    /// World x and y of the map's edges.
    pub fn x(&self) -> [f64; 2] {
        self.x
    }
    pub fn y(&self) -> [f64; 2] {
        self.y
    }

    /// Metres per pixel.
    pub fn pixel(&self) -> f64 {
        (self.x[1] - self.x[0]) / WIDTH as f64
    }

    /// World x, y of the centre of cell (row `u`, column `v`).
    pub fn pixel_to_world(&self, u: usize, v: usize) -> (f64, f64) {
        (
            self.x[0] + (v as f64 + 0.5) * self.pixel(),
            self.y[0] + (u as f64 + 0.5) * self.pixel(),
        )
    }

    /// The cell (row, column) containing world (x, y), or `None` outside the workspace.
    pub fn world_to_pixel(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        // The epsilon keeps points on a cell boundary (0.6 / 0.003125 = 191.99…) in the
        // cell they start.
        let v = ((x - self.x[0]) / self.pixel() + 1e-9).floor();
        let u = ((y - self.y[0]) / self.pixel() + 1e-9).floor();
        (v >= 0.0 && u >= 0.0 && (v as usize) < WIDTH && (u as usize) < HEIGHT)
            .then_some((u as usize, v as usize))
    }

    /// The heightmap's geometry as published on `camera/top/info`.
    pub fn info(&self, header: Header) -> HeightmapInfo {
        HeightmapInfo {
            header,
            x_min: self.x[0],
            x_max: self.x[1],
            y_min: self.y[0],
            y_max: self.y[1],
            z_min: 0.0,
            z_max: Z_MAX,
            pixel_size: self.pixel(),
            height: HEIGHT as u32,
            width: WIDTH as u32,
        }
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
        let w = &crate::robot::Robot::ur5e().workspace;
        let g = Grid::new(w);
        assert_eq!(g.pixel(), (w.y[1] - w.y[0]) / HEIGHT as f64);
        assert_eq!(g.pixel(), 0.003125);
        assert_eq!(
            g.pixel_to_world(0, 0),
            (w.x[0] + 0.5 * g.pixel(), w.y[0] + 0.5 * g.pixel())
        );
        assert_eq!(
            g.world_to_pixel(w.x[1] - 1e-6, w.y[1] - 1e-6),
            Some((HEIGHT - 1, WIDTH - 1))
        );
        assert_eq!(g.world_to_pixel(w.x[1] + 1e-3, 0.0), None);
    }
}
