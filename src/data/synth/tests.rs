//! Known-answer tests of the renderer's output: determinism, geometric consistency of depth
//! and normals, edge/segmentation alignment, label validity and image statistics.

use super::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn normal_bits(v: &[[f32; 3]]) -> Vec<[u32; 3]> {
    v.iter().map(|n| n.map(f32::to_bits)).collect()
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn assert_identical(a: &RenderedScene, b: &RenderedScene) {
    assert_eq!((a.seed, a.width, a.height), (b.seed, b.width, b.height));
    assert_eq!(
        [a.camera.fx, a.camera.fy, a.camera.cx, a.camera.cy].map(f32::to_bits),
        [b.camera.fx, b.camera.fy, b.camera.cx, b.camera.cy].map(f32::to_bits)
    );
    assert_eq!(a.rgb, b.rgb);
    assert_eq!(a.class, b.class);
    assert_eq!(bits(&a.depth), bits(&b.depth));
    assert_eq!(normal_bits(&a.normal), normal_bits(&b.normal));
    assert_eq!(bits(&a.keypoints), bits(&b.keypoints));
    assert_eq!(bits(&a.edges), bits(&b.edges));
    assert_eq!(a.edge_pixels, b.edge_pixels);
}

#[test]
fn deterministic_and_seed_dependent() {
    let a = render_scene(11, 64);
    let b = render_scene(11, 64);
    assert_identical(&a, &b);
    let c = render_scene(12, 64);
    assert_ne!(a.rgb, c.rgb);
    assert_ne!(bits(&a.depth), bits(&c.depth));
    // Parallel batch rendering gives the same scenes, in seed order.
    let many = render_many(10, 3, 64);
    assert_eq!(many.len(), 3);
    assert_identical(&many[1], &a);
    assert_identical(&many[2], &c);
}

#[test]
fn same_seed_is_same_scene_at_any_size() {
    // The scene does not depend on the size: a pixel centre of the 32² image is also a pixel
    // centre of the 96² image (pixel 3u+1), so they see the same point.
    let small = render_scene(5, 32);
    let large = render_scene(5, 96);
    let mut same = 0;
    for v in 0..32 {
        for u in 0..32 {
            let (i, j) = (v * 32 + u, (3 * v + 1) * 96 + 3 * u + 1);
            same += (small.class[i] == large.class[j] && (small.depth[i] - large.depth[j]).abs() < 1e-3 * small.depth[i]) as usize;
        }
    }
    assert!(same >= 32 * 32 * 99 / 100, "{same}");
}

#[test]
fn camera_projection_round_trip() {
    let cam = Camera { fx: 100.0, fy: 100.0, cx: 64.0, cy: 64.0 };
    assert_eq!(cam.ray_dir(64, 64), [0.005, 0.005, 1.0]);
    let p = cam.backproject(10, 100, 3.0);
    let [u, v] = cam.project(p).unwrap();
    assert!((u - 10.5).abs() < 1e-4 && (v - 100.5).abs() < 1e-4);
    assert!(cam.project([0.0, 0.0, -1.0]).is_none());
}

#[test]
fn depth_and_normals_agree_on_planar_regions() {
    let size = 128;
    let (mut total, mut good) = (0usize, 0usize);
    for seed in 0..8 {
        let s = render_scene(seed, size);
        let p = |u: usize, v: usize| s.camera.backproject(u, v, s.depth[v * size + u]);
        for v in 1..size - 1 {
            for u in 1..size - 1 {
                let i = v * size + u;
                let planar = (v - 1..=v + 1).all(|y| {
                    (u - 1..=u + 1).all(|x| {
                        let j = y * size + x;
                        s.class[j] == s.class[i] && dot(s.normal[j], s.normal[i]) > 1.0 - 1e-6
                    })
                });
                if !planar {
                    continue;
                }
                let dx = sub(p(u + 1, v), p(u - 1, v));
                let dy = sub(p(u, v + 1), p(u, v - 1));
                let mut n = cross(dx, dy);
                let len = dot(n, n).sqrt();
                n = n.map(|c| c / len);
                if dot(n, p(u, v)) > 0.0 {
                    n = n.map(|c| -c);
                }
                let angle = dot(n, s.normal[i]).clamp(-1.0, 1.0).acos().to_degrees();
                total += 1;
                good += (angle < 2.0) as usize;
            }
        }
    }
    println!("planar pixels within 2°: {good} of {total}");
    assert!(total > 8 * size * size / 2, "too few planar pixels: {total}");
    assert!(good as f64 >= 0.99 * total as f64, "{good} of {total} within 2°");
}

#[test]
fn every_segmentation_boundary_has_an_edge_nearby() {
    let size = 128;
    for seed in 0..10 {
        let s = render_scene(seed, size);
        let at = |x: i64, y: i64| (y as usize) * size + x as usize;
        let n = size as i64;
        let mut boundary = 0;
        for y in 0..n {
            for x in 0..n {
                let c = s.class[at(x, y)];
                let is_boundary = [(1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|&(dx, dy)| {
                    let (qx, qy) = (x + dx, y + dy);
                    qx >= 0 && qy >= 0 && qx < n && qy < n && s.class[at(qx, qy)] != c
                });
                if !is_boundary {
                    continue;
                }
                boundary += 1;
                let near_edge = (-1..=1).any(|dy| {
                    (-1..=1).any(|dx| {
                        let (qx, qy) = (x + dx, y + dy);
                        qx >= 0 && qy >= 0 && qx < n && qy < n && s.edge_pixels[at(qx, qy)]
                    })
                });
                assert!(near_edge, "seed {seed}: boundary pixel ({x}, {y}) has no edge within 1 px");
            }
        }
        assert!(boundary > 0, "seed {seed} has no class boundary");
    }
}

#[test]
fn labels_are_valid() {
    for seed in 0..10 {
        let s = render_scene(seed, 96);
        let n = s.width * s.height;
        for v in [s.rgb.len(), s.class.len(), s.depth.len(), s.normal.len(), s.keypoints.len(), s.edges.len()] {
            assert_eq!(v, n);
        }
        for v in 0..s.height {
            for u in 0..s.width {
                let i = v * s.width + u;
                let d = s.depth[i];
                assert!(d.is_finite() && d > 0.0, "depth {d}");
                assert!((s.class[i] as usize) < CLASS_NAMES.len());
                let nrm = s.normal[i];
                assert!((dot(nrm, nrm).sqrt() - 1.0).abs() < 1e-4, "normal not unit: {nrm:?}");
                assert!(dot(nrm, s.camera.ray_dir(u, v)) < 0.0, "normal faces away");
                assert!((0.0..=1.0).contains(&s.keypoints[i]));
                assert!((0.0..=1.0).contains(&s.edges[i]));
            }
        }
    }
}

#[test]
fn image_statistics_are_not_degenerate() {
    let size = 128;
    let scenes = render_many(100, 20, size);
    let n = (size * size) as f64;
    let (mut classes_seen, mut with_peak) = (0usize, 0usize);
    for s in &scenes {
        let mean = s.rgb.iter().flatten().map(|&c| c as f64).sum::<f64>() / (3.0 * n);
        assert!((40.0..=215.0).contains(&mean), "seed {}: mean {mean}", s.seed);
        for ch in 0..3 {
            let m = s.rgb.iter().map(|p| p[ch] as f64).sum::<f64>() / n;
            let var = s.rgb.iter().map(|p| (p[ch] as f64 - m).powi(2)).sum::<f64>() / n;
            assert!(var.sqrt() > 15.0, "seed {}: channel {ch} std {}", s.seed, var.sqrt());
        }
        let mut present = [false; 256];
        s.class.iter().for_each(|&c| present[c as usize] = true);
        classes_seen += present.iter().filter(|&&p| p).count();
        with_peak += s.keypoints.iter().any(|&k| k > 0.9) as usize;
        let edge_fraction = s.edge_pixels.iter().filter(|&&e| e).count() as f64 / n;
        assert!((0.02..=0.40).contains(&edge_fraction), "seed {}: edge fraction {edge_fraction}", s.seed);
        // The strength is a normalised blur of the edge pixels: the same mean, up to the border.
        let strength = s.edges.iter().map(|&e| e as f64).sum::<f64>() / n;
        assert!((strength - edge_fraction).abs() < 0.1 * edge_fraction, "seed {}: strength {strength} vs {edge_fraction}", s.seed);
    }
    let mean_classes = classes_seen as f64 / scenes.len() as f64;
    assert!(mean_classes >= 4.0, "only {mean_classes} classes per image on average");
    assert!(with_peak >= 16, "only {with_peak} of 20 scenes have a keypoint peak");
}

#[test]
fn keypoint_peaks_are_exact_and_lie_on_edges() {
    // Blobs are radially decreasing and combined by max, so every local maximum of the heat
    // map is a blob centre of value exactly 1; salient points are corners and outline points,
    // so an edge pixel must be next to each of them.
    let size = 128;
    let n = size as i64;
    let (mut peaks, mut on_edge) = (0usize, 0usize);
    for seed in 0..10 {
        let s = render_scene(seed, size);
        let at = |x: i64, y: i64| (y as usize) * size + x as usize;
        for y in 0..n {
            for x in 0..n {
                let k = s.keypoints[at(x, y)];
                if k == 0.0 {
                    continue;
                }
                let neighbours = (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (x + dx, y + dy)));
                let is_max =
                    neighbours.filter(|&(qx, qy)| qx >= 0 && qy >= 0 && qx < n && qy < n).all(|(qx, qy)| s.keypoints[at(qx, qy)] <= k);
                if !is_max {
                    continue;
                }
                assert_eq!(k, 1.0, "seed {seed}: local maximum {k} at ({x}, {y})");
                peaks += 1;
                let near_edge = (-1..=1).any(|dy| {
                    (-1..=1).any(|dx| {
                        let (qx, qy) = (x + dx, y + dy);
                        qx >= 0 && qy >= 0 && qx < n && qy < n && s.edge_pixels[at(qx, qy)]
                    })
                });
                on_edge += near_edge as usize;
                if !near_edge {
                    println!("seed {seed}: peak at ({x}, {y}) without edge, class {}", s.class[at(x, y)]);
                }
            }
        }
    }
    println!("keypoint peaks next to an edge: {on_edge} of {peaks}");
    assert!(peaks >= 50, "only {peaks} keypoints in 10 scenes");
    assert!(on_edge as f64 >= 0.97 * peaks as f64, "{on_edge} of {peaks} peaks next to an edge");
}

#[test]
fn objects_and_decals_appear_across_seeds() {
    // Over a batch every class shows up somewhere.
    let scenes = render_many(0, 40, 64);
    let mut present = vec![false; CLASS_NAMES.len()];
    for s in &scenes {
        s.class.iter().for_each(|&c| present[c as usize] = true);
    }
    for (c, p) in present.iter().enumerate() {
        assert!(p, "class {} never visible", CLASS_NAMES[c]);
    }
}

#[test]
fn contact_sheet_layout() {
    let s = render_scene(3, 40);
    let sheet = contact_sheet(&s);
    assert_eq!((sheet.width(), sheet.height()), (6 * 40 + 5 * 2, 40));
    // First panel is the RGB image; gaps are white.
    assert_eq!(sheet.get_pixel(5, 7).0, s.rgb[7 * 40 + 5]);
    assert_eq!(sheet.get_pixel(40, 0).0, [255, 255, 255]);
    assert_eq!(sheet.get_pixel(42 + 5, 7).0, class_colour(s.class[7 * 40 + 5]));
}
