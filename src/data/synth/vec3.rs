//! Minimal 3-vector and camera-basis helpers used by the renderer (plain `f32`, value semantics).

use std::ops::{Add, Mul, Neg, Sub};

/// A 3-vector; used for points, directions and normals in world and camera frames.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct V3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl V3 {
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        V3 { x, y, z }
    }

    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    pub fn cross(self, o: V3) -> V3 {
        V3::new(self.y * o.z - self.z * o.y, self.z * o.x - self.x * o.z, self.x * o.y - self.y * o.x)
    }

    pub fn length(self) -> f32 {
        self.dot(self).sqrt()
    }

    pub fn normalized(self) -> V3 {
        self * (1.0 / self.length())
    }

    /// Component by axis index (0 = x, 1 = y, 2 = z).
    pub fn axis(self, i: usize) -> f32 {
        match i {
            0 => self.x,
            1 => self.y,
            _ => self.z,
        }
    }

    /// The vector with `s` on axis `i` and zeros elsewhere.
    pub fn along(i: usize, s: f32) -> V3 {
        match i {
            0 => V3::new(s, 0.0, 0.0),
            1 => V3::new(0.0, s, 0.0),
            _ => V3::new(0.0, 0.0, s),
        }
    }

    pub fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }
}

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        V3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        V3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        V3::new(self.x * s, self.y * s, self.z * s)
    }
}

impl Neg for V3 {
    type Output = V3;
    fn neg(self) -> V3 {
        V3::new(-self.x, -self.y, -self.z)
    }
}

/// Orientation of the camera: the world-frame directions of the camera axes
/// (x right, y down, z forward — a right-handed frame, OpenCV convention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Basis {
    pub right: V3,
    pub down: V3,
    pub fwd: V3,
}

impl Basis {
    /// World is y-up. `yaw` turns about world up (yaw 0 looks along +z, yaw π/2 along +x),
    /// `pitch` > 0 looks up, `roll` turns the image about the optical axis.
    pub fn from_angles(yaw: f32, pitch: f32, roll: f32) -> Basis {
        let fwd = V3::new(yaw.sin() * pitch.cos(), pitch.sin(), yaw.cos() * pitch.cos());
        // fwd × up is "right" for a y-down image frame; fwd × right is then "down".
        let r0 = fwd.cross(V3::new(0.0, 1.0, 0.0)).normalized();
        let d0 = fwd.cross(r0);
        let (s, c) = roll.sin_cos();
        Basis { right: r0 * c + d0 * s, down: d0 * c - r0 * s, fwd }
    }

    /// Camera-frame vector → world-frame vector.
    pub fn to_world(self, c: V3) -> V3 {
        self.right * c.x + self.down * c.y + self.fwd * c.z
    }

    /// World-frame vector → camera-frame vector.
    pub fn to_cam(self, w: V3) -> V3 {
        V3::new(self.right.dot(w), self.down.dot(w), self.fwd.dot(w))
    }
}

impl From<[f32; 3]> for V3 {
    fn from(a: [f32; 3]) -> V3 {
        V3::new(a[0], a[1], a[2])
    }
}
