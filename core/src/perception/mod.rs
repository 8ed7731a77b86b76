//! Seeing the table: the top-down heightmap every policy reads ([`grid`]), calibrated
//! RGB-D cameras ([`camera`]: pinhole and lens from `CameraInfo`, poses from
//! `configs/cameras/*.toml`), their fusion into that heightmap ([`fuse`]). The node that
//! fuses on the bus is `loho_runtime::heightmap` (`loho heightmap`).

pub mod camera;
pub mod fuse;
pub mod grid;

use thiserror::Error;

use crate::cdr::CdrError;

#[derive(Debug, Error)]
pub enum PerceptionError {
    #[error("camera {camera}: {why}")]
    CameraInfo { camera: String, why: String },
    #[error(
        "camera {camera}: frame {frame:?} on {topic} is not its calibrated frame {expected:?}; \
         fix frame_id in the rig file or the driver's frame names"
    )]
    UnknownFrame {
        camera: String,
        topic: String,
        frame: String,
        expected: String,
    },
    #[error("camera {camera}: sizes disagree ({sizes}); publish depth aligned to colour")]
    Size { camera: String, sizes: String },
    #[error("camera {camera}: {source}")]
    Image { camera: String, source: CdrError },
    #[error("camera {camera} has no [camera.sim] model, so the simulator cannot render it")]
    NoSimModel { camera: String },
}
