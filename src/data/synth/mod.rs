//! Deterministic procedural renderer of simple indoor scenes with pixel-aligned multi-task
//! labels — mtrobust's built-in dataset.
//!
//! Each seed draws a closed box-shaped room (floor, ceiling, four walls; 4–9 m × 2.5–3.4 m ×
//! 4–9 m), a camera inside it (eye height 1.0–1.8 m, random yaw roughly towards the room
//! centre, pitch −12°…+8°, roll ±5°, horizontal field of view 60–75°), 2–6 objects resting on
//! the floor (yawed boxes, spheres, upright capped cylinders, four-legged tables), flat decals
//! lying exactly in the room faces (0–3 framed paintings, an optional door, an optional rug)
//! and one shadow-casting point light below the ceiling plus ambient light (one global
//! auto-exposure gain per image, then gamma 1/2.2). Surfaces are
//! Lambertian with procedural checkers, stripes or value noise. The image is ray cast with
//! one ray through each pixel centre (no anti-aliasing), so all labels are crisp and aligned.
//! The scene depends only on the seed; `size` only scales the intrinsics.
//!
//! # Conventions
//! * **Images** are `size`×`size`, row-major: index = `v·width + u` with column `u` (x, right)
//!   and row `v` (y, down).
//! * **Camera**: pinhole, camera frame x right, y down, z forward (OpenCV); `fx = fy`,
//!   principal point `cx = cy = size/2`. **Pixel-centre convention**: pixel (u, v) covers the
//!   continuous square [u, u+1)×[v, v+1) and is sampled at its centre (u+0.5, v+0.5); its ray
//!   is `((u+0.5−cx)/fx, (v+0.5−cy)/fy, 1)` and the 3-D point it sees is that ray times the
//!   depth ([`Camera::backproject`]). Projection is `(fx·X/Z + cx, fy·Y/Z + cy)` and lands in
//!   pixel `floor(·)` ([`Camera::project`]).
//! * **class**: id into [`CLASS_NAMES`] of the first surface hit. Every pixel hits something.
//! * **depth**: z (metres) of the first hit in the camera frame — not the ray length; > 0.
//! * **normal**: unit geometric normal of the hit surface in the camera frame, flipped to face
//!   the camera (`dot(n, ray) < 0`). Exactly constant over each planar face, so it agrees with
//!   the finite-difference normal of the back-projected depth map.
//! * **edge pixels** (not exported): a pixel is one iff it differs from one of its 4-neighbours
//!   in (a) class, (b) primitive — objects are convex, so this includes every depth
//!   discontinuity, (c) face or albedo region (checker cell parity, stripe parity, decal
//!   frame band: texture boundaries), or (d) normal direction by more than
//!   [`EDGE_NORMAL_ANGLE_DEG`]. Both pixels of a differing pair are marked (2-px lines), so
//!   every class-boundary pixel is itself an edge pixel.
//! * **edges** (the exported edge label): edge strength in [0, 1], the Gaussian-weighted
//!   fraction of edge pixels around the pixel (σ = [`EDGE_SIGMA_FRACTION`]·size px, truncated
//!   at 3σ, renormalised at the border) — a soft texture-edge map like Taskonomy's.
//! * **keypoints**: heat map in [0, 1]. Salient 3-D points: room corners, box (and table-top)
//!   corners, the four outline corners of each cylinder (silhouette lines meeting the cap
//!   rims), the leftmost/rightmost/topmost/bottommost outline points of each sphere, and the
//!   corners of paintings, doors and rugs. A point counts if it projects inside the image and
//!   the segment from the eye to it is not blocked by any solid (exact ray test; a point on an
//!   object's own outline cannot be hidden by that object). Each contributes a Gaussian
//!   (σ = [`KEYPOINT_SIGMA_FRACTION`]·size px, truncated at 3σ) centred on the centre of the
//!   pixel containing its projection, so its peak is exactly 1; overlaps combine by maximum.
//!
//! Both soft maps scale with the image (σ ∝ size), so a scene's labels are the same picture at
//! every resolution. Their widths are chosen so that a network whose output has stride 8 (the
//! `small` backbone: 4×4 outputs at 32², upsampled by nearest for the metrics, with the loss on
//! labels subsampled every 8th pixel, docs/REFERENCE.md §3) can learn them: with 1.5-px blobs
//! and 2-px binary edges the best 4×4 prediction was hardly better than a constant.

pub mod export;
mod geometry;
mod labels;
mod render;
mod scene;
mod sheet;
mod texture;
mod vec3;

#[cfg(test)]
mod tests;

use rayon::prelude::*;

pub use sheet::{class_colour, contact_sheet};

/// Class names, indexed by class id.
pub const CLASS_NAMES: &[&str] = &["floor", "wall", "ceiling", "box", "sphere", "cylinder", "painting", "rug", "door", "table"];
pub const CLASS_FLOOR: u8 = 0;
pub const CLASS_WALL: u8 = 1;
pub const CLASS_CEILING: u8 = 2;
pub const CLASS_BOX: u8 = 3;
pub const CLASS_SPHERE: u8 = 4;
pub const CLASS_CYLINDER: u8 = 5;
/// Flat textured framed rectangle on a wall.
pub const CLASS_PAINTING: u8 = 6;
/// Flat textured rectangle on the floor (possibly rotated).
pub const CLASS_RUG: u8 = 7;
/// Flat framed rectangle on a wall, standing on the floor.
pub const CLASS_DOOR: u8 = 8;
/// Table top and legs.
pub const CLASS_TABLE: u8 = 9;

/// Normal change between 4-neighbours (degrees) above which an edge is marked.
pub const EDGE_NORMAL_ANGLE_DEG: f32 = 20.0;
/// Standard deviation of keypoint blobs as a fraction of the image side (4 px at 32²).
pub const KEYPOINT_SIGMA_FRACTION: f32 = 1.0 / 8.0;
/// Standard deviation of the edge-strength blur as a fraction of the image side (2 px at 32²).
pub const EDGE_SIGMA_FRACTION: f32 = 1.0 / 16.0;

/// Pinhole intrinsics in pixels; camera frame is x right, y down, z forward (OpenCV convention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
}

impl Camera {
    /// Camera-frame direction, scaled to z = 1, of the ray through the centre of pixel
    /// (column `u`, row `v`).
    pub fn ray_dir(&self, u: usize, v: usize) -> [f32; 3] {
        [(u as f32 + 0.5 - self.cx) / self.fx, (v as f32 + 0.5 - self.cy) / self.fy, 1.0]
    }

    /// Camera-frame 3-D point seen at pixel (`u`, `v`) with z-depth `depth`.
    pub fn backproject(&self, u: usize, v: usize, depth: f32) -> [f32; 3] {
        let d = self.ray_dir(u, v);
        [d[0] * depth, d[1] * depth, depth]
    }

    /// Continuous image coordinates of a camera-frame point (pixel (u, v) covers
    /// [u, u+1)×[v, v+1)); `None` for points not in front of the camera.
    pub fn project(&self, p: [f32; 3]) -> Option<[f32; 2]> {
        (p[2] > 1e-6).then(|| [self.fx * p[0] / p[2] + self.cx, self.fy * p[1] / p[2] + self.cy])
    }
}

/// One rendered image with its pixel-aligned labels (see the module docs for conventions).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedScene {
    /// Seed the scene was drawn from.
    pub seed: u64,
    pub width: usize,
    pub height: usize,
    pub camera: Camera,
    /// Row-major, R, G, B.
    pub rgb: Vec<[u8; 3]>,
    /// Class id per pixel (index into [`CLASS_NAMES`]).
    pub class: Vec<u8>,
    /// z-depth in metres along the camera z axis, > 0.
    pub depth: Vec<f32>,
    /// Unit surface normal in the camera frame, facing the camera.
    pub normal: Vec<[f32; 3]>,
    /// Keypoint heat map in [0, 1].
    pub keypoints: Vec<f32>,
    /// Edge strength in [0, 1] (the exported label).
    pub edges: Vec<f32>,
    /// The edge pixels the strength is blurred from.
    pub edge_pixels: Vec<bool>,
}

/// Render scene number `seed` at `size`×`size` pixels. Pure function of (seed, size): same
/// inputs → bit-identical output.
pub fn render_scene(seed: u64, size: usize) -> RenderedScene {
    assert!(size > 0, "image size must be positive");
    let scene = scene::Scene::generate(seed);
    let camera = scene.camera(size);
    let frame = render::render(&scene, &camera, size);
    let edge_pixels = labels::edge_pixels(size, &frame);
    let edges = labels::edge_strength(&edge_pixels, size);
    let keypoints = labels::keypoint_map(&scene, &camera, size);
    RenderedScene {
        seed,
        width: size,
        height: size,
        camera,
        rgb: frame.rgb,
        class: frame.class,
        depth: frame.depth,
        normal: frame.normal,
        keypoints,
        edges,
        edge_pixels,
    }
}

/// Render `count` scenes with seeds `first_seed..first_seed+count` in parallel (rayon), in
/// seed order. Each scene is rendered sequentially, so results equal [`render_scene`]'s.
pub fn render_many(first_seed: u64, count: usize, size: usize) -> Vec<RenderedScene> {
    (0..count).into_par_iter().map(|i| render_scene(first_seed.wrapping_add(i as u64), size)).collect()
}
