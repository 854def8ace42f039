//! Rays and analytic ray–primitive intersections: the room seen from inside, yawed boxes,
//! spheres and upright capped cylinders.
//!
//! Ray directions need not be unit length: primary rays use the camera-frame direction
//! `(x, y, 1)`, so the returned parameter `t` is directly the z-depth. Every ray origin used by
//! the renderer lies outside all solids (camera, shadow rays lifted off surfaces), so each
//! solid only reports its entry point.

use std::f32::consts::PI;

use super::scene::Shape;
use super::vec3::V3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Ray {
    pub o: V3,
    pub d: V3,
}

impl Ray {
    pub fn at(&self, t: f32) -> V3 {
        self.o + self.d * t
    }
}

/// Where a ray starting inside the room box [0, dims] leaves it: `(t, face)` with
/// face = 2·axis + (1 if the maximum side).
pub(super) fn room_exit(dims: V3, ray: &Ray) -> (f32, u8) {
    let mut best = (f32::INFINITY, 0u8);
    for axis in 0..3 {
        let d = ray.d.axis(axis);
        let o = ray.o.axis(axis);
        let (t, face) = if d > 0.0 {
            ((dims.axis(axis) - o) / d, 2 * axis as u8 + 1)
        } else if d < 0.0 {
            (-o / d, 2 * axis as u8)
        } else {
            continue;
        };
        if t < best.0 {
            best = (t, face);
        }
    }
    best
}

/// Inward unit normal of a room face.
pub(super) fn room_normal(face: u8) -> V3 {
    let s = if face & 1 == 0 { 1.0 } else { -1.0 };
    V3::along((face / 2) as usize, s)
}

/// World → box frame (rotation by −yaw about y).
fn yaw_to_local(v: V3, cos: f32, sin: f32) -> V3 {
    V3::new(cos * v.x - sin * v.z, v.y, sin * v.x + cos * v.z)
}

/// Box frame → world (rotation by +yaw about y).
fn yaw_to_world(v: V3, cos: f32, sin: f32) -> V3 {
    V3::new(cos * v.x + sin * v.z, v.y, -sin * v.x + cos * v.z)
}

impl Shape {
    /// First entry of the ray into the solid with `t_min ≤ t ≤ t_max`: `(t, face)`.
    /// Faces: cuboid 2·axis + (1 if +side); sphere 0; cylinder 0 side, 1 top cap, 2 bottom cap.
    pub fn intersect(&self, ray: &Ray, t_min: f32, t_max: f32) -> Option<(f32, u8)> {
        match *self {
            Shape::Cuboid { centre, half, cos, sin } => {
                let o = yaw_to_local(ray.o - centre, cos, sin);
                let d = yaw_to_local(ray.d, cos, sin);
                // Slab test; the entry face is the slab whose near plane is crossed last.
                let (mut t_near, mut face, mut t_far) = (f32::NEG_INFINITY, 0u8, f32::INFINITY);
                for axis in 0..3 {
                    let (oi, di, hi) = (o.axis(axis), d.axis(axis), half.axis(axis));
                    if di == 0.0 {
                        if oi.abs() > hi {
                            return None;
                        }
                        continue;
                    }
                    let inv = 1.0 / di;
                    let (t0, t1) = ((-hi - oi) * inv, (hi - oi) * inv);
                    let (enter, exit, enter_face) = if di > 0.0 { (t0, t1, 2 * axis as u8) } else { (t1, t0, 2 * axis as u8 + 1) };
                    if enter > t_near {
                        t_near = enter;
                        face = enter_face;
                    }
                    t_far = t_far.min(exit);
                }
                (t_near <= t_far && t_near >= t_min && t_near <= t_max).then_some((t_near, face))
            }
            Shape::Sphere { centre, radius } => {
                let oc = ray.o - centre;
                let a = ray.d.dot(ray.d);
                let b = oc.dot(ray.d);
                let c = oc.dot(oc) - radius * radius;
                let disc = b * b - a * c;
                if disc < 0.0 {
                    return None;
                }
                let t = (-b - disc.sqrt()) / a;
                (t >= t_min && t <= t_max).then_some((t, 0))
            }
            Shape::Cylinder { cx, cz, y0, y1, radius } => {
                let (ox, oz) = (ray.o.x - cx, ray.o.z - cz);
                let (dx, dz) = (ray.d.x, ray.d.z);
                let mut best: Option<(f32, u8)> = None;
                let mut limit = t_max;
                let a = dx * dx + dz * dz;
                if a > 0.0 {
                    let b = ox * dx + oz * dz;
                    let c = ox * ox + oz * oz - radius * radius;
                    let disc = b * b - a * c;
                    if disc >= 0.0 {
                        let t = (-b - disc.sqrt()) / a;
                        let y = ray.o.y + t * ray.d.y;
                        if t >= t_min && t <= limit && y >= y0 && y <= y1 {
                            best = Some((t, 0));
                            limit = t;
                        }
                    }
                }
                if ray.d.y != 0.0 {
                    for (yc, face) in [(y1, 1u8), (y0, 2u8)] {
                        let t = (yc - ray.o.y) / ray.d.y;
                        if t >= t_min && t <= limit {
                            let (x, z) = (ox + t * dx, oz + t * dz);
                            if x * x + z * z <= radius * radius {
                                best = Some((t, face));
                                limit = t;
                            }
                        }
                    }
                }
                best
            }
        }
    }

    /// Outward unit normal (world frame) and texture coordinates (metres) at surface point `p`
    /// on `face` (as returned by [`Shape::intersect`]).
    pub fn surface(&self, p: V3, face: u8) -> (V3, (f32, f32)) {
        match *self {
            Shape::Cuboid { centre, half, cos, sin } => {
                let axis = (face / 2) as usize;
                let s = if face & 1 == 0 { -1.0 } else { 1.0 };
                let normal = yaw_to_world(V3::along(axis, s), cos, sin);
                // Local coordinates measured from the box's minimum corner.
                let l = yaw_to_local(p - centre, cos, sin) + half;
                let uv = match axis {
                    0 => (l.z, l.y),
                    1 => (l.x, l.z),
                    _ => (l.x, l.y),
                };
                (normal, uv)
            }
            Shape::Sphere { centre, radius } => {
                let l = p - centre;
                let normal = l * (1.0 / radius);
                ((normal), ((f32::atan2(l.z, l.x) + PI) * radius, l.y + radius))
            }
            Shape::Cylinder { cx, cz, y0, radius, .. } => {
                let (lx, lz) = (p.x - cx, p.z - cz);
                match face {
                    0 => {
                        let normal = V3::new(lx, 0.0, lz).normalized();
                        (normal, ((f32::atan2(lz, lx) + PI) * radius, p.y - y0))
                    }
                    1 => (V3::new(0.0, 1.0, 0.0), (lx + radius, lz + radius)),
                    _ => (V3::new(0.0, -1.0, 0.0), (lx + radius, lz + radius)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn room_exit_known_answers() {
        let dims = V3::new(4.0, 3.0, 5.0);
        let o = V3::new(1.0, 1.5, 2.0);
        assert_eq!(room_exit(dims, &Ray { o, d: V3::new(0.0, 0.0, 1.0) }), (3.0, 5));
        assert_eq!(room_exit(dims, &Ray { o, d: V3::new(-2.0, 0.0, 0.0) }), (0.5, 0));
        assert_eq!(room_exit(dims, &Ray { o, d: V3::new(0.0, -1.0, 0.1) }), (1.5, 2));
        assert_eq!(room_normal(2), V3::new(0.0, 1.0, 0.0));
        assert_eq!(room_normal(5), V3::new(0.0, 0.0, -1.0));
    }

    #[test]
    fn sphere_known_answer() {
        let s = Shape::Sphere { centre: V3::new(0.0, 0.0, 5.0), radius: 1.0 };
        // Unnormalised direction: t scales inversely with |d|.
        let (t, f) = s.intersect(&Ray { o: V3::default(), d: V3::new(0.0, 0.0, 2.0) }, 0.0, 100.0).unwrap();
        assert!(close(t, 2.0) && f == 0);
        let (n, _) = s.surface(V3::new(0.0, 0.0, 4.0), 0);
        assert_eq!(n, V3::new(0.0, 0.0, -1.0));
        assert!(s.intersect(&Ray { o: V3::default(), d: V3::new(0.0, 1.0, 2.0) }, 0.0, 100.0).is_none());
        assert!(s.intersect(&Ray { o: V3::default(), d: V3::new(0.0, 0.0, 1.0) }, 0.0, 3.9).is_none());
    }

    #[test]
    fn yawed_cuboid_known_answer() {
        // Unit cube yawed by 45°: its nearest vertical edge is at (0, ·, 5 − √½); just right of
        // it the visible face is the plane x − (z − 5) = √½.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let s = Shape::Cuboid { centre: V3::new(0.0, 0.0, 5.0), half: V3::new(0.5, 0.5, 0.5), cos: h, sin: h };
        let (t, face) = s.intersect(&Ray { o: V3::default(), d: V3::new(0.01, 0.0, 1.0) }, 0.0, 100.0).unwrap();
        assert!((t - (5.0 - h) / 0.99).abs() < 1e-4, "{t}");
        let p = Ray { o: V3::default(), d: V3::new(0.01, 0.0, 1.0) }.at(t);
        let (n, _) = s.surface(p, face);
        // Slightly right of the edge, the visible face faces (+x, -z)/sqrt 2.
        assert!(close(n.x, h) && close(n.z, -h) && close(n.y, 0.0), "{n:?}");
        // Top face seen from above.
        let (t, face) = s.intersect(&Ray { o: V3::new(0.0, 3.0, 5.0), d: V3::new(0.0, -1.0, 0.0) }, 0.0, 100.0).unwrap();
        assert!(close(t, 2.5) && face == 3);
        assert_eq!(s.surface(V3::new(0.0, 0.5, 5.0), 3).0, V3::new(0.0, 1.0, 0.0));
    }

    #[test]
    fn cylinder_side_and_cap() {
        let s = Shape::Cylinder { cx: 0.0, cz: 5.0, y0: 0.0, y1: 1.0, radius: 0.5 };
        let (t, face) = s.intersect(&Ray { o: V3::new(0.0, 0.5, 0.0), d: V3::new(0.0, 0.0, 1.0) }, 0.0, 100.0).unwrap();
        assert!(close(t, 4.5) && face == 0);
        let (n, _) = s.surface(V3::new(0.0, 0.5, 4.5), 0);
        assert!(close(n.z, -1.0));
        let (t, face) = s.intersect(&Ray { o: V3::new(0.2, 3.0, 5.0), d: V3::new(0.0, -1.0, 0.0) }, 0.0, 100.0).unwrap();
        assert!(close(t, 2.0) && face == 1);
        // Passing above the cylinder misses it.
        assert!(s.intersect(&Ray { o: V3::new(0.0, 1.2, 0.0), d: V3::new(0.0, 0.0, 1.0) }, 0.0, 100.0).is_none());
    }
}
