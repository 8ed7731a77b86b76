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
//!
//! [`scene`] holds the meshes, [`sensor`] the rasteriser and the sensor model.

mod scene;
mod sensor;

use std::f64::consts::TAU;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use loho_core::perception::camera::{CameraPose, Intrinsics, Rig as RigConfig};
use loho_core::perception::fuse::{self, Lens, View};
use loho_core::perception::grid::Heightmap;
use loho_core::perception::PerceptionError;
use rand::{Rng, SeedableRng};

use crate::camera;
use crate::world::World;

/// Light from the surroundings, as a share of the nominal light's.
const AMBIENT: f64 = 0.4;

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
                let (wx, wy) = (camera::grid().x(), camera::grid().y());
                let (table, rays) = (0..(i.width * i.height) as usize)
                    .map(|k| {
                        let dir = ray(&pose, &i, k);
                        let l = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt();
                        let unit = dir.map(|c| (c / l) as f32);
                        let t = -pose.translation[2] / dir[2];
                        if !(t > 0.0 && t.is_finite()) {
                            return ((0.0, false), unit);
                        }
                        let (x, y) = (
                            pose.translation[0] + t * dir[0],
                            pose.translation[1] + t * dir[1],
                        );
                        let inside = (wx[0]..wx[1]).contains(&x) && (wy[0]..wy[1]).contains(&y);
                        ((t as f32, inside), unit)
                    })
                    .unzip();
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
        let faces = scene::faces(world);
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
        fuse::fuse(&camera::grid(), &views, self.cfg.fusion.fill)
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
