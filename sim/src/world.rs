//! The physical tabletop: rapier bodies for blocks and bowls, flat zones, and the suction
//! tool that the setpoints of [`loho_core::trajectory`] move.
//!
//! The tool is moved kinematically, like Ravens' position-controlled arm. A held object
//! becomes kinematic and rides rigidly with the tip: the ideal fixed joint of the suction
//! cup, without the lag and wobble a soft joint would add. Descents stop at first contact,
//! found by sweeping the tip (a ray) or the held object (its shape) down by the next
//! step's motion, so contact is exact whatever the speed.

use loho_core::pose::{EePose, HOME};
use loho_core::trajectory::{resume_index, Phase, Setpoint};
use rapier3d::math::{Pose, Rotation, Vector};
use rapier3d::parry::query::{cast_shapes, ShapeCastOptions};
use rapier3d::prelude::*;

use crate::colors::Color;

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

    pub fn suction(&self) -> bool {
        self.suction
    }

    pub fn held(&self) -> Option<usize> {
        self.held.map(|(i, _)| i)
    }

    /// Adds a block resting (or hovering, if `z` says so) at the pose; returns its index.
    pub fn add_block(&mut self, kind: Kind, color: Color, pose: ObjPose) -> usize {
        assert!(kind.is_block());
        let h = (kind.size() / 2.0) as f32;
        let body = RigidBodyBuilder::dynamic()
            .pose(pose.to_rapier())
            .can_sleep(true)
            .ccd_enabled(false);
        let idx = self.objects.len();
        let collider = ColliderBuilder::cuboid(h, h, h)
            // 0.01 kg, as Ravens' blocks.
            .density((0.01 / kind.size().powi(3)) as f32)
            .friction(1.0)
            .restitution(0.0)
            .user_data(idx as u128);
        let (handle, _) = self.phys.insert(body, collider);
        self.objects.push(Object {
            kind,
            color,
            body: Some(handle),
            zone_pose: pose,
        });
        idx
    }

    /// Adds a bowl standing on the table. Task bowls are `fixed`; Ravens' distractor bowls
    /// are free to move (and can be picked).
    pub fn add_bowl(&mut self, color: Color, x: f64, y: f64, yaw: f64, fixed: bool) -> usize {
        let idx = self.objects.len();
        let pose = ObjPose::from_xyz_yaw(x, y, 0.0, yaw);
        let body = if fixed {
            RigidBodyBuilder::fixed()
        } else {
            RigidBodyBuilder::dynamic()
        }
        .pose(pose.to_rapier());
        // A floor disc and a ring of wall slabs: a concave bowl made of convex parts.
        let mut parts = vec![(
            Pose::translation(0.0, 0.0, (BOWL_FLOOR / 2.0) as f32),
            SharedShape::cylinder((BOWL_FLOOR / 2.0) as f32, BOWL_INNER as f32),
        )];
        let n = 16;
        let mid = ((BOWL_INNER + BOWL_OUTER) / 2.0) as f32;
        let half_w = (std::f64::consts::PI * BOWL_OUTER / n as f64) as f32;
        for k in 0..n {
            let a = k as f32 * std::f32::consts::TAU / n as f32;
            parts.push((
                Pose::from_parts(
                    Vector::new(mid * a.cos(), mid * a.sin(), (BOWL_HEIGHT / 2.0) as f32),
                    Rotation::from_rotation_z(a),
                ),
                SharedShape::cuboid(
                    ((BOWL_OUTER - BOWL_INNER) / 2.0) as f32,
                    half_w,
                    (BOWL_HEIGHT / 2.0) as f32,
                ),
            ));
        }
        // Cylinders in parry stand along y: turn the floor disc upright.
        parts[0].0.rotation = Rotation::from_rotation_x(std::f32::consts::FRAC_PI_2);
        let collider = ColliderBuilder::compound(parts)
            .density(200.0)
            .friction(1.0)
            .user_data(idx as u128);
        let (handle, _) = self.phys.insert(body, collider);
        self.objects.push(Object {
            kind: Kind::Bowl,
            color,
            body: Some(handle),
            zone_pose: pose,
        });
        idx
    }

    /// Adds a zone: a painted square outline, no collider.
    pub fn add_zone(&mut self, color: Color, x: f64, y: f64, yaw: f64) -> usize {
        self.objects.push(Object {
            kind: Kind::Zone,
            color,
            body: None,
            zone_pose: ObjPose::from_xyz_yaw(x, y, 0.0, yaw),
        });
        self.objects.len() - 1
    }

    /// Current pose of an object.
    pub fn pose(&self, i: usize) -> ObjPose {
        let o = &self.objects[i];
        match o.body {
            Some(h) => ObjPose::from_rapier(self.phys.bodies[h].position()),
            None => o.zone_pose,
        }
    }

    /// Moves an object (for building scenes by hand); it starts at rest.
    pub fn set_pose(&mut self, i: usize, pose: ObjPose) {
        if let Some(h) = self.objects[i].body {
            let b = &mut self.phys.bodies[h];
            b.set_position(pose.to_rapier(), true);
            b.set_linvel(Vector::ZERO, true);
            b.set_angvel(Vector::ZERO, true);
        } else {
            self.objects[i].zone_pose = pose;
        }
    }

    /// Where a collider is now. Read from its body rather than from rapier's collider
    /// pose or broad phase, which catch up only at the next step: queries must also see
    /// objects just added or moved by hand.
    fn collider_pose(&self, c: &Collider) -> Pose {
        let body = *self.phys.bodies[c.parent().expect("every collider has a body")].position();
        match c.position_wrt_parent() {
            Some(rel) => body * *rel,
            None => body,
        }
    }

    /// The nearest collider along a ray (unit direction). A scan over all colliders, a
    /// few dozen on a tabletop, each first tested against its bounding sphere.
    fn ray_hit(&self, ray: &Ray, max: f32) -> Option<(ColliderHandle, RayIntersection)> {
        self.phys
            .colliders
            .iter()
            .filter_map(|(h, c)| {
                let pose = self.collider_pose(c);
                let sphere = c.shape().compute_bounding_sphere(&pose);
                let oc = sphere.center - ray.origin;
                let along = oc.dot(ray.dir);
                let r2 = sphere.radius * sphere.radius;
                if along < -sphere.radius || oc.length_squared() - along * along > r2 {
                    return None;
                }
                c.shape()
                    .cast_ray_and_get_normal(&pose, ray, max, true)
                    .map(|hit| (h, hit))
            })
            .min_by(|a, b| a.1.time_of_impact.total_cmp(&b.1.time_of_impact))
    }

    /// Sets an object's velocity (for knocking things over in tests).
    pub fn push(&mut self, i: usize, linvel: [f64; 3]) {
        if let Some(h) = self.objects[i].body {
            self.phys.bodies[h].set_linvel(glam_vec(linvel), true);
        }
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

    /// Distance (m) a downward move of up to `dz` can go before first contact, and what
    /// it touches; `None` when the whole move is free.
    fn contact_below(&self, dz: f32) -> Option<(f32, Option<usize>)> {
        let look = dz + CONTACT_GAP;
        match self.held {
            None => {
                let ray = Ray::new(glam_vec([self.tip.x, self.tip.y, self.tip.z]), -Vector::Z);
                let (h, hit) = self.ray_hit(&ray, look)?;
                Some((
                    (hit.time_of_impact - CONTACT_GAP).max(0.0),
                    self.object_of(h),
                ))
            }
            Some((i, _)) => {
                let body = self.objects[i].body.expect("held objects have bodies");
                let b = &self.phys.bodies[body];
                let held = &self.phys.colliders[b.colliders()[0]];
                let opts = ShapeCastOptions {
                    max_time_of_impact: look,
                    target_distance: 0.0,
                    stop_at_penetration: false,
                    compute_impact_geometry_on_penetration: false,
                };
                self.phys
                    .colliders
                    .iter()
                    .filter(|(_, c)| c.parent() != Some(body))
                    .filter_map(|(h, c)| {
                        cast_shapes(
                            b.position(),
                            -Vector::Z,
                            held.shape(),
                            &self.collider_pose(c),
                            Vector::ZERO,
                            c.shape(),
                            opts,
                        )
                        .ok()
                        .flatten()
                        .map(|hit| (h, hit.time_of_impact))
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(h, toi)| ((toi - CONTACT_GAP).max(0.0), self.object_of(h)))
            }
        }
    }

    fn object_of(&self, h: ColliderHandle) -> Option<usize> {
        let d = self.phys.colliders[h].user_data;
        (d != u128::MAX).then_some(d as usize)
    }

    fn attach(&mut self, i: usize) -> bool {
        let Some(h) = self.objects[i].body else {
            return false;
        };
        let b = &mut self.phys.bodies[h];
        if !b.is_dynamic() {
            return false;
        }
        let offset = tip_pose(&self.tip).inverse() * *b.position();
        b.set_body_type(RigidBodyType::KinematicPositionBased, true);
        self.held = Some((i, offset));
        true
    }

    fn release(&mut self) {
        if let Some((i, _)) = self.held.take() {
            let h = self.objects[i].body.expect("held objects have bodies");
            let b = &mut self.phys.bodies[h];
            b.set_body_type(RigidBodyType::Dynamic, true);
            b.set_linvel(Vector::ZERO, true);
            b.set_angvel(Vector::ZERO, true);
        }
        self.suction = false;
    }

    /// One physics step with the tool commanded to `target`, as a driver streaming
    /// setpoints moves it: a downward move stops at first contact, suction switching on
    /// attaches what the tip touches (within 2.5 mm), switching off drops what it holds.
    pub fn servo(&mut self, target: EePose, suction: bool) {
        let mut target = target;
        if target.z < self.tip.z {
            if let Some((free, _)) = self.contact_below((self.tip.z - target.z) as f32) {
                target.z = self.tip.z - free as f64;
            }
        }
        if suction && !self.suction {
            self.suction = true;
            if let Some((_, Some(o))) = self.contact_below(0.002) {
                self.attach(o);
            }
        } else if !suction && self.suction {
            self.release();
        }
        self.step_to(target);
    }

    /// Runs one pick-and-place primitive, one setpoint per physics step, then lets the
    /// scene settle (at most `settle_s` simulated seconds).
    pub fn execute(&mut self, setpoints: &[Setpoint], settle_s: f64) -> Outcome {
        let mut outcome = Outcome::GraspFailed;
        let mut i = 0;
        while i < setpoints.len() {
            let sp = setpoints[i];
            let mut target = sp.pose;
            if sp.phase.is_descent() && target.z < self.tip.z {
                let dz = (self.tip.z - target.z) as f32;
                if let Some((free, what)) = self.contact_below(dz) {
                    target.z = self.tip.z - free as f64;
                    self.step_to(target);
                    let next = resume_index(setpoints, i, target.z);
                    if sp.phase == Phase::DescendPick {
                        self.suction = true;
                        if !what.is_some_and(|o| self.attach(o)) {
                            return self.finish_failed(setpoints, next, settle_s);
                        }
                    } else {
                        self.release();
                        outcome = Outcome::Placed;
                    }
                    i = next;
                    continue;
                }
            }
            // A descent that ends without contact: suction switches where the phase ends.
            if sp.phase == Phase::Lift && self.held.is_none() {
                self.suction = true;
                return self.finish_failed(setpoints, i, settle_s);
            }
            if sp.phase == Phase::Retreat && self.held.is_some() {
                self.release();
                outcome = Outcome::Placed;
            }
            self.step_to(target);
            i += 1;
        }
        self.release();
        self.settle(settle_s);
        outcome
    }

    /// After a failed grasp: lift back up (the rest of the lift phase), release, settle.
    fn finish_failed(&mut self, setpoints: &[Setpoint], from: usize, settle_s: f64) -> Outcome {
        for sp in setpoints[from..]
            .iter()
            .take_while(|s| s.phase == Phase::Lift)
        {
            self.step_to(sp.pose);
        }
        self.release();
        self.settle(settle_s);
        Outcome::GraspFailed
    }

    /// The first object under the vertical line at (x, y), from above, and the height
    /// where the line meets it (the table is `None`).
    pub fn top_at(&self, x: f64, y: f64) -> (Option<usize>, f64) {
        let ray = Ray::new(Vector::new(x as f32, y as f32, 1.0), -Vector::Z);
        match self.ray_hit(&ray, 2.0) {
            Some((h, hit)) => (self.object_of(h), 1.0 - hit.time_of_impact as f64),
            None => (None, 0.0),
        }
    }

    /// First hit of a ray: the object (or `None` for the table), the distance and the
    /// surface normal. Used by the perspective renderer.
    pub fn cast(
        &self,
        origin: [f64; 3],
        dir: [f64; 3],
        max: f64,
    ) -> Option<(Option<usize>, f64, [f64; 3])> {
        let ray = Ray::new(glam_vec(origin), glam_vec(dir));
        let (h, hit) = self.ray_hit(&ray, max as f32)?;
        let n = hit.normal;
        Some((
            self.object_of(h),
            hit.time_of_impact as f64,
            [n.x as f64, n.y as f64, n.z as f64],
        ))
    }
}

fn tip_pose(tip: &EePose) -> Pose {
    Pose::from_parts(
        glam_vec([tip.x, tip.y, tip.z]),
        Rotation::from_rotation_z(tip.yaw as f32),
    )
}
