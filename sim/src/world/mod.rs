//! The physical tabletop: rapier bodies for blocks and bowls, flat zones, and the suction
//! tool that the setpoints of [`loho_core::trajectory`] move.
//!
//! The tool is moved kinematically, like Ravens' position-controlled arm. A held object
//! becomes kinematic and rides rigidly with the tip: the ideal fixed joint of the suction
//! cup, without the lag and wobble a soft joint would add. Descents stop at first contact,
//! found by sweeping the tip (a ray) or the held object (its shape) down by the next
//! step's motion, so contact is exact whatever the speed.

use loho_core::pose::{EePose, HOME};
use loho_core::robot::Robot;
use loho_core::trajectory::{resume_index, Phase, Setpoint};
use rapier3d::math::{Pose, Rotation, Vector};
use rapier3d::parry::query::{cast_shapes, ShapeCastOptions};
use rapier3d::prelude::*;

use crate::colors::Color;

mod bodies;
mod execute;
mod rays;
mod suction;

/// The benchmark's arm, the one place the simulator names it: the UR5e of
/// `configs/robots/ur5e.toml` (its workspace is the camera's grid and the keyposes' box,
/// its reach shapes the primitive).
pub fn robot() -> &'static Robot {
    Robot::ur5e()
}

/// Physics step (s): Ravens' default 240 Hz.
pub const DT: f64 = 1.0 / 240.0;
/// Edge of the small and big blocks (m).
pub const SMALL: f64 = 0.04;
pub const BIG: f64 = 0.06;
/// Bowl geometry (m): floor top, rim height and radii.
pub const BOWL_FLOOR: f64 = 0.005;
pub const BOWL_HEIGHT: f64 = 0.035;
pub const BOWL_INNER: f64 = 0.05;
pub const BOWL_OUTER: f64 = 0.058;
/// Visible outline of a zone: outer side and border width (m).
pub const ZONE_OUTLINE: f64 = 0.12;
pub const ZONE_BORDER: f64 = 0.006;

/// Objects settle when no dynamic body moves faster than this (m/s), as in Ravens.
const SETTLE_SPEED: f32 = 0.005;
/// Gap left between a descending tip or held object and what it touches (m).
const CONTACT_GAP: f32 = 0.0005;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    SmallBlock,
    BigBlock,
    Bowl,
    Zone,
}

impl Kind {
    /// Edge length for blocks, footprint for bowls and zones.
    pub fn size(self) -> f64 {
        match self {
            Kind::SmallBlock => SMALL,
            Kind::BigBlock => BIG,
            Kind::Bowl => 2.0 * BOWL_OUTER,
            Kind::Zone => ZONE_OUTLINE,
        }
    }
    pub fn is_block(self) -> bool {
        matches!(self, Kind::SmallBlock | Kind::BigBlock)
    }
    /// Radius of the disc the footprint fits in (half its diagonal).
    pub fn radius(self) -> f64 {
        match self {
            Kind::Bowl => BOWL_OUTER,
            k => k.size() * std::f64::consts::FRAC_1_SQRT_2,
        }
    }
}

/// Position and orientation of an object, in f64 for the task logic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjPose {
    pub pos: [f64; 3],
    /// Quaternion (x, y, z, w).
    pub rot: [f64; 4],
}

impl ObjPose {
    pub fn from_xyz_yaw(x: f64, y: f64, z: f64, yaw: f64) -> Self {
        Self {
            pos: [x, y, z],
            rot: [0.0, 0.0, (yaw / 2.0).sin(), (yaw / 2.0).cos()],
        }
    }
    /// Rotation about +z (tilt discarded).
    pub fn yaw(&self) -> f64 {
        let [x, y, z, w] = self.rot;
        (2.0 * (w * z + x * y)).atan2(1.0 - 2.0 * (y * y + z * z))
    }
    /// Cosine of the angle between the object's +z axis and the world's: 1 when upright.
    pub fn upright(&self) -> f64 {
        let [x, y, _, _] = self.rot;
        1.0 - 2.0 * (x * x + y * y)
    }
    /// A point given in the object's frame, in world coordinates.
    pub fn transform(&self, p: [f64; 3]) -> [f64; 3] {
        let q = self.quat();
        let v = q.mul_vec3(glam_vec(p));
        [
            self.pos[0] + v.x as f64,
            self.pos[1] + v.y as f64,
            self.pos[2] + v.z as f64,
        ]
    }
    /// A world point in the object's frame.
    pub fn inverse_transform(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [p[0] - self.pos[0], p[1] - self.pos[1], p[2] - self.pos[2]];
        let v = self.quat().inverse().mul_vec3(glam_vec(d));
        [v.x as f64, v.y as f64, v.z as f64]
    }
    fn quat(&self) -> Rotation {
        let [x, y, z, w] = self.rot;
        Rotation::from_xyzw(x as f32, y as f32, z as f32, w as f32).normalize()
    }
    fn to_rapier(self) -> Pose {
        Pose::from_parts(glam_vec(self.pos), self.quat())
    }
    fn from_rapier(p: &Pose) -> Self {
        let t = p.translation;
        let r = p.rotation;
        Self {
            pos: [t.x as f64, t.y as f64, t.z as f64],
            rot: [r.x as f64, r.y as f64, r.z as f64, r.w as f64],
        }
    }
}

fn glam_vec(p: [f64; 3]) -> Vector {
    Vector::new(p[0] as f32, p[1] as f32, p[2] as f32)
}

/// One thing on the table.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: Kind,
    pub color: Color,
    /// The rigid body of blocks and bowls; zones have none (they are only painted).
    pub body: Option<RigidBodyHandle>,
    /// Where a zone lies (zones never move).
    pub zone_pose: ObjPose,
}

/// What happened when a primitive ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Picked something and released it at the place.
    Placed,
    /// The pick descent touched nothing that can be lifted.
    GraspFailed,
}

/// The tabletop and the suction tool.
pub struct World {
    phys: PhysicsWorld,
    pub objects: Vec<Object>,
    tip: EePose,
    suction: bool,
    /// Index of the held object and its pose in the tip frame.
    held: Option<(usize, Pose)>,
    /// The object the tool last took hold of, until [`World::take_picked`] reads it.
    picked: Option<usize>,
    time: f64,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let mut phys = PhysicsWorld::new();
        phys.gravity = Vector::new(0.0, 0.0, -9.8);
        let ip = &mut phys.integration_parameters;
        ip.dt = DT as f32;
        // Blocks are centimetres: scale rapier's tolerances down from its metre default,
        // so that allowed penetration is a tenth of a millimetre, not a millimetre.
        ip.length_unit = 0.1;
        ip.normalized_allowed_linear_error = 0.002;
        // Rapier's default contacts (30 Hz) are soft enough that a 4-block tower sinks
        // 3 mm into itself; stiffer contacts keep resting heights within a millimetre.
        ip.contact_softness.natural_frequency = 100.0;
        ip.static_contact_softness.natural_frequency = 120.0;
        ip.num_solver_iterations = 8;
        // The table: a fixed slab whose top is z = 0, larger than the workspace.
        phys.insert(
            RigidBodyBuilder::fixed().translation(Vector::new(0.5, 0.0, -0.05)),
            ColliderBuilder::cuboid(1.0, 1.0, 0.05)
                .friction(1.0)
                .user_data(u128::MAX),
        );
        Self {
            phys,
            objects: Vec::new(),
            tip: HOME,
            suction: false,
            held: None,
            picked: None,
            time: 0.0,
        }
    }

    /// Simulated seconds since the world was made.
    pub fn time(&self) -> f64 {
        self.time
    }

    pub fn tip(&self) -> EePose {
        self.tip
    }

    /// One physics step with the tool at `tip`.
    fn step_to(&mut self, tip: EePose) {
        self.tip = tip;
        if let Some((i, offset)) = self.held {
            let h = self.objects[i].body.expect("held objects have bodies");
            let next = tip_pose(&tip) * offset;
            self.phys.bodies[h].set_next_kinematic_position(next);
        }
        self.phys.step();
        self.time += DT;
    }

    /// Steps with the tool still for `seconds`.
    pub fn wait(&mut self, seconds: f64) {
        let n = (seconds / DT).round() as usize;
        for _ in 0..n {
            self.step_to(self.tip);
        }
    }

    /// Steps until every dynamic body moves slower than 5 mm/s, or `max_s` simulated
    /// seconds pass. Returns whether it settled.
    pub fn settle(&mut self, max_s: f64) -> bool {
        let n = (max_s / DT).ceil() as usize;
        for _ in 0..n {
            self.step_to(self.tip);
            if self.is_still() {
                return true;
            }
        }
        false
    }

    /// Whether every dynamic body has come to rest.
    pub fn is_still(&self) -> bool {
        self.phys.bodies.iter().all(|(_, b)| {
            !b.is_dynamic()
                || b.is_sleeping()
                || (b.linvel().length() < SETTLE_SPEED && b.angvel().length() < 0.1)
        })
    }
}

fn tip_pose(tip: &EePose) -> Pose {
    Pose::from_parts(
        glam_vec([tip.x, tip.y, tip.z]),
        Rotation::from_rotation_z(tip.yaw as f32),
    )
}
