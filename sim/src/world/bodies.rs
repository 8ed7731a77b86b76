//! The world's bodies: blocks, bowls and zones added, moved and pushed.

use super::*;

impl World {
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

    /// Sets an object's velocity (for knocking things over in tests).
    pub fn push(&mut self, i: usize, linvel: [f64; 3]) {
        if let Some(h) = self.objects[i].body {
            self.phys.bodies[h].set_linvel(glam_vec(linvel), true);
        }
    }

    /// Where a collider is now. Read from its body rather than from rapier's collider
    /// pose or broad phase, which catch up only at the next step: queries must also see
    /// objects just added or moved by hand.
    pub(super) fn collider_pose(&self, c: &Collider) -> Pose {
        let body = *self.phys.bodies[c.parent().expect("every collider has a body")].position();
        match c.position_wrt_parent() {
            Some(rel) => body * *rel,
            None => body,
        }
    }
}
