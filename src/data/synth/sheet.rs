//! Contact sheet: the RGB image and its five labels side by side, for eyeballing a scene.

use image::{Rgb, RgbImage};

use super::RenderedScene;

/// Gap between panels, in pixels (filled white).
const GAP: usize = 2;

/// Fixed display colour of each class id (ids beyond the table fall back to magenta-grey).
pub fn class_colour(class: u8) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 10] = [
        [128, 64, 128],  // floor
        [70, 130, 180],  // wall
        [250, 250, 160], // ceiling
        [230, 25, 75],   // box
        [60, 180, 75],   // sphere
        [255, 225, 25],  // cylinder
        [245, 130, 48],  // painting
        [145, 30, 180],  // rug
        [70, 240, 240],  // door
        [240, 50, 230],  // table
    ];
    PALETTE.get(class as usize).copied().unwrap_or([160, 120, 160])
}

/// The RGB image and the five labels side by side with a 2-px white gap: RGB | class
/// (palette of [`class_colour`]) | depth (grey, linear between this image's nearest = white
/// and farthest = black) | normal ((n + 1)/2 as RGB) | keypoints (grey) | edges (grey).
/// Size: (6·width + 5·2) × height.
pub fn contact_sheet(scene: &RenderedScene) -> RgbImage {
    let (w, h) = (scene.width, scene.height);
    let mut img = RgbImage::from_pixel((6 * w + 5 * GAP) as u32, h as u32, Rgb([255, 255, 255]));
    let (near, far) = scene.depth.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    let span = (far - near).max(1e-6);
    let grey = |x: f32| {
        let g = (x.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        [g, g, g]
    };
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let n = scene.normal[i];
            let panels = [
                scene.rgb[i],
                class_colour(scene.class[i]),
                grey((far - scene.depth[i]) / span),
                n.map(|c| ((c + 1.0) * 0.5 * 255.0).clamp(0.0, 255.0).round() as u8),
                grey(scene.keypoints[i]),
                grey(scene.edges[i]),
            ];
            for (k, px) in panels.into_iter().enumerate() {
                img.put_pixel((k * (w + GAP) + x) as u32, y as u32, Rgb(px));
            }
        }
    }
    img
}
