//! The scene as the simulated cameras see it: every block, bowl and zone as flat-shaded
//! triangles in the base frame (the table is a plane of its own, per camera).

use std::f64::consts::TAU;

use crate::vec3::{cross, dot, sub};
use crate::world::{
    Kind, World, BOWL_FLOOR, BOWL_HEIGHT, BOWL_INNER, BOWL_OUTER, ZONE_BORDER, ZONE_OUTLINE,
};

/// Segments of a bowl's circle.
const SEGMENTS: usize = 24;

/// A flat-shaded triangle in the base frame.
pub(super) struct Face {
    pub v: [[f64; 3]; 3],
    pub normal: [f32; 3],
    pub albedo: [f32; 3],
}

/// The scene as triangles (the table aside).
pub(super) fn faces(world: &World) -> Vec<Face> {
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

/// The unit normal of triangle (a, b, c), counter-clockwise.
fn normal(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> [f32; 3] {
    let n = cross(sub(b, a), sub(c, a));
    let l = dot(n, n).sqrt().max(1e-12);
    n.map(|v| (v / l) as f32)
}
