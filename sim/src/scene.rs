//! Placing objects in a new scene without overlap, and the named areas of the table.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::camera;

/// A named part of the workspace (facts §1.3). "top" is small x (near the robot), "left"
/// small y, as seen by the front camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub name: &'static str,
    pub x: (f64, f64),
    pub y: (f64, f64),
}

impl Area {
    pub fn center(&self) -> (f64, f64) {
        ((self.x.0 + self.x.1) / 2.0, (self.y.0 + self.y.1) / 2.0)
    }
    /// Inclusive on all edges, as the benchmark.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        (self.x.0..=self.x.1).contains(&x) && (self.y.0..=self.y.1).contains(&y)
    }
}

pub const QUADRANTS: [Area; 4] = [
    Area {
        name: "top left area",
        x: (0.25, 0.5),
        y: (-0.5, 0.0),
    },
    Area {
        name: "top right area",
        x: (0.25, 0.5),
        y: (0.0, 0.5),
    },
    Area {
        name: "bottom left area",
        x: (0.5, 0.75),
        y: (-0.5, 0.0),
    },
    Area {
        name: "bottom right area",
        x: (0.5, 0.75),
        y: (0.0, 0.5),
    },
];

/// Where a new object may go.
#[derive(Debug, Clone, Copy)]
pub enum Region {
    Anywhere,
    Inside(Area),
    /// Centre outside the area by at least the object's radius.
    Outside(Area),
}

/// The discs already taken on the table; new objects keep clear of all of them.
#[derive(Debug, Default)]
pub struct Layout {
    discs: Vec<(f64, f64, f64)>,
}

/// Attempts before a placement is declared impossible.
const TRIES: usize = 400;

impl Layout {
    pub fn reserve(&mut self, x: f64, y: f64, r: f64) {
        self.discs.push((x, y, r));
    }

    /// A free position (x, y) and a yaw for an object whose footprint fits in a disc of
    /// radius `r`, fully inside the workspace, or `None` when none was found.
    pub fn sample(
        &mut self,
        rng: &mut ChaCha8Rng,
        r: f64,
        region: Region,
    ) -> Option<(f64, f64, f64)> {
        let (x, y) = (camera::grid().x(), camera::grid().y());
        let (mut x0, mut x1, mut y0, mut y1) = (x[0] + r, x[1] - r, y[0] + r, y[1] - r);
        if let Region::Inside(a) = region {
            x0 = x0.max(a.x.0 + r);
            x1 = x1.min(a.x.1 - r);
            y0 = y0.max(a.y.0 + r);
            y1 = y1.min(a.y.1 - r);
        }
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        for _ in 0..TRIES {
            let x = rng.gen_range(x0..x1);
            let y = rng.gen_range(y0..y1);
            if let Region::Outside(a) = region {
                let grown = Area {
                    x: (a.x.0 - r, a.x.1 + r),
                    y: (a.y.0 - r, a.y.1 + r),
                    ..a
                };
                if grown.contains(x, y) {
                    continue;
                }
            }
            if self
                .discs
                .iter()
                .all(|&(ox, oy, or)| (ox - x).powi(2) + (oy - y).powi(2) >= (or + r).powi(2))
            {
                self.discs.push((x, y, r));
                let yaw = rng.gen_range(0.0..std::f64::consts::TAU);
                return Some((x, y, yaw));
            }
        }
        None
    }
}
