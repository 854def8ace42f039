//! Per-pixel ray casting: nearest hit, Lambertian shading from one shadow-casting point light
//! plus ambient (with a global auto-exposure gain), and the raw per-pixel labels (class, depth, normal, surface-patch id).
//!
//! One ray per pixel through the pixel centre (no anti-aliasing), so every label is exactly
//! aligned with the RGB value of the same pixel.

use super::geometry::{Ray, room_exit, room_normal};
use super::scene::{FACE_CEILING, FACE_FLOOR, Scene, face_uv};
use super::vec3::V3;
use super::{CLASS_CEILING, CLASS_FLOOR, CLASS_WALL, Camera};

/// Smallest accepted hit distance (the camera is never closer than ~0.8 m to anything).
const T_MIN: f32 = 1e-4;
const AMBIENT: f32 = 0.08;
/// Distance (m) at which the point light has dropped to half strength (mild falloff keeps far
/// walls from going black).
const FALLOFF: f32 = 3.5;
const GAMMA: f32 = 1.0 / 2.2;
/// Auto-exposure: the image is scaled so that its mean linear luminance is this value
/// (≈ 120/255 after gamma), within the gain limits below.
const TARGET_LUMINANCE: f32 = 0.2;
const GAIN_RANGE: (f32, f32) = (0.5, 3.0);

/// Raw render output; `surf` is consumed by the edge labeller and not exported.
pub(super) struct Frame {
    pub rgb: Vec<[u8; 3]>,
    pub class: Vec<u8>,
    pub depth: Vec<f32>,
    pub normal: Vec<[f32; 3]>,
    pub surf: Vec<u32>,
}

/// Id of the surface patch a pixel sees: primitive (0 = room, then solids, then decals), face,
/// and albedo region. Equal ids ⇔ same smooth, uniformly patterned piece of one surface.
fn surface_id(prim: usize, face: u8, region: u8) -> u32 {
    ((prim as u32) << 8) | ((face as u32) << 3) | region as u32
}

struct Hit {
    t: f32,
    /// Geometric normal in the world frame (outward for solids, inward for the room).
    normal: V3,
    class: u8,
    albedo: [f32; 3],
    surf: u32,
}

/// Nearest surface along a ray that starts inside the room (it always hits something).
fn trace(scene: &Scene, ray: &Ray) -> Hit {
    let (mut t, room_face) = room_exit(scene.dims, ray);
    let mut nearest = None;
    for (i, solid) in scene.solids.iter().enumerate() {
        if let Some((ti, face)) = solid.shape.intersect(ray, T_MIN, t) {
            t = ti;
            nearest = Some((i, face));
        }
    }
    let p = ray.at(t);
    if let Some((i, face)) = nearest {
        let solid = &scene.solids[i];
        let (normal, (u, v)) = solid.shape.surface(p, face);
        let (albedo, region) = solid.material.albedo(u, v);
        return Hit { t, normal, class: solid.class, albedo, surf: surface_id(1 + i, face, region) };
    }
    let (u, v) = face_uv(room_face, p);
    let normal = room_normal(room_face);
    for (j, decal) in scene.decals.iter().enumerate() {
        if decal.face != room_face {
            continue;
        }
        if let Some((s, r)) = decal.local(u, v) {
            let (albedo, region) = decal.albedo(s, r);
            let surf = surface_id(1 + scene.solids.len() + j, room_face, region);
            return Hit { t, normal, class: decal.class, albedo, surf };
        }
    }
    let (class, material) = match room_face {
        FACE_FLOOR => (CLASS_FLOOR, &scene.floor),
        FACE_CEILING => (CLASS_CEILING, &scene.ceiling),
        _ => (CLASS_WALL, &scene.wall),
    };
    let (albedo, region) = material.albedo(u, v);
    Hit { t, normal, class, albedo, surf: surface_id(0, room_face, region) }
}

/// Linear Lambertian radiance at `p` with normal `n` facing the viewer.
fn shade(scene: &Scene, p: V3, n: V3, albedo: [f32; 3]) -> [f32; 3] {
    let to_light = scene.light - p;
    let dist2 = to_light.dot(to_light);
    let cos = n.dot(to_light) / dist2.sqrt();
    let mut irradiance = AMBIENT;
    if cos > 0.0 {
        // Lift the origin off the surface so the shadow ray does not hit its own surface.
        let o = p + n * 1e-3;
        let shadow = Ray { o, d: scene.light - o };
        let blocked = scene.solids.iter().any(|s| s.shape.intersect(&shadow, T_MIN, 1.0).is_some());
        if !blocked {
            irradiance += scene.light_power * cos / (1.0 + dist2 / (FALLOFF * FALLOFF));
        }
    }
    albedo.map(|a| a * irradiance)
}

/// Auto-exposure and gamma: linear radiance → 8-bit RGB.
fn expose(radiance: &[[f32; 3]]) -> Vec<[u8; 3]> {
    let luminance: f64 =
        radiance.iter().map(|c| (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) as f64).sum::<f64>() / radiance.len() as f64;
    let gain = (TARGET_LUMINANCE / luminance.max(1e-6) as f32).clamp(GAIN_RANGE.0, GAIN_RANGE.1);
    radiance.iter().map(|c| c.map(|x| ((x * gain).clamp(0.0, 1.0).powf(GAMMA) * 255.0 + 0.5) as u8)).collect()
}

/// Render the RGB image and raw labels of `scene` as seen through `cam` at `size`×`size`.
pub(super) fn render(scene: &Scene, cam: &Camera, size: usize) -> Frame {
    let n = size * size;
    let mut radiance = Vec::with_capacity(n);
    let mut frame = Frame {
        rgb: Vec::new(),
        class: Vec::with_capacity(n),
        depth: Vec::with_capacity(n),
        normal: Vec::with_capacity(n),
        surf: Vec::with_capacity(n),
    };
    for v in 0..size {
        for u in 0..size {
            // Camera-frame direction with z = 1, so the hit parameter is the z-depth.
            let dc = V3::from(cam.ray_dir(u, v));
            let ray = Ray { o: scene.eye, d: scene.basis.to_world(dc) };
            let hit = trace(scene, &ray);
            let mut nc = scene.basis.to_cam(hit.normal).normalized();
            if nc.dot(dc) > 0.0 {
                nc = -nc;
            }
            let nw = if hit.normal.dot(ray.d) > 0.0 { -hit.normal } else { hit.normal };
            radiance.push(shade(scene, ray.at(hit.t), nw, hit.albedo));
            frame.class.push(hit.class);
            frame.depth.push(hit.t);
            frame.normal.push(nc.to_array());
            frame.surf.push(hit.surf);
        }
    }
    frame.rgb = expose(&radiance);
    frame
}
