//! One calibrated RGB-D camera: where it is (its optical frame's pose in the robot's base
//! frame, from `configs/cameras/*.toml`) and how it images (the pinhole model and lens
//! distortion of its `sensor_msgs/CameraInfo`), and the rig file that lists the cameras.

use std::sync::LazyLock;

use serde::Deserialize;

use super::PerceptionError;
use crate::config_file::{ConfigError, ConfigFile};
use crate::msg::{CameraInfo, Header};

/// `configs/cameras/benchmark.toml`, compiled in.
pub const BENCHMARK: &str = include_str!("../../../configs/cameras/benchmark.toml");

/// A rig file: how frames are fused and which cameras there are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rig {
    pub fusion: FusionConfig,
    #[serde(rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Frames of different cameras are fused when their stamps lie within this (s).
    pub tolerance_s: f64,
    /// A camera silent this long (s) is reported and the map waits for it.
    pub stale_s: f64,
    /// Hole-filling passes (each closes one more cell from every side).
    pub fill: usize,
}

/// One camera of a rig.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub name: String,
    /// The frame its images and `CameraInfo` are stamped in: frames in any other are
    /// refused, since this calibration would not apply to them.
    pub frame_id: String,
    /// The optical frame's origin in the base frame (m).
    pub translation: [f64; 3],
    /// The optical frame's orientation in the base frame, a unit quaternion [x, y, z, w].
    pub rotation: [f64; 4],
    /// Topics (under `loho/<robot>/`); default `camera/<name>/color`, `…/depth`, `…/info`.
    pub color: Option<String>,
    pub depth: Option<String>,
    pub info: Option<String>,
    /// What the simulator renders for this camera: an ideal pinhole (`distortion` is not
    /// read from the file).
    pub sim: Option<Intrinsics>,
}

impl Rig {
    /// The benchmark's front, left and right cameras (`configs/cameras/benchmark.toml`).
    pub fn benchmark() -> &'static Rig {
        static R: LazyLock<Rig> = LazyLock::new(|| {
            Rig::parse(BENCHMARK).expect("the shipped configs/cameras/benchmark.toml is valid")
        });
        &R
    }
}

impl ConfigFile for Rig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.cameras.is_empty() {
            return bad("no [[camera]]: a rig needs at least one".into());
        }
        let f = &self.fusion;
        if !(f.tolerance_s >= 0.0 && f.stale_s > 0.0) {
            return bad(format!(
                "fusion.tolerance_s = {}, stale_s = {}: expected tolerance ≥ 0 and stale > 0",
                f.tolerance_s, f.stale_s
            ));
        }
        for (i, c) in self.cameras.iter().enumerate() {
            if self.cameras[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("camera {:?} is listed twice", c.name));
            }
            let n = c.rotation.iter().map(|v| v * v).sum::<f64>().sqrt();
            let unit = (n - 1.0).abs() < 1e-3;
            if !unit || c.translation.iter().any(|v| !v.is_finite()) {
                return bad(format!(
                    "camera {:?}: rotation {:?} is not a unit quaternion [x, y, z, w] \
                     (norm {n:.4}) or translation is not finite",
                    c.name, c.rotation
                ));
            }
        }
        Ok(())
    }
}

impl CameraConfig {
    /// Its colour, depth and info topics.
    pub fn topics(&self) -> [String; 3] {
        let or = |t: &Option<String>, what: &str| {
            t.clone()
                .unwrap_or_else(|| format!("camera/{}/{what}", self.name))
        };
        [
            or(&self.color, "color"),
            or(&self.depth, "depth"),
            or(&self.info, "info"),
        ]
    }

    /// The optical frame in the base frame.
    pub fn pose(&self) -> CameraPose {
        let n = self.rotation.iter().map(|v| v * v).sum::<f64>().sqrt();
        let [x, y, z, w] = self.rotation.map(|v| v / n);
        CameraPose {
            rotation: [
                [
                    1.0 - 2.0 * (y * y + z * z),
                    2.0 * (x * y - z * w),
                    2.0 * (x * z + y * w),
                ],
                [
                    2.0 * (x * y + z * w),
                    1.0 - 2.0 * (x * x + z * z),
                    2.0 * (y * z - x * w),
                ],
                [
                    2.0 * (x * z - y * w),
                    2.0 * (y * z + x * w),
                    1.0 - 2.0 * (x * x + y * y),
                ],
            ],
            translation: self.translation,
        }
    }

    /// The simulated camera's model, or an error naming the camera that has none.
    pub fn sim_intrinsics(&self) -> Result<Intrinsics, PerceptionError> {
        self.sim.ok_or_else(|| PerceptionError::NoSimModel {
            camera: self.name.clone(),
        })
    }
}

/// A camera's optical frame in the base frame: p_base = rotation · p_camera + translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraPose {
    /// Row-major; its columns are the camera's x, y, z axes in the base frame.
    pub rotation: [[f64; 3]; 3],
    pub translation: [f64; 3],
}

impl CameraPose {
    pub fn to_base(&self, p: [f64; 3]) -> [f64; 3] {
        let r = &self.rotation;
        std::array::from_fn(|i| {
            r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2] + self.translation[i]
        })
    }
    pub fn to_camera(&self, p: [f64; 3]) -> [f64; 3] {
        self.direction_to_camera(std::array::from_fn(|i| p[i] - self.translation[i]))
    }
    /// A direction (no translation) of the base frame in the camera frame.
    pub fn direction_to_camera(&self, d: [f64; 3]) -> [f64; 3] {
        let r = &self.rotation;
        std::array::from_fn(|j| r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2])
    }
}

/// The pinhole model and distortion of one camera's images: `plumb_bob` (k1, k2, p1, p2,
/// k3) or `rational_polynomial` (… k4, k5, k6), as OpenCV and ROS define them.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intrinsics {
    pub width: u32,
    pub height: u32,
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
    /// k1, k2, p1, p2, k3, k4, k5, k6 (zeros where the model has fewer).
    #[serde(skip)]
    pub distortion: [f64; 8],
}

impl Intrinsics {
    /// The model a `CameraInfo` gives `camera`, or why it cannot be used.
    pub fn from_info(camera: &str, info: &CameraInfo) -> Result<Self, PerceptionError> {
        let refuse = |why: String| PerceptionError::CameraInfo {
            camera: camera.into(),
            why,
        };
        let k = info.k;
        let (fx, fy, cx, cy) = (k[0], k[4], k[2], k[5]);
        if !(fx > 0.0 && fy > 0.0 && cx.is_finite() && cy.is_finite())
            || info.width == 0
            || info.height == 0
        {
            return Err(refuse(format!(
                "{}x{} with fx {fx}, fy {fy}, cx {cx}, cy {cy}: not a calibrated camera \
                 (run its driver with a calibration)",
                info.width, info.height
            )));
        }
        if info.binning_x > 1 || info.binning_y > 1 || info.roi.width != 0 {
            return Err(refuse(
                "binning or a region of interest is set: publish full images".into(),
            ));
        }
        let max = match info.distortion_model.as_str() {
            "plumb_bob" => 5,
            "rational_polynomial" => 8,
            "" if info.d.iter().all(|&v| v == 0.0) => 0,
            m => {
                return Err(refuse(format!(
                    "distortion model {m:?}: expected plumb_bob or rational_polynomial"
                )))
            }
        };
        if info.d.len() > max || info.d.iter().any(|v| !v.is_finite()) {
            return Err(refuse(format!(
                "{} coefficients {:?} for {:?}",
                info.d.len(),
                info.d,
                info.distortion_model
            )));
        }
        let mut distortion = [0.0; 8];
        distortion[..info.d.len()].copy_from_slice(&info.d);
        Ok(Self {
            width: info.width,
            height: info.height,
            fx,
            fy,
            cx,
            cy,
            distortion,
        })
    }

    /// The `CameraInfo` that describes this model.
    pub fn info(&self, header: Header) -> CameraInfo {
        let (fx, fy, cx, cy) = (self.fx, self.fy, self.cx, self.cy);
        let rational = self.distortion[5..].iter().any(|&v| v != 0.0);
        CameraInfo {
            header,
            height: self.height,
            width: self.width,
            distortion_model: if rational {
                "rational_polynomial"
            } else {
                "plumb_bob"
            }
            .into(),
            d: self.distortion[..if rational { 8 } else { 5 }].to_vec(),
            k: [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
            r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p: [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
            ..Default::default()
        }
    }

    /// Where the lens puts a normalised point (x/z, y/z).
    fn distort(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        let [k1, k2, p1, p2, k3, k4, k5, k6] = self.distortion;
        let r2 = x * x + y * y;
        let radial =
            (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)));
        [
            x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
            y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
        ]
    }

    /// The pixel (column, row) a point in the camera frame lands on, if in front.
    pub fn project(&self, p: [f64; 3]) -> Option<[f64; 2]> {
        (p[2] > 0.0).then(|| {
            let [x, y] = self.distort([p[0] / p[2], p[1] / p[2]]);
            [self.fx * x + self.cx, self.fy * y + self.cy]
        })
    }

    /// The normalised ray (x/z, y/z) seen at pixel (column `u`, row `v`): the lens
    /// inverted by fixed-point iteration, as OpenCV's `undistortPoints` does.
    pub fn unproject(&self, u: f64, v: f64) -> [f64; 2] {
        let d = [(u - self.cx) / self.fx, (v - self.cy) / self.fy];
        if self.distortion == [0.0; 8] {
            return d;
        }
        let mut p = d;
        for _ in 0..20 {
            let q = self.distort(p);
            p = [p[0] + d[0] - q[0], p[1] + d[1] - q[1]];
        }
        p
    }

    /// [`Self::unproject`] for every pixel, row-major: computed once per model, so that
    /// fusing a frame is a multiply per pixel.
    pub fn rays(&self) -> Vec<[f32; 2]> {
        let (w, h) = (self.width as usize, self.height as usize);
        (0..w * h)
            .map(|k| {
                self.unproject((k % w) as f64, (k / w) as f64)
                    .map(|c| c as f32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rig_points_its_cameras_at_the_table() {
        let rig = Rig::benchmark();
        assert_eq!(rig.cameras.len(), 3);
        for c in &rig.cameras {
            // The optical axis of every benchmark camera reaches the table (z = 0) inside
            // x ∈ [0.2, 0.8].
            let p = c.pose();
            let axis = [p.rotation[0][2], p.rotation[1][2], p.rotation[2][2]];
            let t = -p.translation[2] / axis[2];
            let x = p.translation[0] + t * axis[0];
            assert!(t > 0.0 && (0.2..0.8).contains(&x), "{}: {x}", c.name);
            let back = p.to_camera(p.to_base([0.1, -0.2, 0.9]));
            assert!((back[0] - 0.1).abs() + (back[2] - 0.9).abs() < 1e-12);
        }
        let front = rig.cameras[0].pose();
        assert!(
            (front.rotation[1][0] - 1.0).abs() < 1e-5,
            "image right is +y"
        );
        let bad = BENCHMARK.replace("rotation = [-0.653281", "rotation = [-0.9");
        let e = Rig::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("front") && e.contains("unit quaternion"), "{e}");
    }

    #[test]
    fn distortion_round_trips_through_the_inverse() {
        let info = CameraInfo {
            width: 640,
            height: 480,
            distortion_model: "plumb_bob".into(),
            d: vec![-0.28, 0.09, 0.001, -0.0005, -0.01],
            k: [455.0, 0.0, 318.0, 0.0, 452.0, 244.0, 0.0, 0.0, 1.0],
            ..Default::default()
        };
        let cam = Intrinsics::from_info("left", &info).unwrap();
        for p in [[0.3, -0.2, 1.0], [-0.25, 0.18, 0.8], [0.0, 0.0, 2.0]] {
            let [u, v] = cam.project(p).unwrap();
            let [x, y] = cam.unproject(u, v);
            assert!(
                (x - p[0] / p[2]).abs() < 1e-6 && (y - p[1] / p[2]).abs() < 1e-6,
                "{p:?}"
            );
        }
        // The corner of the image is bent by this lens: without the inverse, the ray
        // would be several pixels off.
        let [x, _] = cam.unproject(0.0, 0.0);
        assert!((x * cam.fx + cam.cx).abs() > 5.0);
        assert_eq!(
            Intrinsics::from_info("left", &cam.info(Header::default())).unwrap(),
            cam
        );
        let fisheye = CameraInfo {
            distortion_model: "equidistant".into(),
            ..info
        };
        let e = Intrinsics::from_info("left", &fisheye)
            .unwrap_err()
            .to_string();
        assert!(e.contains("left") && e.contains("equidistant"), "{e}");
    }
}
