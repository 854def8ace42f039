//! Random scene description: a closed box-shaped room, a camera inside it, one point light,
//! solid objects resting on the floor and flat "decals" (paintings, a door, a rug) that lie
//! exactly in the room's faces (a class boundary without any depth discontinuity).
//!
//! World frame: metres, y up; the room is the axis-aligned box [0, W]×[0, H]×[0, D].
//! Everything here depends on the seed only (not on the image size), so one seed renders the
//! same scene at every resolution.

use std::f32::consts::{FRAC_PI_2, PI, TAU};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::texture::{Material, Pattern, hsv};
use super::vec3::{Basis, V3};
use super::{CLASS_BOX, CLASS_CYLINDER, CLASS_DOOR, CLASS_PAINTING, CLASS_RUG, CLASS_SPHERE, CLASS_TABLE, Camera};

/// Room faces are numbered `2·axis + side` (side 1 = the face at the maximum coordinate):
/// 0/1 walls x = 0 / x = W, 2 floor, 3 ceiling, 4/5 walls z = 0 / z = D.
pub(super) const FACE_FLOOR: u8 = 2;
pub(super) const FACE_CEILING: u8 = 3;
const WALL_FACES: [u8; 4] = [0, 1, 4, 5];

/// Surface coordinates (metres) of a point on room face `face`: walls use (horizontal, height),
/// floor and ceiling use (x, z).
pub(super) fn face_uv(face: u8, p: V3) -> (f32, f32) {
    match face {
        0 | 1 => (p.z, p.y),
        2 | 3 => (p.x, p.z),
        _ => (p.x, p.y),
    }
}

/// Inverse of [`face_uv`]: the world point at surface coordinates `(u, v)` on `face`.
pub(super) fn face_point(face: u8, dims: V3, u: f32, v: f32) -> V3 {
    match face {
        0 => V3::new(0.0, v, u),
        1 => V3::new(dims.x, v, u),
        2 => V3::new(u, 0.0, v),
        3 => V3::new(u, dims.y, v),
        4 => V3::new(u, v, 0.0),
        _ => V3::new(u, v, dims.z),
    }
}

/// Extent of a face along its u and v coordinates.
fn face_extent(face: u8, dims: V3) -> (f32, f32) {
    match face {
        0 | 1 => (dims.z, dims.y),
        2 | 3 => (dims.x, dims.z),
        _ => (dims.x, dims.y),
    }
}

/// Analytic solid primitives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Shape {
    /// Box: centre, half extents in its own frame, and a yaw about world up (`cos`, `sin`).
    Cuboid {
        centre: V3,
        half: V3,
        cos: f32,
        sin: f32,
    },
    Sphere {
        centre: V3,
        radius: f32,
    },
    /// Upright cylinder with both caps: axis at (`cx`, `cz`), spanning heights `y0..y1`.
    Cylinder {
        cx: f32,
        cz: f32,
        y0: f32,
        y1: f32,
        radius: f32,
    },
}

/// An object part: geometry, semantic class and material. `salient` marks parts whose
/// corners are keypoints (table legs are not).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Solid {
    pub shape: Shape,
    pub class: u8,
    pub material: Material,
    pub salient: bool,
}

/// A textured rectangle lying in a room face (zero thickness, so it never changes depth).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Decal {
    pub class: u8,
    pub face: u8,
    /// Centre and half sizes in the face's (u, v) coordinates; rotated by (`cos`, `sin`).
    pub centre: (f32, f32),
    pub half: (f32, f32),
    pub cos: f32,
    pub sin: f32,
    /// Width of the frame/border band (its own albedo region); doors have no bottom band.
    pub border: f32,
    pub frame_bottom: bool,
    pub frame: [f32; 3],
    pub material: Material,
}

impl Decal {
    /// Coordinates inside the rectangle (origin at its corner), if face point `(u, v)` is inside.
    pub fn local(&self, u: f32, v: f32) -> Option<(f32, f32)> {
        let (du, dv) = (u - self.centre.0, v - self.centre.1);
        let s = self.cos * du + self.sin * dv;
        let t = -self.sin * du + self.cos * dv;
        (s.abs() <= self.half.0 && t.abs() <= self.half.1).then_some((s + self.half.0, t + self.half.1))
    }

    /// Albedo and region id at local coordinates; region 2 is the frame band.
    pub fn albedo(&self, s: f32, t: f32) -> ([f32; 3], u8) {
        let b = self.border;
        let in_frame = s < b || s > 2.0 * self.half.0 - b || t > 2.0 * self.half.1 - b || (self.frame_bottom && t < b);
        if in_frame { (self.frame, 2) } else { self.material.albedo(s, t) }
    }

    /// The four corners in world coordinates.
    pub fn corners(&self, dims: V3) -> [V3; 4] {
        let (hu, hv) = self.half;
        [(-hu, -hv), (hu, -hv), (hu, hv), (-hu, hv)].map(|(s, t)| {
            let du = self.cos * s - self.sin * t;
            let dv = self.sin * s + self.cos * t;
            face_point(self.face, dims, self.centre.0 + du, self.centre.1 + dv)
        })
    }
}

/// A complete random scene.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Scene {
    /// Room size (W, H, D).
    pub dims: V3,
    pub floor: Material,
    pub wall: Material,
    pub ceiling: Material,
    pub solids: Vec<Solid>,
    pub decals: Vec<Decal>,
    pub light: V3,
    pub light_power: f32,
    pub eye: V3,
    pub basis: Basis,
    /// Horizontal field of view in radians.
    pub hfov: f32,
}

impl Scene {
    /// Pinhole intrinsics for a `size`×`size` image with the principal point at the centre.
    pub fn camera(&self, size: usize) -> Camera {
        let half = size as f32 * 0.5;
        let f = half / (0.5 * self.hfov).tan();
        Camera { fx: f, fy: f, cx: half, cy: half }
    }

    /// Draw scene number `seed`.
    pub fn generate(seed: u64) -> Scene {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rng = &mut rng;
        let dims = V3::new(rng.random_range(4.0..9.0), rng.random_range(2.5..3.4), rng.random_range(4.0..9.0));

        // Camera: inside the room, eye height of a person, looking roughly towards the room
        // centre so that most views see the room rather than a wall at arm's length.
        let eye = V3::new(rng.random_range(0.6..dims.x - 0.6), rng.random_range(1.0..1.8), rng.random_range(0.6..dims.z - 0.6));
        let to_centre = f32::atan2(0.5 * dims.x - eye.x, 0.5 * dims.z - eye.z);
        let yaw = to_centre + rng.random_range(-1.0..1.0);
        let pitch = rng.random_range(-12.0f32..8.0).to_radians();
        let roll = rng.random_range(-5.0f32..5.0).to_radians();
        let hfov = rng.random_range(60.0f32..75.0).to_radians();
        let basis = Basis::from_angles(yaw, pitch, roll);

        let floor = floor_material(rng);
        let wall = wall_material(rng);
        let ceiling = ceiling_material(rng);

        let view = View { dims, eye, yaw, hfov };
        let mut placed = Vec::new();
        let mut solids = Vec::new();
        for _ in 0..rng.random_range(2..=6) {
            add_object(rng, &view, &mut placed, &mut solids);
        }

        let decals = make_decals(rng, dims);
        let light = V3::new(rng.random_range(0.25..0.75) * dims.x, dims.y - 0.25, rng.random_range(0.25..0.75) * dims.z);
        let light_power = rng.random_range(1.0..1.5);
        Scene { dims, floor, wall, ceiling, solids, decals, light, light_power, eye, basis, hfov }
    }
}

/// What object placement needs to know about the room and the camera.
struct View {
    dims: V3,
    eye: V3,
    yaw: f32,
    hfov: f32,
}

/// Find a floor position for a footprint circle of `radius` that stays inside the room, away
/// from the camera and from earlier objects. Mostly samples inside the view cone.
fn place(rng: &mut ChaCha8Rng, view: &View, radius: f32, placed: &mut Vec<(f32, f32, f32)>) -> Option<(f32, f32)> {
    let dims = view.dims;
    for _ in 0..64 {
        let (x, z) = if rng.random_bool(0.85) {
            let a = view.yaw + rng.random_range(-0.45..0.45) * view.hfov;
            let r = rng.random_range(1.2..5.5);
            (view.eye.x + a.sin() * r, view.eye.z + a.cos() * r)
        } else {
            (rng.random_range(0.0..dims.x), rng.random_range(0.0..dims.z))
        };
        let m = radius + 0.05;
        if x < m || x > dims.x - m || z < m || z > dims.z - m {
            continue;
        }
        // Keep the camera well outside every object (also keeps the near field uncluttered).
        if (x - view.eye.x).hypot(z - view.eye.z) < radius + 0.8 {
            continue;
        }
        if placed.iter().any(|&(px, pz, pr)| (x - px).hypot(z - pz) < radius + pr + 0.05) {
            continue;
        }
        placed.push((x, z, radius));
        return Some((x, z));
    }
    None
}

/// Add one random object (box, sphere, cylinder or table) if a free spot is found.
fn add_object(rng: &mut ChaCha8Rng, view: &View, placed: &mut Vec<(f32, f32, f32)>, solids: &mut Vec<Solid>) {
    match rng.random_range(0..10u32) {
        0..=2 => {
            let half = V3::new(rng.random_range(0.15..0.6), rng.random_range(0.12..0.65), rng.random_range(0.15..0.6));
            let (sin, cos) = rng.random_range(0.0..FRAC_PI_2).sin_cos();
            let material = object_material(rng, None);
            if let Some((x, z)) = place(rng, view, half.x.hypot(half.z), placed) {
                let shape = Shape::Cuboid { centre: V3::new(x, half.y, z), half, cos, sin };
                solids.push(Solid { shape, class: CLASS_BOX, material, salient: true });
            }
        }
        3..=4 => {
            let radius = rng.random_range(0.15..0.55);
            let material = object_material(rng, Some(radius));
            if let Some((x, z)) = place(rng, view, radius, placed) {
                let shape = Shape::Sphere { centre: V3::new(x, radius, z), radius };
                solids.push(Solid { shape, class: CLASS_SPHERE, material, salient: true });
            }
        }
        5..=7 => {
            let radius = rng.random_range(0.12..0.45);
            let height = rng.random_range(0.25..1.4);
            let material = object_material(rng, Some(radius));
            if let Some((cx, cz)) = place(rng, view, radius, placed) {
                let shape = Shape::Cylinder { cx, cz, y0: 0.0, y1: height, radius };
                solids.push(Solid { shape, class: CLASS_CYLINDER, material, salient: true });
            }
        }
        _ => {
            // Table: a thin top slab on four square legs, all sharing one yaw and material.
            let (hw, hd): (f32, f32) = (rng.random_range(0.4..0.8), rng.random_range(0.25..0.45));
            let height = rng.random_range(0.65..0.85);
            let (thick, leg, inset) = (0.05, 0.03, 0.04);
            let (sin, cos) = rng.random_range(0.0..PI).sin_cos();
            let material = wood_material(rng);
            if let Some((x, z)) = place(rng, view, hw.hypot(hd), placed) {
                let top = Shape::Cuboid { centre: V3::new(x, height - 0.5 * thick, z), half: V3::new(hw, 0.5 * thick, hd), cos, sin };
                solids.push(Solid { shape: top, class: CLASS_TABLE, material, salient: true });
                let leg_h = 0.5 * (height - thick);
                for (sx, sz) in [(-1.0f32, -1.0f32), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                    let (lx, lz) = (sx * (hw - inset - leg), sz * (hd - inset - leg));
                    let centre = V3::new(x + cos * lx + sin * lz, leg_h, z - sin * lx + cos * lz);
                    let shape = Shape::Cuboid { centre, half: V3::new(leg, leg_h, leg), cos, sin };
                    solids.push(Solid { shape, class: CLASS_TABLE, material, salient: false });
                }
            }
        }
    }
}

/// Door, paintings and rug. Rectangles on the same wall never overlap.
fn make_decals(rng: &mut ChaCha8Rng, dims: V3) -> Vec<Decal> {
    let mut decals: Vec<Decal> = Vec::new();
    let overlaps = |decals: &[Decal], face: u8, c: (f32, f32), h: (f32, f32)| {
        decals
            .iter()
            .any(|d| d.face == face && (d.centre.0 - c.0).abs() < d.half.0 + h.0 + 0.1 && (d.centre.1 - c.1).abs() < d.half.1 + h.1 + 0.1)
    };

    if rng.random_bool(0.5) {
        let face = WALL_FACES[rng.random_range(0..4)];
        let len = face_extent(face, dims).0;
        let hw = rng.random_range(0.4..0.5);
        let hh = 0.5 * rng.random_range(2.0f32..2.25).min(dims.y - 0.2);
        let centre = (rng.random_range(hw + 0.15..len - hw - 0.15), hh);
        let wood = wood_material(rng);
        let frame = hsv(rng.random(), rng.random_range(0.05..0.3), rng.random_range(0.6..0.9));
        decals.push(Decal {
            class: CLASS_DOOR,
            face,
            centre,
            half: (hw, hh),
            cos: 1.0,
            sin: 0.0,
            border: rng.random_range(0.05..0.08),
            frame_bottom: false,
            frame,
            material: wood,
        });
    }

    for _ in 0..rng.random_range(0..=3) {
        let hw = rng.random_range(0.25..0.7);
        let hh = rng.random_range(0.2..0.5);
        let base = hsv(rng.random(), rng.random_range(0.4..0.95), rng.random_range(0.4..0.95));
        let alt = hsv(rng.random(), rng.random_range(0.3..0.95), rng.random_range(0.2..0.9));
        let pattern = match rng.random_range(0..4u32) {
            0 | 1 => Pattern::Noise { scale: rng.random_range(0.08..0.2), seed: rng.random() },
            2 => {
                let (sin, cos) = rng.random_range(0.0..PI).sin_cos();
                Pattern::Stripes { scale: rng.random_range(0.08..0.15), cos, sin }
            }
            _ => Pattern::Checker { scale: rng.random_range(0.08..0.15) },
        };
        let frame = hsv(rng.random(), rng.random_range(0.3..0.7), rng.random_range(0.1..0.5));
        let border = rng.random_range(0.03..0.07);
        for _attempt in 0..20 {
            let face = WALL_FACES[rng.random_range(0..4)];
            let len = face_extent(face, dims).0;
            let centre = (rng.random_range(hw + 0.2..len - hw - 0.2), rng.random_range(hh + 0.9..dims.y - 0.25 - hh));
            if !overlaps(&decals, face, centre, (hw, hh)) {
                decals.push(Decal {
                    class: CLASS_PAINTING,
                    face,
                    centre,
                    half: (hw, hh),
                    cos: 1.0,
                    sin: 0.0,
                    border,
                    frame_bottom: true,
                    frame,
                    material: Material { base, alt, pattern },
                });
                break;
            }
        }
    }

    if rng.random_bool(0.6) {
        let (hu, hv): (f32, f32) = (rng.random_range(0.5..1.4), rng.random_range(0.4..0.9));
        let (sin, cos) = rng.random_range(0.0..PI).sin_cos();
        let reach = hu.hypot(hv) + 0.1;
        let centre = (rng.random_range(reach..dims.x - reach), rng.random_range(reach..dims.z - reach));
        let base = hsv(rng.random(), rng.random_range(0.3..0.8), rng.random_range(0.3..0.8));
        let alt = alt_colour(rng, base);
        let pattern = match rng.random_range(0..3u32) {
            0 => Pattern::Stripes { scale: rng.random_range(0.12..0.3), cos: 1.0, sin: 0.0 },
            1 => Pattern::Checker { scale: rng.random_range(0.2..0.4) },
            _ => Pattern::Noise { scale: rng.random_range(0.2..0.5), seed: rng.random() },
        };
        let frame = alt_colour(rng, base);
        decals.push(Decal {
            class: CLASS_RUG,
            face: FACE_FLOOR,
            centre,
            half: (hu, hv),
            cos,
            sin,
            border: rng.random_range(0.06..0.12),
            frame_bottom: true,
            frame,
            material: Material { base, alt, pattern },
        });
    }
    decals
}

/// A second colour that contrasts with `base`: a darker shade or an unrelated colour.
fn alt_colour(rng: &mut ChaCha8Rng, base: [f32; 3]) -> [f32; 3] {
    if rng.random_bool(0.5) {
        let k = rng.random_range(0.35..0.65);
        base.map(|c| c * k)
    } else {
        hsv(rng.random(), rng.random_range(0.2..0.8), rng.random_range(0.3..0.95))
    }
}

fn floor_material(rng: &mut ChaCha8Rng) -> Material {
    let base = hsv(rng.random(), rng.random_range(0.15..0.6), rng.random_range(0.3..0.75));
    let alt = alt_colour(rng, base);
    let pattern = match rng.random_range(0..4u32) {
        0 => Pattern::Checker { scale: rng.random_range(0.5..1.0) },
        1 => {
            // Planks along x or z.
            let (cos, sin) = if rng.random_bool(0.5) { (1.0, 0.0) } else { (0.0, 1.0) };
            Pattern::Stripes { scale: rng.random_range(0.3..0.5), cos, sin }
        }
        2 => Pattern::Noise { scale: rng.random_range(0.4..1.2), seed: rng.random() },
        _ => Pattern::Solid,
    };
    Material { base, alt, pattern }
}

fn wall_material(rng: &mut ChaCha8Rng) -> Material {
    let base = hsv(rng.random(), rng.random_range(0.05..0.35), rng.random_range(0.55..0.9));
    let (alt, pattern) = match rng.random_range(0..10u32) {
        0..=4 => (base, Pattern::Solid),
        // Vertical wallpaper stripes (u runs horizontally along every wall).
        5..=6 => (alt_colour(rng, base), Pattern::Stripes { scale: rng.random_range(0.3..0.6), cos: 1.0, sin: 0.0 }),
        7..=8 => (base.map(|c| c * 0.75), Pattern::Noise { scale: rng.random_range(0.4..1.2), seed: rng.random() }),
        _ => (alt_colour(rng, base), Pattern::Checker { scale: rng.random_range(0.5..0.8) }),
    };
    Material { base, alt, pattern }
}

fn ceiling_material(rng: &mut ChaCha8Rng) -> Material {
    let base = hsv(rng.random(), rng.random_range(0.0..0.1), rng.random_range(0.75..0.95));
    let pattern =
        if rng.random_bool(0.7) { Pattern::Solid } else { Pattern::Noise { scale: rng.random_range(1.0..2.0), seed: rng.random() } };
    Material { base, alt: base.map(|c| c * 0.85), pattern }
}

fn wood_material(rng: &mut ChaCha8Rng) -> Material {
    let base = hsv(rng.random_range(0.05..0.12), rng.random_range(0.4..0.7), rng.random_range(0.25..0.6));
    Material { base, alt: base.map(|c| c * 0.7), pattern: Pattern::Noise { scale: rng.random_range(0.1..0.3), seed: rng.random() } }
}

/// Object material. `round = Some(radius)` for spheres and cylinders: their u coordinate is an
/// arc length, so periodic patterns are resized to tile the circumference seamlessly and
/// noise (which would show a seam) is not used.
fn object_material(rng: &mut ChaCha8Rng, round: Option<f32>) -> Material {
    let base = hsv(rng.random(), rng.random_range(0.35..0.9), rng.random_range(0.35..0.9));
    let alt = alt_colour(rng, base);
    let tile = |scale: f32| match round {
        Some(r) => {
            let n = ((TAU * r / scale / 2.0).round().max(1.0)) * 2.0;
            TAU * r / n
        }
        None => scale,
    };
    let pattern = match rng.random_range(0..10u32) {
        0..=3 => Pattern::Solid,
        4..=5 => Pattern::Checker { scale: tile(rng.random_range(0.15..0.3)) },
        6..=7 => {
            // Round objects get exact vertical (cos = 1) or horizontal (sin = 1) bands.
            let (sin, cos) = if round.is_some() {
                if rng.random_bool(0.5) { (0.0, 1.0) } else { (1.0, 0.0) }
            } else {
                rng.random_range(0.0..PI).sin_cos()
            };
            let scale = rng.random_range(0.1..0.25);
            // Only bands that depend on u (the arc length) must tile the circumference.
            let scale = if sin == 0.0 { tile(scale) } else { scale };
            Pattern::Stripes { scale, cos, sin }
        }
        _ if round.is_some() => Pattern::Solid,
        _ => Pattern::Noise { scale: rng.random_range(0.15..0.4), seed: rng.random() },
    };
    Material { base, alt, pattern }
}
