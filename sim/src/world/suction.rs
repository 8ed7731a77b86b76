//! The suction tool: what it holds, the contact below it, attaching and releasing.

use super::*;

impl World {
    pub fn suction(&self) -> bool {
        self.suction
    }

    pub fn held(&self) -> Option<usize> {
        self.held.map(|(i, _)| i)
    }

    /// The object taken hold of since the last [`take_picked`](Self::take_picked), if any.
    pub fn picked(&self) -> Option<usize> {
        self.picked
    }

    /// The object taken hold of since the last call, if any: which object a step moved,
    /// whatever its sub-task called it.
    pub fn take_picked(&mut self) -> Option<usize> {
        self.picked.take()
    }

    /// Distance (m) a downward move of up to `dz` can go before first contact, and what
    /// it touches; `None` when the whole move is free.
    pub(super) fn contact_below(&self, dz: f32) -> Option<(f32, Option<usize>)> {
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

    pub(super) fn object_of(&self, h: ColliderHandle) -> Option<usize> {
        let d = self.phys.colliders[h].user_data;
        (d != u128::MAX).then_some(d as usize)
    }

    pub(super) fn attach(&mut self, i: usize) -> bool {
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
        self.picked = Some(i);
        true
    }

    pub(super) fn release(&mut self) {
        if let Some((i, _)) = self.held.take() {
            let h = self.objects[i].body.expect("held objects have bodies");
            let b = &mut self.phys.bodies[h];
            b.set_body_type(RigidBodyType::Dynamic, true);
            b.set_linvel(Vector::ZERO, true);
            b.set_angvel(Vector::ZERO, true);
        }
        self.suction = false;
    }
}
