//! Derived labels: the edge pixels (changes of class, surface patch and normal between
//! 4-neighbours), the edge-strength map (their Gaussian-weighted local density) and the keypoint
//! heat map (Gaussian blobs at visible salient 3-D points). Both maps are smooth on a scale
//! proportional to the image size, so they look the same at every resolution and a network with
//! a coarse output (stride 8: 4×4 at 32²) can still predict them (see the module docs of `synth`).

use super::geometry::Ray;
use super::render::Frame;
use super::scene::{Scene, Shape};
use super::vec3::V3;
use super::{Camera, EDGE_NORMAL_ANGLE_DEG, EDGE_SIGMA_FRACTION, KEYPOINT_SIGMA_FRACTION};

/// Edge pixels: a pixel is an edge pixel when it differs from at least one 4-neighbour in class, in
/// surface patch (another primitive — which covers every depth discontinuity, since all
/// primitives are convex — another face, or another albedo region of a checker/stripe/frame
/// pattern), or in normal direction by more than [`EDGE_NORMAL_ANGLE_DEG`]. Both pixels of
/// such a pair are marked, so edges are two pixels wide and symmetric about the boundary.
pub(super) fn edge_pixels(size: usize, frame: &Frame) -> Vec<bool> {
    let cos_limit = EDGE_NORMAL_ANGLE_DEG.to_radians().cos();
    let differs = |a: usize, b: usize| {
        let (na, nb) = (frame.normal[a], frame.normal[b]);
        frame.class[a] != frame.class[b] || frame.surf[a] != frame.surf[b] || na[0] * nb[0] + na[1] * nb[1] + na[2] * nb[2] < cos_limit
    };
    let mut edges = vec![false; size * size];
    for y in 0..size {
        for x in 0..size {
            let i = y * size + x;
            if x + 1 < size && differs(i, i + 1) {
                edges[i] = true;
                edges[i + 1] = true;
            }
            if y + 1 < size && differs(i, i + size) {
                edges[i] = true;
                edges[i + size] = true;
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

/// Edge strength in [0, 1]: the Gaussian-weighted fraction of edge pixels around each pixel
/// (σ = [`EDGE_SIGMA_FRACTION`] · `size` px, truncated at 3σ; near the border the weights of the
/// pixels inside the image are renormalised). 1 inside a region made of edge pixels only, 0 far
/// from any edge. A separable blur, horizontal pass first, in f32.
pub(super) fn edge_strength(edges: &[bool], size: usize) -> Vec<f32> {
    let sigma = EDGE_SIGMA_FRACTION * size as f32;
    let r = (3.0 * sigma).ceil() as i64;
    let kernel: Vec<f32> = (-r..=r).map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let n = size as i64;
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; size * size];
        for y in 0..n {
            for x in 0..n {
                let (mut acc, mut weight) = (0.0f32, 0.0f32);
                for d in -r..=r {
                    let (qx, qy) = if horizontal { (x + d, y) } else { (x, y + d) };
                    if (0..n).contains(&qx) && (0..n).contains(&qy) {
                        let w = kernel[(d + r) as usize];
                        acc += w * src[(qy * n + qx) as usize];
                        weight += w;
                    }
                }
                out[(y * n + x) as usize] = acc / weight;
            }
        }
        out
    };
    let binary: Vec<f32> = edges.iter().map(|&e| if e { 1.0 } else { 0.0 }).collect();
    // Rounding can leave 1 − ε (or 1 + ε) inside an all-edge region.
    pass(&pass(&binary, true), false).into_iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

/// Pixels (column, row) containing the projections of the visible salient points inside the image.
fn keypoint_pixels(scene: &Scene, cam: &Camera, size: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for (p, owner) in salient_points(scene) {
        let pc = scene.basis.to_cam(p - scene.eye);
        let Some([u, v]) = cam.project(pc.to_array()) else {
            continue;
        };
        let inside = u >= 0.0 && u < size as f32 && v >= 0.0 && v < size as f32;
        if inside && visible(scene, p, owner) {
            out.push((u.floor() as i64, v.floor() as i64));
        }
    }
    out
}

/// Keypoint heat map: for each visible salient point inside the image, a Gaussian blob
/// (σ = [`KEYPOINT_SIGMA_FRACTION`] · `size` px) centred on the *centre of the pixel containing its
/// projection* (so every visible point has a peak of exactly 1); overlapping blobs combine by maximum.
pub(super) fn keypoint_map(scene: &Scene, cam: &Camera, size: usize) -> Vec<f32> {
    blob_map(&keypoint_pixels(scene, cam, size), size, KEYPOINT_SIGMA_FRACTION * size as f32)
}

/// Gaussian blobs of standard deviation `sigma` px (truncated at 3σ) at `centres`, combined by maximum.
fn blob_map(centres: &[(i64, i64)], size: usize, sigma: f32) -> Vec<f32> {
    let mut heat = vec![0.0f32; size * size];
    let radius = (3.0 * sigma).ceil() as i64;
    let inv_two_var = 1.0 / (2.0 * sigma * sigma);
    let kernel: Vec<f32> =
        (-radius..=radius).flat_map(|dy| (-radius..=radius).map(move |dx| (-((dx * dx + dy * dy) as f32) * inv_two_var).exp())).collect();
    let width = (2 * radius + 1) as usize;
    for &(px, py) in centres {
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
    fn edge_strength_is_a_normalised_blur_scaled_with_the_image() {
        // size 16 → σ = 1 px, kernel radius 3: weights 1, e^−½, e^−2, e^−4.5 on each side.
        let size = 16;
        let k = [1.0f32, (-0.5f32).exp(), (-2.0f32).exp(), (-4.5f32).exp()];
        let full = k[0] + 2.0 * (k[1] + k[2] + k[3]);
        assert!(edge_strength(&vec![false; size * size], size).iter().all(|&v| v == 0.0));
        assert!(edge_strength(&vec![true; size * size], size).iter().all(|&v| (v - 1.0).abs() < 1e-6));
        // Vertical lines of edge pixels in columns 8 and 0; the vertical pass leaves them unchanged.
        let line = |col: usize| (0..size * size).map(|i| i % size == col).collect::<Vec<_>>();
        let s = edge_strength(&line(8), size);
        for row in [0, 7, 15] {
            let at = |x: usize| s[row * size + x];
            assert!((at(8) - 1.0 / full).abs() < 1e-6, "{}", at(8));
            assert!((at(9) - k[1] / full).abs() < 1e-6 && (at(7) - k[1] / full).abs() < 1e-6);
            assert!((at(11) - k[3] / full).abs() < 1e-6);
            assert_eq!(at(12), 0.0);
        }
        // At the border only the three inside neighbours count: 1 / (1 + e^−½ + e^−2 + e^−4.5).
        let s = edge_strength(&line(0), size);
        assert!((s[5 * size] - 1.0 / (k[0] + k[1] + k[2] + k[3])).abs() < 1e-6, "{}", s[5 * size]);
    }

    #[test]
    fn keypoint_blobs_have_unit_peaks_and_combine_by_maximum() {
        // σ = 4 px (32² image): e^−½ at 4 px, nothing beyond 3σ = 12 px.
        let heat = blob_map(&[(16, 16), (24, 16)], 32, KEYPOINT_SIGMA_FRACTION * 32.0);
        let at = |x: usize, y: usize| heat[y * 32 + x];
        assert_eq!((at(16, 16), at(24, 16)), (1.0, 1.0));
        assert!((at(16, 20) - (-0.5f32).exp()).abs() < 1e-6);
        // Midway (20, 16) both blobs give e^−½: the maximum, not the sum.
        assert!((at(20, 16) - (-0.5f32).exp()).abs() < 1e-6);
        assert_eq!(at(16, 29), 0.0);
        assert!(at(16, 28) > 0.0);
    }

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
