//! Adversarial-example pictures (the paper's Figure 6): for one sample, a grid with a row for the
//! ground truth, one for the clean input and one per attack (direction × ε); columns are the input,
//! the perturbation amplified so that ±ε spans the full range, and each task's prediction —
//! segmentation in a fixed class palette, depth in viridis, normals as RGB, keypoints and edges in
//! inferno. Depth and heat maps share the ground truth's value range in every row, so rows compare.
use crate::attack::{Attack, AttackConfig, BatchContext, fmt_eps};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::report::paper::plot::{FAMILY, err, register_font};
use crate::report::paper::view::task_name;
use crate::task::{Task, TaskKind, TaskMap};
use image::{Rgb, RgbImage};
use plotters::prelude::*;
use tch::{Device, Kind, Tensor};

/// Fixed display colour of each class id (20 colours, then repeating).
pub fn class_colour(class: usize) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 20] = [
        [128, 64, 128],
        [70, 130, 180],
        [250, 250, 160],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [220, 190, 255],
        [170, 110, 40],
        [255, 250, 200],
        [128, 0, 0],
        [170, 255, 195],
        [128, 128, 0],
        [0, 0, 128],
    ];
    PALETTE[class % PALETTE.len()]
}

/// A colour map by control points at equal spacing over 0..1.
fn colour_map(stops: &[[u8; 3]], t: f64) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    std::array::from_fn(|c| (stops[i][c] as f64 * (1.0 - f) + stops[i + 1][c] as f64 * f).round() as u8)
}

/// Viridis (perceptually uniform), 0 = dark purple, 1 = yellow.
pub fn viridis(t: f64) -> [u8; 3] {
    colour_map(
        &[[68, 1, 84], [70, 50, 127], [54, 92, 141], [39, 127, 142], [31, 161, 135], [74, 194, 109], [159, 218, 58], [253, 231, 37]],
        t,
    )
}

/// Inferno (perceptually uniform), 0 = black, 1 = pale yellow.
pub fn inferno(t: f64) -> [u8; 3] {
    colour_map(&[[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]], t)
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().flatten(0, -1))?)
}

/// One task's `[1, C, H, W]` map (prediction or label) as an `H × W` image. `range` is the value
/// range of depth and heat maps; `valid` masks ground truth (invalid pixels dark grey).
fn colourise(task: TaskKind, map: &Tensor, valid: Option<&Tensor>, range: (f64, f64), prediction: bool) -> Result<RgbImage> {
    let (_, c, h, w) = map.size4()?;
    let n = (h * w) as usize;
    let v = values(map)?;
    let mask = valid.map(values).transpose()?;
    let (lo, hi) = range;
    let scale = |x: f32| (x as f64 - lo) / (hi - lo).max(1e-9);
    let mut img = RgbImage::new(w as u32, h as u32);
    for i in 0..n {
        let px = if mask.as_ref().is_some_and(|m| m[i] <= 0.0) {
            [40, 40, 40]
        } else {
            match task {
                TaskKind::SegmentSemantic if prediction => {
                    let best = (0..c as usize).max_by(|&a, &b| v[a * n + i].total_cmp(&v[b * n + i])).unwrap_or(0);
                    class_colour(best)
                }
                TaskKind::SegmentSemantic => class_colour(v[i].max(0.0).round() as usize),
                TaskKind::Normal => {
                    let (x, y, z) = (v[i], v[n + i], v[2 * n + i]);
                    let len = (x * x + y * y + z * z).sqrt().max(1e-6);
                    [x, y, z].map(|a| (((a / len) + 1.0) * 0.5 * 255.0).clamp(0.0, 255.0).round() as u8)
                }
                // Near = bright.
                TaskKind::DepthZbuffer => viridis(1.0 - scale(v[i])),
                TaskKind::Keypoints2d | TaskKind::EdgeTexture => inferno(scale(v[i])),
            }
        };
        img.put_pixel((i % w as usize) as u32, (i / w as usize) as u32, Rgb(px));
    }
    Ok(img)
}

/// Range of the valid values of a `[1, C, H, W]` label.
fn label_range(target: &crate::data::Target) -> Result<(f64, f64)> {
    let v = values(&target.value)?;
    let m = values(&target.valid)?;
    let (lo, hi) = v
        .iter()
        .zip(&m)
        .filter(|(_, m)| **m > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (v, _)| (lo.min(*v as f64), hi.max(*v as f64)));
    Ok(if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) })
}

fn rgb_image(model: &Model, x: &Tensor) -> Result<RgbImage> {
    let px = model.input.to_rgb_pixels(x).clamp(0.0, 255.0).round().to_kind(Kind::Uint8).squeeze_dim(0);
    let (h, w) = (px.size()[1] as u32, px.size()[2] as u32);
    let hwc = Vec::<u8>::try_from(px.permute([1, 2, 0]).contiguous().flatten(0, -1).to_device(Device::Cpu))?;
    RgbImage::from_raw(w, h, hwc).ok_or_else(|| Error::shape("picture input", [h, w, 3], "another size"))
}

/// One row of the grid: its label and its tiles (`None` = blank).
struct GridRow {
    label: String,
    tiles: Vec<Option<RgbImage>>,
}

/// Renders the picture of the one-sample `batch` under `attacks` (ε > 0 each).
///
/// # Errors
/// A batch of more than one sample, tasks that do not match the model, or an attack that cannot run.
pub fn render(model: &Model, tasks: &[Task], batch: &Batch, attacks: &[AttackConfig]) -> Result<RgbImage> {
    if batch.len() != 1 {
        return Err(Error::config("picture", format!("needs one sample, got {}", batch.len())));
    }
    let kinds: Vec<TaskKind> = tasks.iter().map(|t| t.kind()).collect();
    let x = batch.x.to_kind(model.kind()).to_device(model.device());
    let (h, w) = (x.size()[2], x.size()[3]);
    let mut ranges = TaskMap::new();
    for &k in &kinds {
        let t = batch.targets.get(k).ok_or_else(|| Error::parameter("data", format!("the sample has no `{k}` label")))?;
        ranges.insert(k, label_range(t)?);
    }
    let predict = |x: &Tensor| -> Result<Vec<Option<RgbImage>>> {
        let _guard = tch::no_grad_guard();
        let out = model.forward_t(x, false)?;
        kinds
            .iter()
            .map(|&k| {
                let y = out.get(k).ok_or_else(|| Error::parameter("model", format!("gives no `{k}` output")))?;
                let (th, tw) = (h, w);
                let y = if y.size()[2..] == [th, tw] { y.shallow_clone() } else { y.upsample_nearest2d([th, tw], None, None) };
                Ok(Some(colourise(k, &y, None, *ranges.get(k).expect("set above"), true)?))
            })
            .collect()
    };
    let mut rows = Vec::new();
    let mut truth = vec![None, None];
    for &k in &kinds {
        let t = batch.targets.get(k).expect("checked above");
        let t = t.resized(h, w);
        truth.push(Some(colourise(k, &t.value, Some(&t.valid), *ranges.get(k).expect("set above"), false)?));
    }
    rows.push(GridRow { label: "ground truth".into(), tiles: truth });
    let clean_rgb = rgb_image(model, &x)?;
    let mut clean = vec![Some(clean_rgb), None];
    clean.extend(predict(&x)?);
    rows.push(GridRow { label: "clean (ε = 0)".into(), tiles: clean });
    for cfg in attacks {
        let outcome = Attack::new(cfg.clone())?.run(model, tasks, batch, BatchContext::at(0))?;
        let x_adv = outcome.x_adv.to_kind(model.kind());
        let to_px = |t: &Tensor| model.input.to_rgb_pixels(t);
        // ±ε grey levels → 0..255.
        let delta = ((to_px(&x_adv) - to_px(&x)) * (127.5 / cfg.eps.max(1e-6)) + 127.5).clamp(0.0, 255.0).round().to_kind(Kind::Uint8);
        let delta = delta.squeeze_dim(0).permute([1, 2, 0]).contiguous().flatten(0, -1).to_device(Device::Cpu);
        let delta = RgbImage::from_raw(w as u32, h as u32, Vec::<u8>::try_from(delta)?).expect("h × w × 3 bytes");
        let mut tiles = vec![Some(rgb_image(model, &x_adv)?), Some(delta)];
        tiles.extend(predict(&x_adv)?);
        let label = format!("{} {} ε = {}", cfg.rule.kind().display_name(), cfg.direction.display_name(), fmt_eps(cfg.eps));
        rows.push(GridRow { label, tiles });
    }
    // δ is amplified so that ±ε spans 0..255.
    let mut header = vec!["input".to_string(), "δ amplified".into()];
    header.extend(kinds.iter().map(|&k| task_name(k)));
    compose(&header, &rows, w as u32, h as u32)
}

/// Lays the rows out with a label column and a header, tiles enlarged to at least 128 px.
fn compose(header: &[String], rows: &[GridRow], w: u32, h: u32) -> Result<RgbImage> {
    let zoom = 128u32.div_ceil(w.min(h).max(1)).max(1);
    let (tw, th) = (w * zoom, h * zoom);
    let (label_w, header_h, gap) = (230u32, 28u32, 6u32);
    let cols = header.len() as u32;
    let width = label_w + cols * (tw + gap);
    let height = header_h + rows.len() as u32 * (th + gap);
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.tiles.iter().enumerate() {
            let Some(tile) = tile else { continue };
            let big = image::imageops::resize(tile, tw, th, image::imageops::FilterType::Nearest);
            image::imageops::overlay(
                &mut canvas,
                &big,
                (label_w + c as u32 * (tw + gap)) as i64,
                (header_h + r as u32 * (th + gap)) as i64,
            );
        }
    }
    register_font();
    let mut raw = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut raw, (width, height)).into_drawing_area();
        let style = (FAMILY, 15).into_font().color(&BLACK);
        for (c, name) in header.iter().enumerate() {
            let x = (label_w + c as u32 * (tw + gap)) as i32;
            root.draw(&Text::new(name.clone(), (x, 6), style.clone())).map_err(|e| Error::config("picture", err(e)))?;
        }
        for (r, row) in rows.iter().enumerate() {
            let y = (header_h + r as u32 * (th + gap) + th / 2) as i32 - 8;
            root.draw(&Text::new(row.label.clone(), (6, y), style.clone())).map_err(|e| Error::config("picture", err(e)))?;
        }
        root.present().map_err(|e| Error::config("picture", err(e)))?;
    }
    Ok(RgbImage::from_raw(width, height, raw).expect("the canvas buffer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps_hit_their_end_points_and_interpolate() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(inferno(-3.0), [0, 0, 4]);
        // Halfway between the 4th and 5th stops of inferno (t = 0.5 of 7 segments → 3.5).
        assert_eq!(inferno(0.5), [186, 57, 83]);
        assert_eq!(class_colour(20), class_colour(0));
    }
}
