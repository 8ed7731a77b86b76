//! Raycasts: the top surface under a point, and casts along any ray.

use super::*;

impl World {
    /// The nearest collider along a ray (unit direction). A scan over all colliders, a
    /// few dozen on a tabletop, each first tested against its bounding sphere.
    pub(super) fn ray_hit(&self, ray: &Ray, max: f32) -> Option<(ColliderHandle, RayIntersection)> {
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
