//! The benchmark's RGB-D cameras, simulated with what real ones do to a picture, so that
//! the fused heightmap a policy reads in simulation has the faults it would have on a
//! robot:
//!
//! - **shading**: Lambertian light from one direction plus ambient; per episode the light's
//!   direction (elevation 40–80°), its intensity (×0.8–1.2) and each camera's white
//!   balance (×0.9–1.1 per channel) are drawn anew, and colour has the sensor noise σ = 3;
//! - **depth** along the optical axis in millimetres (`16UC1`, as RealSense drivers
//!   publish it) with structured-light noise σ = 0.08 px · z² / (fx · 55 mm), the D415's
//!   disparity error (3.2 mm at 1 m for fx = 450), and none (0) where the surface is seen
//!   at a grazing angle, often along depth edges, and at 0.2 % of pixels at random.
//!
//! Scenes are rasterised, not ray-traced: each object is a handful of triangles drawn
//! into a depth buffer, the table a plane computed once per camera, so that three
//! 640 × 480 pictures take milliseconds. Not modelled: the arm (like the ideal heightmap,
//! the cameras do not see it), shadows and the projector's own occlusion, specular
//! highlights, motion blur, rolling shutter.

use std::f64::consts::TAU;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use loho_runtime::perception::camera::{CameraPose, Intrinsics, Rig as RigConfig};
use loho_runtime::perception::fuse::{self, Lens, View};
use loho_runtime::perception::grid::{self, Heightmap};
use loho_runtime::perception::PerceptionError;
use rand::{Rng, SeedableRng};

use crate::colors::TABLE;
use crate::world::{
    Kind, World, BOWL_FLOOR, BOWL_HEIGHT, BOWL_INNER, BOWL_OUTER, ZONE_BORDER, ZONE_OUTLINE,
};

/// Colour of the table outside the workspace (the workspace itself is `TABLE`).
const FLOOR: [f32; 3] = [120.0, 120.0, 120.0];
/// Light from the surroundings, as a share of the nominal light's.
const AMBIENT: f64 = 0.4;
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
/// Segments of a bowl's circle.
const SEGMENTS: usize = 24;

/// One picture of one camera: `rgb8` bytes and depth in millimetres (0 = none).
#[derive(Debug, Clone)]
pub struct Shot {
    pub rgb: Vec<u8>,
    pub depth_mm: Vec<u16>,
}

/// The light of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Lighting {
    /// Unit vector toward the light.
    pub toward: [f64; 3],
    pub intensity: f64,
    /// Per camera, per channel gain.
    pub white: Vec<[f64; 3]>,
}

impl Lighting {
    /// The light of the episode with `seed`, for `cameras` cameras.
    pub fn draw(seed: u64, cameras: usize) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x11e6_7a11);
        let azimuth = rng.gen_range(0.0..TAU);
        let elevation = rng.gen_range(40f64..80.0).to_radians();
        Self {
            toward: [
                elevation.cos() * azimuth.cos(),
                elevation.cos() * azimuth.sin(),
                elevation.sin(),
            ],
            intensity: rng.gen_range(0.8..1.2),
            white: (0..cameras)
                .map(|_| std::array::from_fn(|_| rng.gen_range(0.9..1.1)))
                .collect(),
        }
    }

    /// Brightness of a surface with normal `n` (1 for the table under the nominal light,
    /// 60° up).
    fn shade(&self, n: [f32; 3]) -> f32 {
        let diffuse = (1.0 - AMBIENT) / 60f64.to_radians().sin();
        let cos = (0..3).map(|i| n[i] as f64 * self.toward[i]).sum::<f64>();
        (self.intensity * (AMBIENT + diffuse * cos.max(0.0))) as f32
    }
}

/// One simulated camera, with what never changes for it computed once.
struct Camera {
    pose: CameraPose,
    lens: Lens,
    /// Per pixel: depth of the table (m; 0 where the ray misses it) and whether it is
    /// the workspace there (or the floor around it).
    table: Vec<(f32, bool)>,
    /// Per pixel: the unit ray in the base frame.
    rays: Vec<[f32; 3]>,
}

/// The simulated cameras of a rig.
pub struct Rig {
    cameras: Vec<Camera>,
    cfg: RigConfig,
    /// Heightmaps seen through the rig, and the nanoseconds they took (render and fuse).
    seen: AtomicU64,
    spent_ns: AtomicU64,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.cfg.cameras.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Rig").field("cameras", &names).finish()
    }
}

impl Rig {
    /// Every camera of `cfg` as its `[camera.sim]` model says.
    pub fn new(cfg: &RigConfig) -> Result<Self, PerceptionError> {
        let cameras = cfg
            .cameras
            .iter()
            .map(|c| {
                let lens = Lens::new(c.sim_intrinsics()?);
                let pose = c.pose();
                let i = lens.intrinsics;
                let ws = grid::workspace();
                let n = (i.width * i.height) as usize;
                let table = (0..n)
                    .map(|k| {
                        let dir = ray(&pose, &i, k);
                        let t = -pose.translation[2] / dir[2];
                        if !(t > 0.0 && t.is_finite()) {
                            return (0.0, false);
                        }
                        let (x, y) = (
                            pose.translation[0] + t * dir[0],
                            pose.translation[1] + t * dir[1],
                        );
                        let inside =
                            (ws.x[0]..ws.x[1]).contains(&x) && (ws.y[0]..ws.y[1]).contains(&y);
                        (t as f32, inside)
                    })
                    .collect();
                let rays = (0..n)
                    .map(|k| {
                        let v = ray(&pose, &i, k);
                        let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                        v.map(|c| (c / l) as f32)
                    })
                    .collect();
                Ok(Camera {
                    pose,
                    lens,
                    table,
                    rays,
                })
            })
            .collect::<Result<_, PerceptionError>>()?;
        Ok(Self {
            cameras,
            cfg: cfg.clone(),
            seen: AtomicU64::new(0),
            spent_ns: AtomicU64::new(0),
        })
    }

    /// The benchmark's front, left and right cameras.
    pub fn benchmark() -> Arc<Rig> {
        static R: LazyLock<Arc<Rig>> = LazyLock::new(|| {
            Arc::new(Rig::new(RigConfig::benchmark()).expect("the shipped rig has sim models"))
        });
        R.clone()
    }

    /// The rig file it was made from (names, frames, topics, fusion).
    pub fn config(&self) -> &RigConfig {
        &self.cfg
    }
    pub fn len(&self) -> usize {
        self.cameras.len()
    }
    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }
    /// The model of camera `i`, as its `CameraInfo` says.
    pub fn intrinsics(&self, i: usize) -> Intrinsics {
        self.cameras[i].lens.intrinsics
    }

    /// What every camera sees of `world` under `light`; `noise` seeds the sensor noise.
    pub fn shoot(&self, world: &World, light: &Lighting, noise: u64) -> Vec<Shot> {
        let faces = faces(world);
        self.cameras
            .iter()
            .enumerate()
            .map(|(i, cam)| {
                cam.shoot(
                    &faces,
                    light,
                    &light.white[i % light.white.len()],
                    noise ^ (i as u64) << 56,
                )
            })
            .collect()
    }

    /// The heightmap the cameras see of `world` (rendered and fused), counted in
    /// [`Self::ms_per_frame`].
    pub fn observe(&self, world: &World, light: &Lighting, noise: u64) -> Heightmap {
        let t = Instant::now();
        let hm = self.heightmap(&self.shoot(world, light, noise));
        self.spent_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.seen.fetch_add(1, Ordering::Relaxed);
        hm
    }

    /// Mean milliseconds per [`Self::observe`] so far (`None` before the first).
    pub fn ms_per_frame(&self) -> Option<f64> {
        let n = self.seen.load(Ordering::Relaxed);
        (n > 0).then(|| self.spent_ns.load(Ordering::Relaxed) as f64 * 1e-6 / n as f64)
    }

    /// The heightmap fused from `shots` (as `loho heightmap` fuses real cameras).
    pub fn heightmap(&self, shots: &[Shot]) -> Heightmap {
        let depths: Vec<Vec<f32>> = shots
            .iter()
            .map(|s| s.depth_mm.iter().map(|&d| d as f32 * 0.001).collect())
            .collect();
        let views: Vec<View> = self
            .cameras
            .iter()
            .zip(shots)
            .zip(&depths)
            .map(|((c, s), d)| View {
                lens: &c.lens,
                pose: &c.pose,
                rgb: &s.rgb,
                depth: d,
            })
            .collect();
        fuse::fuse(&views, self.cfg.fusion.fill)
    }
}

/// A rig looking at one episode: its cameras and the episode's light.
#[derive(Clone)]
pub struct Cameras {
    pub rig: Arc<Rig>,
    pub light: Lighting,
    seed: u64,
}

impl Cameras {
    /// `rig` in the light of the episode with `seed`.
    pub fn new(rig: Arc<Rig>, seed: u64) -> Self {
        let light = Lighting::draw(seed, rig.len());
        Self { rig, light, seed }
    }
    /// What the cameras see of `world` now (the noise differs with the world's time).
    pub fn shoot(&self, world: &World) -> Vec<Shot> {
        self.rig.shoot(world, &self.light, self.noise(world))
    }
    /// The heightmap fused from what they see now.
    pub fn observe(&self, world: &World) -> Heightmap {
        self.rig.observe(world, &self.light, self.noise(world))
    }
    fn noise(&self, world: &World) -> u64 {
        self.seed ^ world.time().to_bits()
    }
}

/// Pixel `k`'s ray in the base frame, scaled so that its camera-frame z is 1.
fn ray(pose: &CameraPose, i: &Intrinsics, k: usize) -> [f64; 3] {
    let w = i.width as usize;
    let [x, y] = i.unproject((k % w) as f64, (k / w) as f64);
    let r = &pose.rotation;
    std::array::from_fn(|j| r[j][0] * x + r[j][1] * y + r[j][2])
}

/// A flat-shaded triangle in the base frame.
struct Face {
    v: [[f64; 3]; 3],
    normal: [f32; 3],
    albedo: [f32; 3],
}

/// The scene as triangles (the table aside).
fn faces(world: &World) -> Vec<Face> {
    let mut out_faces = Vec::new();
    for (i, o) in world.objects.iter().enumerate() {
        let pose = world.pose(i);
        let albedo = o.color.rgb.map(f32::from);
        let at = |p: [f64; 3]| pose.transform(p);
        // A quad (corners in the object's frame) whose normal points along `out`.
        let mut quad = |c: [[f64; 3]; 4], out: [f64; 3], albedo: [f32; 3]| {
            let c = c.map(at);
            let mut n = normal(c[0], c[1], c[2]);
            let out = sub(at(out), pose.pos);
            if (0..3).map(|k| n[k] as f64 * out[k]).sum::<f64>() < 0.0 {
                n = n.map(|v| -v);
            }
            out_faces.push(Face {
                v: [c[0], c[1], c[2]],
                normal: n,
                albedo,
            });
            out_faces.push(Face {
                v: [c[0], c[2], c[3]],
                normal: n,
                albedo,
            });
        };
        match o.kind {
            Kind::SmallBlock | Kind::BigBlock => {
                let h = o.kind.size() / 2.0;
                for axis in 0..3 {
                    for s in [-1.0, 1.0] {
                        let (a, b) = ((axis + 1) % 3, (axis + 2) % 3);
                        let corner = |da: f64, db: f64| {
                            let mut p = [0.0; 3];
                            (p[axis], p[a], p[b]) = (s * h, da * h, db * h);
                            p
                        };
                        let mut out = [0.0; 3];
                        out[axis] = s;
                        let c = [
                            corner(-1.0, -1.0),
                            corner(1.0, -1.0),
                            corner(1.0, 1.0),
                            corner(-1.0, 1.0),
                        ];
                        quad(c, out, albedo);
                    }
                }
            }
            Kind::Bowl => {
                let inside = albedo.map(|c| c * 0.8);
                let ring = |r: f64, k: usize| {
                    let a = TAU * k as f64 / SEGMENTS as f64;
                    (r * a.cos(), r * a.sin())
                };
                for k in 0..SEGMENTS {
                    let ((x0, y0), (x1, y1)) = (ring(BOWL_OUTER, k), ring(BOWL_OUTER, k + 1));
                    let ((i0, j0), (i1, j1)) = (ring(BOWL_INNER, k), ring(BOWL_INNER, k + 1));
                    let (top, floor) = (BOWL_HEIGHT, BOWL_FLOOR);
                    let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
                    let (up, outward, inward) = ([0.0, 0.0, 1.0], [mx, my, 0.0], [-mx, -my, 0.0]);
                    quad(
                        [[x0, y0, 0.0], [x1, y1, 0.0], [x1, y1, top], [x0, y0, top]],
                        outward,
                        albedo,
                    );
                    quad(
                        [[x0, y0, top], [x1, y1, top], [i1, j1, top], [i0, j0, top]],
                        up,
                        albedo,
                    );
                    quad(
                        [
                            [i0, j0, top],
                            [i1, j1, top],
                            [i1, j1, floor],
                            [i0, j0, floor],
                        ],
                        inward,
                        inside,
                    );
                    quad(
                        [
                            [0.0, 0.0, floor],
                            [i0, j0, floor],
                            [i1, j1, floor],
                            [i1, j1, floor],
                        ],
                        up,
                        inside,
                    );
                }
            }
            Kind::Zone => {
                let (h, b, z) = (ZONE_OUTLINE / 2.0, ZONE_BORDER, 0.001);
                for (x0, x1, y0, y1) in [
                    (-h, h, -h, -h + b),
                    (-h, h, h - b, h),
                    (-h, -h + b, -h + b, h - b),
                    (h - b, h, -h + b, h - b),
                ] {
                    quad(
                        [[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]],
                        [0.0, 0.0, 1.0],
                        albedo,
                    );
                }
            }
        }
    }
    out_faces
}

fn normal(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> [f32; 3] {
    let (u, v) = (sub(b, a), sub(c, a));
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-12);
    n.map(|c| (c / l) as f32)
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

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
    fn shoot(&self, faces: &[Face], light: &Lighting, white: &[f64; 3], seed: u64) -> Shot {
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
            let n = self
                .pose
                .to_camera(add(self.pose.translation, tri.normal.map(f64::from)));
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

fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Twice the signed area of (a, b, p).
fn edge(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}
