//! `loho heightmap`: the RGB-D cameras of a rig on the bus → the top-down heightmap on
//! `camera/top/color`, `camera/top/depth` and `camera/top/info`, exactly as the simulator
//! publishes them, stamped with the newest source frame.
//!
//! Each camera's newest colour, depth and `CameraInfo` are kept. Once every camera has a
//! new frame (colour and depth within the rig's tolerance of each other) and all those
//! frames lie within the tolerance, they are fused and published. A camera that is silent
//! or out of step for `stale_s` is reported on `diagnostics` and the map waits for it:
//! never a map fused from some of the cameras. Frames in the wrong frame or of the wrong
//! size are refused with a diagnostic that says which camera and why.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loho_core::config::RuntimeConfig;

use loho_core::perception::camera::{CameraConfig, CameraPose, Intrinsics, Rig};
use loho_core::perception::fuse::{self, Lens, View};
use loho_core::perception::grid::{Grid, Heightmap, FRAME, HEIGHT, WIDTH};
use loho_core::perception::PerceptionError;

use crate::bus::{Bus, BusError, Publisher, Qos};
use crate::diagnostics::Diagnostics;
use crate::keys;
use crate::node::{self as runner, Context, Node, NodeSpec};
use loho_core::msg::{CameraInfo, DiagnosticArray, Header, HeightmapInfo, Image};

enum Event {
    Color(usize, Image),
    Depth(usize, Image),
    Info(usize, Box<CameraInfo>),
}

struct Camera {
    cfg: CameraConfig,
    pose: CameraPose,
    lens: Option<Lens>,
    color: Option<Image>,
    depth: Option<Image>,
    /// A colour or depth image came since the last map.
    fresh: bool,
    /// When its last image came (wall clock).
    seen: Option<Instant>,
}

impl Camera {
    /// The stamp of its frame, if colour and depth belong together.
    fn frame(&self, tolerance: f64) -> Option<f64> {
        let (c, d) = (self.color.as_ref()?, self.depth.as_ref()?);
        let (tc, td) = (c.header.stamp.as_secs_f64(), d.header.stamp.as_secs_f64());
        ((tc - td).abs() <= tolerance).then_some(tc.max(td))
    }
}

struct Out {
    color: Publisher<Image>,
    depth: Publisher<Image>,
    info: Publisher<HeightmapInfo>,
}

/// Fuses the rig's cameras until `stop` is set; the node's peers are `runtime`'s.
pub fn run(
    bus: &Bus,
    rig: &Rig,
    runtime: &RuntimeConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), BusError> {
    let stale = Duration::from_secs_f64(rig.fusion.stale_s);
    let spec = NodeSpec::new("heightmap", runtime, stale / 4);
    runner::run(bus, &spec, stop, |inputs| {
        for (i, c) in rig.cameras.iter().enumerate() {
            let [color, depth, info] = c.topics();
            inputs.forward(&color, move |m| Event::Color(i, m))?;
            inputs.forward(&depth, move |m| Event::Depth(i, m))?;
            inputs.forward(&info, move |m| Event::Info(i, Box::new(m)))?;
        }
        let bus = inputs.bus();
        tracing::info!(
            cameras = rig.cameras.len(),
            "heightmap: fusing {}",
            rig.cameras
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Fusion {
            cameras: rig
                .cameras
                .iter()
                .map(|c| Camera {
                    pose: c.pose(),
                    cfg: c.clone(),
                    lens: None,
                    color: None,
                    depth: None,
                    fresh: false,
                    seen: None,
                })
                .collect(),
            tolerance: rig.fusion.tolerance_s,
            stale,
            fill: rig.fusion.fill,
            grid: Grid::new(&runtime.robot.workspace),
            out: Out {
                color: bus.publisher(keys::COLOR, Qos::Frames)?,
                depth: bus.publisher(keys::DEPTH, Qos::Frames)?,
                info: bus.publisher(keys::INFO, Qos::Stream)?,
            },
            diag: inputs.diagnostics(),
            last: None,
            published: Instant::now(),
            reported: Instant::now(),
            errors: Vec::new(),
            newest: 0.0,
        })
    })?;
    Ok(())
}

impl Node for Fusion {
    type Event = Event;
    type Error = BusError;

    /// The newest source frame's stamp.
    fn now(&self) -> f64 {
        self.newest
    }

    fn event(&mut self, _: &mut Context<Event>, e: Event) -> Result<(), BusError> {
        self.handle(e)
    }

    fn tick(&mut self, _: &mut Context<Event>) -> Result<(), BusError> {
        self.check_stale()
    }
}

struct Fusion {
    cameras: Vec<Camera>,
    tolerance: f64,
    stale: Duration,
    fill: usize,
    /// Where the map lies: the robot's workspace.
    grid: Grid,
    out: Out,
    diag: Arc<Diagnostics>,
    /// The last map and its stamp (republished when the cameras repeat their frames).
    last: Option<(f64, Heightmap)>,
    published: Instant,
    reported: Instant,
    /// Errors already reported (each once, not once per frame).
    errors: Vec<String>,
    newest: f64,
}

impl Fusion {
    fn handle(&mut self, e: Event) -> Result<(), BusError> {
        let checked = match e {
            Event::Color(i, m) => self.frame_ok(i, "colour", &m.header.frame_id).map(|()| {
                self.newest = self.newest.max(m.header.stamp.as_secs_f64());
                let c = &mut self.cameras[i];
                (c.color, c.fresh, c.seen) = (Some(m), true, Some(Instant::now()));
            }),
            Event::Depth(i, m) => self.frame_ok(i, "depth", &m.header.frame_id).map(|()| {
                let c = &mut self.cameras[i];
                (c.depth, c.fresh, c.seen) = (Some(m), true, Some(Instant::now()));
            }),
            Event::Info(i, m) => self
                .frame_ok(i, "camera_info", &m.header.frame_id)
                .and_then(|()| Intrinsics::from_info(&self.cameras[i].cfg.name, &m))
                .map(|model| {
                    let c = &mut self.cameras[i];
                    if c.lens.as_ref().map(|l| l.intrinsics) != Some(model) {
                        tracing::info!(camera = c.cfg.name, "heightmap: camera model {model:?}");
                        c.lens = Some(Lens::new(model));
                    }
                }),
        };
        match checked {
            Ok(()) => self.try_fuse(),
            Err(e) => self.error(e.to_string()),
        }
    }

    fn frame_ok(&self, i: usize, what: &str, frame: &str) -> Result<(), PerceptionError> {
        let c = &self.cameras[i].cfg;
        if frame == c.frame_id {
            return Ok(());
        }
        Err(PerceptionError::UnknownFrame {
            camera: c.name.clone(),
            topic: what.into(),
            frame: frame.into(),
            expected: c.frame_id.clone(),
        })
    }

    fn error(&mut self, why: String) -> Result<(), BusError> {
        if self.errors.contains(&why) {
            return Ok(());
        }
        self.diag
            .report(self.newest, DiagnosticArray::ERROR, "camera refused", &why)?;
        self.errors.push(why);
        Ok(())
    }

    /// Fuses and publishes when every camera has a fresh frame and the frames agree.
    fn try_fuse(&mut self) -> Result<(), BusError> {
        if !self.cameras.iter().all(|c| c.fresh && c.lens.is_some()) {
            return Ok(());
        }
        let Some(stamps) = self
            .cameras
            .iter()
            .map(|c| c.frame(self.tolerance))
            .collect::<Option<Vec<f64>>>()
        else {
            return Ok(());
        };
        let newest = stamps.iter().copied().fold(f64::MIN, f64::max);
        let oldest = stamps.iter().copied().fold(f64::MAX, f64::min);
        if newest - oldest > self.tolerance {
            return Ok(());
        }
        if self.last.as_ref().is_none_or(|(t, _)| *t != newest) {
            match self.fuse() {
                Ok(hm) => self.last = Some((newest, hm)),
                Err(e) => return self.error(e.to_string()),
            }
        }
        self.cameras.iter_mut().for_each(|c| c.fresh = false);
        self.published = Instant::now();
        let Some((stamp, hm)) = &self.last else {
            return Ok(());
        };
        let h = Header::new(*stamp, FRAME);
        let (w, ht) = (WIDTH as u32, HEIGHT as u32);
        self.out
            .color
            .put(&Image::rgb8(h.clone(), w, ht, hm.rgb_bytes()))?;
        self.out
            .depth
            .put(&Image::f32c1(h.clone(), w, ht, &hm.height))?;
        self.out.info.put(&self.grid.info(h))
    }

    fn fuse(&self) -> Result<Heightmap, PerceptionError> {
        let frames = self
            .cameras
            .iter()
            .map(|c| {
                let lens = c.lens.as_ref().expect("checked by try_fuse");
                let (color, depth) = (c.color.as_ref(), c.depth.as_ref());
                fuse::decode(
                    &c.cfg.name,
                    &lens.intrinsics,
                    color.expect("checked"),
                    depth.expect("checked"),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let views: Vec<View> = self
            .cameras
            .iter()
            .zip(&frames)
            .map(|(c, (rgb, depth))| View {
                lens: c.lens.as_ref().expect("checked by try_fuse"),
                pose: &c.pose,
                rgb,
                depth,
            })
            .collect();
        Ok(fuse::fuse(&self.grid, &views, self.fill))
    }

    /// When the cameras are sending but no map has gone out for `stale_s`: which camera
    /// holds it up.
    fn check_stale(&mut self) -> Result<(), BusError> {
        let now = Instant::now();
        let sending = self
            .cameras
            .iter()
            .any(|c| c.seen.is_some_and(|t| now - t < self.stale));
        if !sending || now - self.published < self.stale || now - self.reported < self.stale {
            return Ok(());
        }
        self.reported = now;
        let newest = self
            .cameras
            .iter()
            .filter_map(|c| c.frame(self.tolerance))
            .fold(f64::MIN, f64::max);
        let why: Vec<String> = self
            .cameras
            .iter()
            .filter_map(|c| {
                let name = &c.cfg.name;
                match (c.seen, c.frame(self.tolerance), &c.lens) {
                    (None, _, _) => Some(format!("{name}: no image yet")),
                    (_, _, None) => Some(format!("{name}: no camera_info yet")),
                    (Some(t), _, _) if now - t >= self.stale => Some(format!(
                        "{name}: silent for {:.1} s",
                        (now - t).as_secs_f64()
                    )),
                    (_, None, _) => Some(format!("{name}: colour and depth stamps disagree")),
                    (_, Some(s), _) if newest - s > self.tolerance => {
                        Some(format!("{name}: {:.3} s behind", newest - s))
                    }
                    _ => None,
                }
            })
            .collect();
        self.diag.report(
            self.newest,
            DiagnosticArray::WARN,
            "no heightmap: a camera is stale",
            &why.join("; "),
        )
    }
}
