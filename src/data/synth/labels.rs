//! Derived labels: the edge map (from changes of class, surface patch and normal between
//! 4-neighbours) and the keypoint heat map (Gaussian blobs at visible salient 3-D points).

use super::geometry::Ray;
use super::render::Frame;
use super::scene::{Scene, Shape};
use super::vec3::V3;
use super::{Camera, EDGE_NORMAL_ANGLE_DEG, KEYPOINT_SIGMA};

/// Binary edge map: a pixel is 1 when it differs from at least one 4-neighbour in class, in
/// surface patch (another primitive — which covers every depth discontinuity, since all
/// primitives are convex — another face, or another albedo region of a checker/stripe/frame
/// pattern), or in normal direction by more than [`EDGE_NORMAL_ANGLE_DEG`]. Both pixels of
/// such a pair are marked, so edges are two pixels wide and symmetric about the boundary.
pub(super) fn edge_map(size: usize, frame: &Frame) -> Vec<f32> {
    let cos_limit = EDGE_NORMAL_ANGLE_DEG.to_radians().cos();
    let differs = |a: usize, b: usize| {
        let (na, nb) = (frame.normal[a], frame.normal[b]);
        frame.class[a] != frame.class[b] || frame.surf[a] != frame.surf[b] || na[0] * nb[0] + na[1] * nb[1] + na[2] * nb[2] < cos_limit
    };
    let mut edges = vec![0.0f32; size * size];
    for y in 0..size {
        for x in 0..size {
            let i = y * size + x;
            if x + 1 < size && differs(i, i + 1) {
                edges[i] = 1.0;
                edges[i + 1] = 1.0;
            }
            if y + 1 < size && differs(i, i + size) {
                edges[i] = 1.0;
                edges[i + size] = 1.0;
            }
        }
    }
    edges
}

/// Points of a sphere (centre `c` in the camera frame, radius `r`) that project to the
/// leftmost, rightmost, topmost and bottommost points of its image outline. Each lies on a
/// tangent plane through the camera centre that contains an image column (or row) line:
/// {x = a·z} (or {y = b·z}); solving the tangency condition for `a` gives a quadratic.
/// Empty when the sphere straddles the camera plane z = 0.
pub(super) fn sphere_extremes(c: V3, r: f32) -> Vec<V3> {
    let mut out = Vec::with_capacity(4);
    let a2 = c.z * c.z - r * r;
    if a2 <= 1e-6 {
        return out;
    }
    for axis in [0usize, 1] {
        let ci = c.axis(axis);
        let root = (r * r * (ci * ci + a2)).sqrt();
        for sign in [-1.0f32, 1.0] {
            let a = (ci * c.z + sign * root) / a2;
            // Plane normal n = e_axis − a·e_z; the tangent point is the foot of the
            // perpendicular from the centre onto the plane.
            let n = V3::along(axis, 1.0) - V3::new(0.0, 0.0, a);
            let k = (ci - a * c.z) / (1.0 + a * a);
            out.push(c - n * k);
        }
    }
    out
}

/// Salient 3-D points (world frame) with the index of the solid that cannot hide them (points
/// on an object's own outline), or `None` when any solid may occlude them.
pub(super) fn salient_points(scene: &Scene) -> Vec<(V3, Option<usize>)> {
    let mut pts = Vec::new();
    let d = scene.dims;
    // Room corners (wall–wall–floor and wall–wall–ceiling).
    for x in [0.0, d.x] {
        for y in [0.0, d.y] {
            for z in [0.0, d.z] {
                pts.push((V3::new(x, y, z), None));
            }
        }
    }
    for decal in &scene.decals {
        pts.extend(decal.corners(d).map(|p| (p, None)));
    }
    for (i, solid) in scene.solids.iter().enumerate() {
        if !solid.salient {
            continue;
        }
        match solid.shape {
            Shape::Cuboid { centre, half, cos, sin } => {
                // A box can hide its own back corners, so no owner exemption.
                for sx in [-1.0f32, 1.0] {
                    for sy in [-1.0f32, 1.0] {
                        for sz in [-1.0f32, 1.0] {
                            let (lx, lz) = (sx * half.x, sz * half.z);
                            let p = V3::new(centre.x + cos * lx + sin * lz, centre.y + sy * half.y, centre.z - sin * lx + cos * lz);
                            pts.push((p, None));
                        }
                    }
                }
            }
            Shape::Sphere { centre, radius } => {
                let c = scene.basis.to_cam(centre - scene.eye);
                for pc in sphere_extremes(c, radius) {
                    pts.push((scene.eye + scene.basis.to_world(pc), Some(i)));
                }
            }
            Shape::Cylinder { cx, cz, y0, y1, radius } => {
                // Where the two silhouette generators (vertical tangent lines seen from the
                // eye) meet the cap rims: the outline's four corners.
                let (ex, ez) = (scene.eye.x - cx, scene.eye.z - cz);
                let l = ex.hypot(ez);
                if l <= radius {
                    continue;
                }
                let (ux, uz) = (ex / l, ez / l);
                let (ct, st) = (radius / l, (1.0 - (radius / l).powi(2)).sqrt());
                for s in [-1.0f32, 1.0] {
                    let tx = cx + radius * (ct * ux - s * st * uz);
                    let tz = cz + radius * (ct * uz + s * st * ux);
                    for y in [y0, y1] {
                        pts.push((V3::new(tx, y, tz), Some(i)));
                    }
                }
            }
        }
    }
    pts
}

/// Whether nothing (except the exempt `owner`) lies between the eye and `p`. Exact ray test
/// rather than a depth-buffer lookup, which is ill-posed for points on silhouettes.
fn visible(scene: &Scene, p: V3, owner: Option<usize>) -> bool {
    let ray = Ray { o: scene.eye, d: p - scene.eye };
    // Hits closer than 0.2 % of the distance before the point count as occluders.
    !scene.solids.iter().enumerate().any(|(i, s)| Some(i) != owner && s.shape.intersect(&ray, 1e-5, 1.0 - 2e-3).is_some())
}

/// Keypoint heat map: for each visible salient point inside the image, a Gaussian blob
/// (σ = [`KEYPOINT_SIGMA`] px) centred on the *centre of the pixel containing its projection*
/// (so every visible point has a peak of exactly 1); overlapping blobs combine by maximum.
pub(super) fn keypoint_map(scene: &Scene, cam: &Camera, size: usize) -> Vec<f32> {
    let mut heat = vec![0.0f32; size * size];
    let radius = (3.0 * KEYPOINT_SIGMA).ceil() as i64;
    let inv_two_var = 1.0 / (2.0 * KEYPOINT_SIGMA * KEYPOINT_SIGMA);
    let kernel: Vec<f32> =
        (-radius..=radius).flat_map(|dy| (-radius..=radius).map(move |dx| (-((dx * dx + dy * dy) as f32) * inv_two_var).exp())).collect();
    let width = (2 * radius + 1) as usize;
    for (p, owner) in salient_points(scene) {
        let pc = scene.basis.to_cam(p - scene.eye);
        let Some([u, v]) = cam.project(pc.to_array()) else {
            continue;
        };
        let inside = u >= 0.0 && u < size as f32 && v >= 0.0 && v < size as f32;
        if !inside || !visible(scene, p, owner) {
            continue;
        }
        let (px, py) = (u.floor() as i64, v.floor() as i64);
        for dy in -radius..=radius {
            let y = py + dy;
            if y < 0 || y >= size as i64 {
                continue;
            }
            for dx in -radius..=radius {
                let x = px + dx;
                if x < 0 || x >= size as i64 {
                    continue;
                }
                let k = kernel[(dy + radius) as usize * width + (dx + radius) as usize];
                let cell = &mut heat[y as usize * size + x as usize];
                *cell = cell.max(k);
            }
        }
    }
    heat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sphere_extremes_are_tangent_points() {
        for c in [V3::new(0.0, 0.0, 5.0), V3::new(1.5, -0.7, 4.0), V3::new(-2.0, 1.0, 3.0)] {
            let r = 0.8;
            let pts = sphere_extremes(c, r);
            assert_eq!(pts.len(), 4);
            for p in &pts {
                // On the sphere, and the viewing ray grazes it (ray ⟂ normal).
                assert!(((*p - c).length() - r).abs() < 1e-4);
                assert!((*p - c).dot(*p).abs() < 1e-3);
            }
            // Left/right extremes bound x/z of every sphere point seen by the camera.
            let (lo, hi) = (pts[0].x / pts[0].z, pts[1].x / pts[1].z);
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            for k in 0..2000 {
                let th = k as f32 * 0.0031;
                let ph = k as f32 * 0.0173;
                let q = c + V3::new(th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()) * r;
                assert!(q.x / q.z >= lo - 1e-5 && q.x / q.z <= hi + 1e-5);
            }
        }
        // Sphere around the camera plane: no extremes.
        assert!(sphere_extremes(V3::new(0.0, 0.0, 0.5), 1.0).is_empty());
    }
}
