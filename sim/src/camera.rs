//! The top-down orthographic RGB-D heightmap (the benchmark's observation) and a
//! perspective view for people, both rendered on the CPU.
//!
//! The heightmap is rasterised analytically from the scene's shapes, not ray-traced:
//! each object paints only the cells under its footprint, so a frame costs tens of
//! microseconds and evaluation never waits on the camera.

use rand::Rng;

pub use loho_core::perception::grid::{Grid, Heightmap, HEIGHT, WIDTH, Z_MAX};

use crate::colors::TABLE;
use crate::vec3::{add, cross, dot, mul, normalize, sub};
use crate::world::{
    Kind, ObjPose, World, BOWL_FLOOR, BOWL_HEIGHT, BOWL_INNER, BOWL_OUTER, ZONE_BORDER,
    ZONE_OUTLINE,
};

/// The benchmark's heightmap: its arm's workspace ([`crate::world::robot`]) in square
/// cells.
pub fn grid() -> Grid {
    Grid::new(&crate::world::robot().workspace)
}

/// Height of a painted zone outline (m).
const ZONE_Z: f64 = 0.001;

/// Paints cell (u, v) where `z` is at least as high as what is there.
fn paint(hm: &mut Heightmap, u: usize, v: usize, z: f64, c: [u8; 3]) {
    let k = u * WIDTH + v;
    let z = z.clamp(0.0, Z_MAX) as f32;
    if z >= hm.height[k] {
        hm.height[k] = z;
        hm.color[k] = c;
    }
}

/// A standard normal draw (Box–Muller).
pub fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Renders the heightmap of the world as the oracle camera sees it.
pub fn render(world: &World) -> Heightmap {
    let mut hm = Heightmap::flat(TABLE);
    // Zones first: everything else stands on them.
    for (i, o) in world.objects.iter().enumerate() {
        let pose = world.pose(i);
        match o.kind {
            Kind::Zone => raster(
                &mut hm,
                &pose,
                ZONE_OUTLINE * std::f64::consts::FRAC_1_SQRT_2,
                |p| {
                    let h = ZONE_OUTLINE / 2.0;
                    let inner = h - ZONE_BORDER;
                    let inside_outer = p[0].abs() <= h && p[1].abs() <= h;
                    let inside_inner = p[0].abs() < inner && p[1].abs() < inner;
                    (inside_outer && !inside_inner).then_some((ZONE_Z, o.color.rgb))
                },
            ),
            Kind::Bowl => raster(&mut hm, &pose, BOWL_OUTER, |p| {
                let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
                if r > BOWL_OUTER {
                    None
                } else if r > BOWL_INNER {
                    Some((pose.pos[2] + BOWL_HEIGHT, o.color.rgb))
                } else {
                    // The inside is the floor; shade it so the rim reads as a bowl.
                    let c = o.color.rgb.map(|c| (c as f64 * 0.8) as u8);
                    Some((pose.pos[2] + BOWL_FLOOR, c))
                }
            }),
            Kind::SmallBlock | Kind::BigBlock => {
                let h = o.kind.size() / 2.0;
                raster(&mut hm, &pose, h * 3f64.sqrt(), |p| {
                    top_of_box(&pose, h, p).map(|(z, nz)| {
                        (
                            z,
                            o.color.rgb.map(|c| (c as f64 * (0.55 + 0.45 * nz)) as u8),
                        )
                    })
                });
            }
        }
    }
    hm
}

/// Calls `surface` for every cell within `radius` of the object's centre, with the cell
/// centre in the object's frame (for boxes, the world point at the object's height), and
/// paints what it returns.
fn raster(
    hm: &mut Heightmap,
    pose: &ObjPose,
    radius: f64,
    surface: impl Fn([f64; 3]) -> Option<(f64, [u8; 3])>,
) {
    let [cx, cy, _] = pose.pos;
    let g = grid();
    let u0 = ((cy - radius - g.y()[0]) / g.pixel()).floor().max(0.0) as usize;
    let u1 = (((cy + radius - g.y()[0]) / g.pixel()).ceil().max(0.0) as usize).min(HEIGHT);
    let v0 = ((cx - radius - g.x()[0]) / g.pixel()).floor().max(0.0) as usize;
    let v1 = (((cx + radius - g.x()[0]) / g.pixel()).ceil().max(0.0) as usize).min(WIDTH);
    for u in u0..u1 {
        for v in v0..v1 {
            let (x, y) = g.pixel_to_world(u, v);
            let local = pose.inverse_transform([x, y, pose.pos[2]]);
            if let Some((z, c)) = surface(local) {
                paint(hm, u, v, z, c);
            }
        }
    }
}

/// Where a vertical line through the world point whose object-frame coordinates are `p`
/// (taken at the object's centre height) enters a box of half-size `h` from above:
/// the height, and the z component of the face normal there.
fn top_of_box(pose: &ObjPose, h: f64, p: [f64; 3]) -> Option<(f64, f64)> {
    // The line in the object frame: p + t·d, d = world −z in object coordinates.
    let origin = pose.inverse_transform(pose.pos);
    let down = {
        let a = pose.inverse_transform([pose.pos[0], pose.pos[1], pose.pos[2] - 1.0]);
        [a[0] - origin[0], a[1] - origin[1], a[2] - origin[2]]
    };
    // Slab test for the line p + t·down, t ∈ (−∞, ∞); the entry t is the top surface.
    let (mut t0, mut t1) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut axis = 2;
    for k in 0..3 {
        if down[k].abs() < 1e-12 {
            if p[k].abs() > h {
                return None;
            }
            continue;
        }
        let a = (-h - p[k]) / down[k];
        let b = (h - p[k]) / down[k];
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        if lo > t0 {
            t0 = lo;
            axis = k;
        }
        t1 = t1.min(hi);
    }
    if t0 > t1 {
        return None;
    }
    // t is distance downward from the object's centre height.
    let z = pose.pos[2] - t0;
    let nz = down[axis].abs();
    Some((z, nz))
}

/// A perspective picture of the scene, ray-traced through the physics world, from the
/// front, like LoHoRavens' front camera but farther back so the whole workspace fits.
pub fn perspective(world: &World, width: usize, height: usize) -> Vec<[u8; 3]> {
    let eye = [1.35, 0.0, 0.95];
    let target = [0.5, 0.0, 0.0];
    let fwd = normalize(sub(target, eye));
    let right = normalize(cross(fwd, [0.0, 0.0, 1.0]));
    let up = cross(right, fwd);
    let fov = 58f64.to_radians();
    let scale = (fov / 2.0).tan();
    let light = normalize([0.4, 0.3, 1.0]);
    let mut img = vec![[0u8; 3]; width * height];
    for r in 0..height {
        for c in 0..width {
            let sx = (2.0 * (c as f64 + 0.5) / width as f64 - 1.0) * scale;
            let sy = (1.0 - 2.0 * (r as f64 + 0.5) / height as f64) * scale * height as f64
                / width as f64;
            let dir = normalize(add(fwd, add(mul(right, sx), mul(up, sy))));
            let color = match world.cast(eye, dir, 5.0) {
                Some((Some(i), _, n)) => {
                    let shade = 0.35 + 0.65 * dot(n, light).max(0.0);
                    world.objects[i]
                        .color
                        .rgb
                        .map(|ch| (ch as f64 * shade) as u8)
                }
                Some((None, t, _)) => floor_color(world, add(eye, mul(dir, t))),
                None => [200, 200, 210],
            };
            img[r * width + c] = color;
        }
    }
    img
}

/// The table's colour at a point: zone outlines, the dark workspace, lighter outside.
fn floor_color(world: &World, p: [f64; 3]) -> [u8; 3] {
    for (i, o) in world.objects.iter().enumerate() {
        if o.kind == Kind::Zone {
            let l = world.pose(i).inverse_transform([p[0], p[1], 0.0]);
            let h = ZONE_OUTLINE / 2.0;
            let inner = h - ZONE_BORDER;
            if l[0].abs() <= h && l[1].abs() <= h && !(l[0].abs() < inner && l[1].abs() < inner) {
                return o.color.rgb;
            }
        }
    }
    let g = grid();
    if (g.x()[0]..g.x()[1]).contains(&p[0]) && (g.y()[0]..g.y()[1]).contains(&p[1]) {
        TABLE
    } else {
        [120, 120, 120]
    }
}
