//! Fusing calibrated RGB-D frames into the top-down heightmap, as Ravens builds its own:
//! every valid depth pixel is back-projected along its (undistorted) ray, moved into the
//! base frame, and the highest point over each cell gives the cell its height and colour.
//! Small holes (cells no camera saw, between cells some did) are then filled from their
//! neighbours; larger ones stay unknown — NaN height, black — for the policy to see as such.

use std::borrow::Cow;

use super::camera::{CameraPose, Intrinsics};
use super::grid::{Grid, Heightmap, HEIGHT, WIDTH, Z_MAX};
use super::PerceptionError;
use crate::msg::{encoding, Image};

/// Points this far (m) below the table are outliers, not table: dropped. Points above
/// `Z_MAX` (the arm passing over) are dropped too.
const BELOW_TABLE: f32 = 0.02;

/// A camera's model with its ray per pixel, computed once.
#[derive(Debug, Clone)]
pub struct Lens {
    pub intrinsics: Intrinsics,
    rays: Vec<[f32; 2]>,
}

impl Lens {
    pub fn new(intrinsics: Intrinsics) -> Self {
        Self {
            rays: intrinsics.rays(),
            intrinsics,
        }
    }
}

/// One camera's frame: colour (`rgb8`, row-major) and depth along the optical axis (m; 0
/// or NaN where there is none), registered to each other and to `lens`.
pub struct View<'a> {
    pub lens: &'a Lens,
    pub pose: &'a CameraPose,
    pub rgb: &'a [u8],
    pub depth: &'a [f32],
}

/// The colour bytes (`rgb8`, or `bgr8` swapped) and depth in metres (`32FC1` metres or
/// `16UC1` millimetres) of one camera's frame, checked against each other and its model.
pub fn decode<'a>(
    camera: &str,
    lens: &Intrinsics,
    color: &'a Image,
    depth: &Image,
) -> Result<(Cow<'a, [u8]>, Vec<f32>), PerceptionError> {
    let size = |what: &str, img: &Image| format!("{what} {}x{}", img.width, img.height);
    if (color.width, color.height) != (lens.width, lens.height)
        || (depth.width, depth.height) != (lens.width, lens.height)
    {
        return Err(PerceptionError::Size {
            camera: camera.into(),
            sizes: format!(
                "{}, {}, camera_info {}x{}",
                size("colour", color),
                size("depth", depth),
                lens.width,
                lens.height
            ),
        });
    }
    let image = |source| PerceptionError::Image {
        camera: camera.into(),
        source,
    };
    let rgb = match color.encoding.as_str() {
        "bgr8" => {
            color.check("bgr8", 3).map_err(image)?;
            Cow::Owned(
                color
                    .data
                    .chunks_exact(3)
                    .flat_map(|p| [p[2], p[1], p[0]])
                    .collect(),
            )
        }
        _ => {
            color.check(encoding::RGB8, 3).map_err(image)?;
            Cow::Borrowed(&color.data[..])
        }
    };
    let metres = match depth.encoding.as_str() {
        encoding::U16C1 => {
            depth.check(encoding::U16C1, 2).map_err(image)?;
            depth
                .data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as f32 * 0.001)
                .collect()
        }
        _ => depth.to_f32().map_err(image)?,
    };
    Ok((rgb, metres))
}

/// The heightmap on `grid` the views see together; `fill` hole-filling passes.
pub fn fuse(grid: &Grid, views: &[View], fill: usize) -> Heightmap {
    let (x0, y0) = (grid.x()[0] as f32, grid.y()[0] as f32);
    let inv = (1.0 / grid.pixel()) as f32;
    let mut top = vec![f32::NEG_INFINITY; WIDTH * HEIGHT];
    let mut color = vec![[0u8; 3]; WIDTH * HEIGHT];
    for view in views {
        let r = view.pose.rotation.map(|row| row.map(|v| v as f32));
        let t = view.pose.translation.map(|v| v as f32);
        for (k, (&d, ray)) in view.depth.iter().zip(&view.lens.rays).enumerate() {
            if d.is_nan() || d <= 0.0 {
                continue;
            }
            let p = [ray[0] * d, ray[1] * d, d];
            let z = r[2][0] * p[0] + r[2][1] * p[1] + r[2][2] * p[2] + t[2];
            if !(-BELOW_TABLE..=Z_MAX as f32).contains(&z) {
                continue;
            }
            let x = r[0][0] * p[0] + r[0][1] * p[1] + r[0][2] * p[2] + t[0];
            let y = r[1][0] * p[0] + r[1][1] * p[1] + r[1][2] * p[2] + t[1];
            let (v, u) = ((x - x0) * inv, (y - y0) * inv);
            if !(v >= 0.0 && u >= 0.0 && (v as usize) < WIDTH && (u as usize) < HEIGHT) {
                continue;
            }
            let cell = u as usize * WIDTH + v as usize;
            if z > top[cell] {
                top[cell] = z;
                color[cell] = [view.rgb[3 * k], view.rgb[3 * k + 1], view.rgb[3 * k + 2]];
            }
        }
    }
    let height = top
        .into_iter()
        .map(|z| {
            if z.is_finite() {
                z.clamp(0.0, Z_MAX as f32)
            } else {
                f32::NAN
            }
        })
        .collect();
    let mut hm = Heightmap { color, height };
    fill_holes(&mut hm, fill);
    hm
}

/// Each pass gives every unknown cell with at least three known neighbours (of eight) the
/// height and colour of the neighbour of median height: holes close from their rims, and
/// a cell beside a block's edge takes table or block, never a blend of both.
fn fill_holes(hm: &mut Heightmap, passes: usize) {
    for _ in 0..passes {
        let before = hm.clone();
        let mut changed = false;
        for u in 0..HEIGHT {
            for v in 0..WIDTH {
                if before.height[u * WIDTH + v].is_finite() {
                    continue;
                }
                let mut known = [(0f32, 0usize); 8];
                let mut n = 0;
                for (du, dv) in [
                    (-1, -1),
                    (-1, 0),
                    (-1, 1),
                    (0, -1),
                    (0, 1),
                    (1, -1),
                    (1, 0),
                    (1, 1),
                ] {
                    let (a, b) = (u as isize + du, v as isize + dv);
                    if a < 0 || b < 0 || a >= HEIGHT as isize || b >= WIDTH as isize {
                        continue;
                    }
                    let k = a as usize * WIDTH + b as usize;
                    if before.height[k].is_finite() {
                        known[n] = (before.height[k], k);
                        n += 1;
                    }
                }
                if n >= 3 {
                    known[..n].sort_by(|a, b| a.0.total_cmp(&b.0));
                    let (z, k) = known[n / 2];
                    hm.height[u * WIDTH + v] = z;
                    hm.color[u * WIDTH + v] = before.color[k];
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid::new(&crate::robot::Robot::ur5e().workspace)
    }
    use crate::perception::camera::Rig;

    /// A camera `height` above (0.5, 0) looking straight down (image right = base +x).
    fn overhead(height: f64, distortion: [f64; 8]) -> (Lens, CameraPose) {
        let lens = Lens::new(Intrinsics {
            width: 320,
            height: 240,
            fx: 300.0,
            fy: 300.0,
            cx: 160.0,
            cy: 120.0,
            distortion,
        });
        let pose = CameraPose {
            rotation: [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]],
            translation: [0.5, 0.0, height],
        };
        (lens, pose)
    }

    /// What `lens` at `pose` sees of the grey table with a red cube of side 2·`h` at
    /// (bx, by) on it: each pixel's ray cast, depth with Gaussian noise `sigma` (m).
    fn picture(
        lens: &Lens,
        pose: &CameraPose,
        (bx, by, h): (f64, f64, f64),
        sigma: f64,
    ) -> (Vec<u8>, Vec<f32>) {
        let i = &lens.intrinsics;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut normal = || {
            let mut u = || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (a, b) = (u(), u());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        };
        let (mut rgb, mut depth) = (Vec::new(), Vec::new());
        let o = pose.translation;
        for k in 0..(i.width * i.height) as usize {
            let w = i.width as usize;
            let [x, y] = i.unproject((k % w) as f64, (k / w) as f64);
            let end = pose.to_base([x, y, 1.0]);
            let dir: [f64; 3] = std::array::from_fn(|j| end[j] - o[j]);
            // The ray has z = 1 in the camera frame, so its parameter is the depth.
            let at = |z: f64| (z - o[2]) / dir[2];
            let (t, top) = (at(2.0 * h), at(0.0));
            let (px, py) = (o[0] + t * dir[0], o[1] + t * dir[1]);
            let (t, c) = if (px - bx).abs() <= h && (py - by).abs() <= h {
                (t, [200, 30, 30])
            } else {
                (top, [51, 51, 51])
            };
            rgb.extend(c);
            depth.push((t + sigma * normal()) as f32);
        }
        (rgb, depth)
    }

    fn median(mut v: Vec<f32>) -> f32 {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    }

    /// Median height of the cells of colour `c`, and how many there are.
    fn cells(hm: &Heightmap, c: [u8; 3]) -> (f32, usize) {
        let z: Vec<f32> = (0..hm.color.len())
            .filter(|&k| hm.color[k] == c)
            .map(|k| hm.height[k])
            .collect();
        (median(z.clone()), z.len())
    }

    #[test]
    fn a_plane_and_a_box_reproject_to_their_heights_and_cells() {
        let sigma = 0.002;
        let (lens, pose) = overhead(0.8, [0.0; 8]);
        let cube = (0.55, -0.1, 0.02);
        let (rgb, depth) = picture(&lens, &pose, cube, sigma);
        let view = View {
            lens: &lens,
            pose: &pose,
            rgb: &rgb,
            depth: &depth,
        };
        let grid = grid();
        let hm = fuse(&grid, &[view], 2);
        let (u, v) = grid.world_to_pixel(0.55, -0.1).unwrap();
        assert_eq!(hm.at(u, v).0, [200, 30, 30]);
        let (top, n) = cells(&hm, [200, 30, 30]);
        assert!((top - 0.04).abs() < sigma as f32, "box top {top}");
        // A 4 cm square is 12.8 cells across.
        assert!((150..=215).contains(&n), "{n} cells");
        let (table, _) = cells(&hm, [51, 51, 51]);
        assert!(table.abs() < sigma as f32, "table {table}");
        let (tu, tv) = grid.world_to_pixel(0.55 + 0.03, -0.1).unwrap();
        assert_eq!(hm.at(tu, tv).0, [51, 51, 51]);
    }

    #[test]
    fn a_distorted_lens_is_undone_and_an_oblique_camera_agrees() {
        let bent = [-0.3, 0.1, 0.001, -0.001, 0.0, 0.0, 0.0, 0.0];
        let (lens, pose) = overhead(0.8, bent);
        // Off the axis, where this lens bends rays by about 5 %.
        let cube = (0.7, 0.25, 0.03);
        let (rgb, depth) = picture(&lens, &pose, cube, 0.0);
        let center =
            |lens: &Lens, pose: &CameraPose, rgb: &[u8], depth: &[f32], cube: (f64, f64, f64)| {
                let grid = grid();
                let hm = fuse(
                    &grid,
                    &[View {
                        lens,
                        pose,
                        rgb,
                        depth,
                    }],
                    0,
                );
                let red: Vec<usize> = (0..hm.color.len())
                    .filter(|&k| hm.color[k] == [200, 30, 30])
                    .collect();
                let n = red.len() as f64;
                let u = red.iter().map(|&k| (k / WIDTH) as f64).sum::<f64>() / n;
                let v = red.iter().map(|&k| (k % WIDTH) as f64).sum::<f64>() / n;
                let (x0, y0) = grid.pixel_to_world(0, 0);
                let (dx, dy) = (
                    x0 + v * grid.pixel() - cube.0,
                    y0 + u * grid.pixel() - cube.1,
                );
                dx.abs() + dy.abs()
            };
        let off = center(&lens, &pose, &rgb, &depth, cube);
        assert!(off.abs() < 0.002, "{off}");
        // The same pixels read as if the lens were straight land centimetres off.
        let (straight, _) = overhead(0.8, [0.0; 8]);
        let off = center(&straight, &pose, &rgb, &depth, cube);
        assert!(off.abs() > 0.01, "{off}");
        // The benchmark's front camera, 45° down from 1.06 m away, sees it in place too.
        let front = &Rig::benchmark().cameras[0];
        let (lens, pose) = (Lens::new(front.sim_intrinsics().unwrap()), front.pose());
        let cube = (0.45, -0.1, 0.03);
        let (rgb, depth) = picture(&lens, &pose, cube, 0.0);
        let off = center(&lens, &pose, &rgb, &depth, cube);
        assert!(off.abs() < 0.002, "{off}");
    }

    #[test]
    fn frames_that_disagree_with_their_camera_are_refused() {
        let (lens, _) = overhead(0.8, [0.0; 8]);
        let i = lens.intrinsics;
        let h = crate::msg::Header::default();
        let color = Image::rgb8(h.clone(), 320, 240, vec![0; 320 * 240 * 3]);
        let depth = Image::u16c1(h.clone(), 320, 200, &vec![800; 320 * 200]);
        let e = decode("front", &i, &color, &depth).unwrap_err().to_string();
        assert!(e.contains("front") && e.contains("depth 320x200"), "{e}");
        let depth = Image::u16c1(h.clone(), 320, 240, &vec![800; 320 * 240]);
        let (_, d) = decode("front", &i, &color, &depth).unwrap();
        assert_eq!(d[0], 0.8);
        let mono = Image {
            encoding: "mono8".into(),
            ..color
        };
        let e = decode("front", &i, &mono, &depth).unwrap_err().to_string();
        assert!(e.contains("mono8"), "{e}");
    }
}
