//! Known-answer tests of every loss and metric on tiny tensors; each expected value is worked out
//! by hand in the comment next to it.
use super::Target;
use super::*;
use tch::{Device, Kind, Tensor};

fn t4(values: &[f32], shape: [i64; 4]) -> Tensor {
    Tensor::from_slice(values).view(shape)
}

fn target(value: Tensor, valid: &[f32]) -> Target {
    let (b, _, h, w) = value.size4().unwrap();
    Target { value, valid: t4(valid, [b, 1, h, w]) }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5 * (1.0 + b.abs())
}

fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t).unwrap()
}

fn vec1(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
}

fn seg_task(classes: i64, weights: Option<Vec<f32>>) -> Task {
    Task { spec: TaskSpec { kind: TaskKind::SegmentSemantic, channels: classes }, class_weights: weights, custom: None }
}

#[test]
fn segmentation_cross_entropy_with_ignore_and_class_weights() {
    // One sample, two pixels. Pixel 0: logits (0, ln 3) → p(class 1) = 3/4, label 1 → −ln(3/4).
    // Pixel 1: logits (0, 0), label 0 → ln 2.
    let ln3 = 3f32.ln();
    let logits = t4(&[0.0, 0.0, ln3, 0.0], [1, 2, 1, 2]);
    let labels = t4(&[1.0, 0.0], [1, 1, 1, 2]);
    let both = target(labels.shallow_clone(), &[1.0, 1.0]);
    let first = target(labels.shallow_clone(), &[1.0, 0.0]);
    let task = seg_task(2, None);
    let l43 = (4.0f64 / 3.0).ln();
    assert!(close(scalar(&task.loss(&logits, &first).unwrap().pooled()), l43));
    assert!(close(scalar(&task.loss(&logits, &both).unwrap().pooled()), (l43 + 2f64.ln()) / 2.0));
    // Class weights (2, 0.5): Σ w·nll = 0.5·ln(4/3) + 2·ln 2 over Σ w = 2.5.
    let weighted = seg_task(2, Some(vec![2.0, 0.5]));
    assert!(close(scalar(&weighted.loss(&logits, &both).unwrap().pooled()), (0.5 * l43 + 2.0 * 2f64.ln()) / 2.5));
}

#[test]
fn per_sample_losses_are_zero_not_nan_without_valid_pixels() {
    // Sample 0 as above with one valid pixel; sample 1 has no valid pixel at all.
    let ln3 = 3f32.ln();
    let logits = t4(&[0.0, 0.0, ln3, 0.0, 5.0, 1.0, -2.0, 3.0], [2, 2, 1, 2]);
    let labels = target(t4(&[1.0, 0.0, 0.0, 1.0], [2, 1, 1, 2]), &[1.0, 0.0, 0.0, 0.0]);
    let parts = seg_task(2, None).loss(&logits, &labels).unwrap();
    let per = vec1(&parts.per_sample());
    assert!(close(per[0], (4.0f64 / 3.0).ln()));
    assert_eq!(per[1], 0.0);
    assert!(close(scalar(&parts.pooled()), (4.0f64 / 3.0).ln()), "the empty sample adds nothing to the pooled mean");
    assert_eq!(vec1(&parts.has_pixels()), vec![1.0, 0.0]);
}

#[test]
fn normal_loss_is_one_minus_cosine_of_normalised_vectors() {
    // Pixel 0: (1,0,0) vs (0,1,0) → cos 0 → 1. Pixel 1: (1,1,0) vs (2,0,0) → cos 1/√2.
    // Layout [B=1, C=3, H=1, W=2]: channel-major values.
    let pred = t4(&[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], [1, 3, 1, 2]);
    let label = t4(&[0.0, 2.0, 1.0, 0.0, 0.0, 0.0], [1, 3, 1, 2]);
    let task = Task::new(TaskSpec { kind: TaskKind::Normal, channels: 3 });
    let loss = scalar(&task.loss(&pred, &target(label.shallow_clone(), &[1.0, 1.0])).unwrap().pooled());
    assert!(close(loss, (1.0 + 1.0 - 0.5f64.sqrt()) / 2.0));
    let only_second = scalar(&task.loss(&pred, &target(label, &[0.0, 1.0])).unwrap().pooled());
    assert!(close(only_second, 1.0 - 0.5f64.sqrt()));
}

#[test]
fn regression_loss_is_masked_l1() {
    // |1 − 1.5| + |2 − 2| over two valid pixels = 0.25; the third pixel (|5 − 1|) is masked.
    let task = Task::new(TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 });
    let loss = task.loss(&t4(&[1.0, 2.0, 5.0], [1, 1, 1, 3]), &target(t4(&[1.5, 2.0, 1.0], [1, 1, 1, 3]), &[1.0, 1.0, 0.0])).unwrap();
    assert!(close(scalar(&loss.pooled()), 0.25));
}

/// One-hot logits (scaled) for the given class per pixel, `[1, C, 1, N]`.
fn one_hot_logits(pred: &[i64], classes: i64) -> Tensor {
    let idx = Tensor::from_slice(pred).view([1, 1, 1, pred.len() as i64]);
    Tensor::zeros([1, classes, 1, pred.len() as i64], (Kind::Float, Device::Cpu)).scatter_value(1, &idx, 10.0)
}

fn named(values: &[MetricValue], name: &str) -> f64 {
    values.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no metric {name}")).value
}

#[test]
fn miou_and_pixel_accuracy_in_both_conventions() {
    // gt 0,0,1,1,2 / pred 0,1,1,1,0. Confusion rows (gt): [1,1,0], [0,2,0], [1,0,0].
    // IoU0 = 1/(2+2−1) = 1/3, IoU1 = 2/(2+3−2) = 2/3, IoU2 = 0/(1+0−0) = 0.
    // Standard mIoU = (1/3+2/3+0)/3 = 1/3; reference drops class 2 (no TP): (1/3+2/3)/2 = 1/2.
    // Second batch: one pixel, gt 2 pred 2. Then IoU2 = 1/(2+1−1) = 1/2.
    let task = seg_task(3, None);
    let labels = target(t4(&[0.0, 0.0, 1.0, 1.0, 2.0], [1, 1, 1, 5]), &[1.0; 5]);
    for convention in [Convention::Standard, Convention::Reference] {
        let mut m = task.metric(MetricProfile::Full, convention);
        m.update(&one_hot_logits(&[0, 1, 1, 1, 0], 3), &labels).unwrap();
        let v = m.finish(Convention::Standard);
        let want = if convention == Convention::Standard { 1.0 / 3.0 } else { 0.5 };
        assert!(close(named(&v, "mIoU"), want), "{convention:?}");
        assert!(close(named(&v, "Pixel Acc"), 0.6));
        // Pixel accuracy: standard pools pixels, 4/6; reference averages batches, (0.6 + 1)/2.
        m.update(&one_hot_logits(&[2], 3), &target(t4(&[2.0], [1, 1, 1, 1]), &[1.0])).unwrap();
        let v = m.finish(Convention::Standard);
        let acc = if convention == Convention::Standard { 4.0 / 6.0 } else { 0.8 };
        assert!(close(named(&v, "Pixel Acc"), acc), "{convention:?}");
        // Class 2 now has a true positive, so both conventions average all three classes.
        assert!(close(named(&v, "mIoU"), (1.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0));
    }
}

#[test]
fn predictions_are_upsampled_to_label_size_with_nearest() {
    // A 1×2 prediction scored against 1×4 labels: nearest picks columns 0,0,1,1.
    let task = seg_task(2, None);
    let mut m = task.metric(MetricProfile::Full, Convention::Standard);
    m.update(&one_hot_logits(&[0, 1], 2), &target(t4(&[0.0, 0.0, 1.0, 0.0], [1, 1, 1, 4]), &[1.0; 4])).unwrap();
    assert!(close(named(&m.finish(Convention::Standard), "Pixel Acc"), 0.75));
}

#[test]
fn depth_metrics_and_the_negative_prediction_quirk() {
    // pred (2, −1, 1) vs gt (1, 1, 1): abs = rel = (1 + 2 + 0)/3 = 1.
    // Ratios max(z/y, y/z): 2, −1, 1. δ<1.25^k: standard counts only the last pixel (33.3 %);
    // the reference also counts the negative ratio (66.7 %). 2 > 1.25³ = 1.953 so never within.
    let task = Task::new(TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 });
    let pred = t4(&[2.0, -1.0, 1.0], [1, 1, 1, 3]);
    let gt = target(t4(&[1.0, 1.0, 1.0], [1, 1, 1, 3]), &[1.0; 3]);
    for (convention, within) in [(Convention::Standard, 100.0 / 3.0), (Convention::Reference, 200.0 / 3.0)] {
        let mut m = task.metric(MetricProfile::Full, convention);
        m.update(&pred, &gt).unwrap();
        let v = m.finish(Convention::Standard);
        assert!(close(named(&v, "abs_err"), 1.0) && close(named(&v, "rel_err"), 1.0));
        for k in ["sigma_1.25", "sigma_1.25^2", "sigma_1.25^3"] {
            assert!(close(named(&v, k), within), "{convention:?} {k}");
        }
    }
}

#[test]
fn regression_errors_pool_pixels_or_weight_batches() {
    // Batch A: 1 sample, 3 valid pixels with errors 1, 1, 1 → 1. Batch B: 1 sample, 1 pixel error 3.
    // Standard: (3 + 3)/4 = 1.5. Reference: batch means (1 + 3)/2 = 2.
    let task = Task::new(TaskSpec { kind: TaskKind::Keypoints2d, channels: 1 });
    for (convention, want) in [(Convention::Standard, 1.5), (Convention::Reference, 2.0)] {
        let mut m = task.metric(MetricProfile::Taskonomy, convention);
        m.update(&t4(&[1.0, 1.0, 1.0], [1, 1, 1, 3]), &target(t4(&[0.0, 0.0, 0.0], [1, 1, 1, 3]), &[1.0; 3])).unwrap();
        m.update(&t4(&[3.0], [1, 1, 1, 1]), &target(t4(&[0.0], [1, 1, 1, 1]), &[1.0])).unwrap();
        assert!(close(named(&m.finish(convention), "key_err"), want), "{convention:?}");
    }
}

#[test]
fn normal_angle_metrics() {
    // Angles 0°, 20°, 45°, 90° to the label (0,0,1): mean 38.75, median (20+45)/2 = 32.5,
    // within 11.25° 25 %, within 22.5° 50 %, within 30° 50 %. Taskonomy's cosine: mean of cosines.
    let angles = [0.0f64, 20.0, 45.0, 90.0];
    let (s, c): (Vec<f32>, Vec<f32>) = angles.iter().map(|a| (a.to_radians().sin() as f32, a.to_radians().cos() as f32)).unzip();
    let mut pred = s.clone();
    pred.extend([0.0f32; 4]);
    pred.extend(&c);
    let pred = t4(&pred, [1, 3, 1, 4]);
    let mut label = vec![0.0f32; 8];
    label.extend([1.0f32; 4]);
    let gt = target(t4(&label, [1, 3, 1, 4]), &[1.0; 4]);
    let task = Task::new(TaskSpec { kind: TaskKind::Normal, channels: 3 });
    let mut m = task.metric(MetricProfile::Full, Convention::Standard);
    m.update(&pred, &gt).unwrap();
    let v = m.finish(Convention::Standard);
    assert!((named(&v, "Angle Mean") - 38.75).abs() < 1e-3);
    assert!((named(&v, "Angle Median") - 32.5).abs() < 2e-3);
    assert!(close(named(&v, "Angle 11.25"), 25.0) && close(named(&v, "Angle 22.5"), 50.0) && close(named(&v, "Angle 30"), 50.0));
    let mut single = task.metric(MetricProfile::Taskonomy, Convention::Standard);
    single.update(&pred, &gt).unwrap();
    let want = angles.iter().map(|a| a.to_radians().cos()).sum::<f64>() / 4.0;
    assert!(close(named(&single.finish(Convention::Standard), "cosine_similarity"), want));
}

#[test]
fn taskonomy_segmentation_err_is_weighted_cross_entropy() {
    // Same two pixels as the loss test, weights (2, 0.5), both valid: (0.5·ln(4/3) + 2·ln 2)/2.5.
    let ln3 = 3f32.ln();
    let logits = t4(&[0.0, 0.0, ln3, 0.0], [1, 2, 1, 2]);
    let task = seg_task(2, Some(vec![2.0, 0.5]));
    let mut m = task.metric(MetricProfile::Taskonomy, Convention::Standard);
    m.update(&logits, &target(t4(&[1.0, 0.0], [1, 1, 1, 2]), &[1.0, 1.0])).unwrap();
    let want = (0.5 * (4.0f64 / 3.0).ln() + 2.0 * 2f64.ln()) / 2.5;
    assert!(close(named(&m.finish(Convention::Standard), "err"), want));
}

#[test]
fn reference_convention_rounds_to_four_decimals() {
    let task = Task::new(TaskSpec { kind: TaskKind::EdgeTexture, channels: 1 });
    let mut m = task.metric(MetricProfile::Taskonomy, Convention::Reference);
    m.update(&t4(&[0.123456], [1, 1, 1, 1]), &target(t4(&[0.0], [1, 1, 1, 1]), &[1.0])).unwrap();
    assert_eq!(named(&m.finish(Convention::Reference), "edge_err"), 0.1235);
}

/// One 1×N normal map with predictions `pred` (x, y, z per pixel) against the label (0, 0, 1).
fn normal_case(pred: &[[f32; 3]]) -> (Tensor, Target) {
    let n = pred.len() as i64;
    let channel = |c: usize| pred.iter().map(|p| p[c]).collect::<Vec<f32>>();
    let values: Vec<f32> = [channel(0), channel(1), channel(2)].concat();
    let mut label = vec![0.0f32; 2 * pred.len()];
    label.extend(vec![1.0f32; pred.len()]);
    (t4(&values, [1, 3, 1, n]), target(t4(&label, [1, 3, 1, n]), &vec![1.0; pred.len()]))
}

#[test]
fn reference_normals_take_the_exact_median_and_the_float32_mean() {
    // Cosines 1, 0, −1: angles 0°, 90°, 180°, exact in float32 too (acos(0) / π = 0.5). The exact
    // median is 90 and the mean 90; the standard histogram reports the centre of the 0.001° bin that
    // holds 90°, half a bin (0.0005°) away.
    let task = Task::new(TaskSpec { kind: TaskKind::Normal, channels: 3 });
    let (pred, gt) = normal_case(&[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]);
    let mut reference = task.metric(MetricProfile::Full, Convention::Reference);
    reference.update(&pred, &gt).unwrap();
    let v = reference.finish(Convention::Reference);
    assert_eq!(named(&v, "Angle Median"), 90.0);
    assert_eq!(named(&v, "Angle Mean"), 90.0);
    assert_eq!(named(&v, "Angle 11.25"), 33.3333);
    assert!(v.iter().filter(|m| m.float32).map(|m| m.name.as_str()).eq(["Angle Mean", "Angle Median"]));
    let mut standard = task.metric(MetricProfile::Full, Convention::Standard);
    standard.update(&pred, &gt).unwrap();
    let median = named(&standard.finish(Convention::Standard), "Angle Median");
    assert!(((median - 90.0).abs() - 0.0005).abs() < 1e-9, "{median}");

    // Predictions (3, 0, 4) and (4, 0, 3) have unit vectors (0.6, 0, 0.8) and (0.8, 0, 0.6): cosines
    // 0.8 and 0.6, angles 36.87° and 53.13° (they sum to 90°). With 0° and 180°: an even count, so
    // the median is the float32 mean of the middle pair, 45 up to float32 rounding, and the mean is
    // the float32 sum (0 + 36.87 + 53.13 + 180 = 270) over 4.
    let (pred, gt) = normal_case(&[[0.0, 0.0, 1.0], [3.0, 0.0, 4.0], [4.0, 0.0, 3.0], [0.0, 0.0, -1.0]]);
    let mut m = task.metric(MetricProfile::Full, Convention::Reference);
    m.update(&pred, &gt).unwrap();
    let v = m.finish(Convention::Standard);
    let (a, b) = (normal::reference_angle(0.8), normal::reference_angle(0.6));
    assert!((f64::from(a) - 36.869_897_6).abs() < 1e-5 && (f64::from(b) - 53.130_102_4).abs() < 1e-5);
    assert_eq!(named(&v, "Angle Median"), f64::from((a + b) / 2.0));
    assert!((named(&v, "Angle Median") - 45.0).abs() < 1e-5);
    assert_eq!(named(&v, "Angle Mean"), f64::from((((0.0 + a) + b) + 180.0) / 4.0));
    assert!((named(&v, "Angle Mean") - 67.5).abs() < 1e-5);
    // Rounded to 4 decimals by numpy's float32 `round`.
    let v = m.finish(Convention::Reference);
    assert_eq!((named(&v, "Angle Median"), named(&v, "Angle Mean")), (45.0, 67.5));
}

#[test]
fn reference_taskonomy_cosine_is_a_float32_mean() {
    // Cosines 1, 0.8, 0.6 (as float32): float32 sum 2.4 over 3 → 0.8, rounded 0.8.
    let task = Task::new(TaskSpec { kind: TaskKind::Normal, channels: 3 });
    let (pred, gt) = normal_case(&[[0.0, 0.0, 1.0], [3.0, 0.0, 4.0], [4.0, 0.0, 3.0]]);
    let mut m = task.metric(MetricProfile::Taskonomy, Convention::Reference);
    m.update(&pred, &gt).unwrap();
    let v = m.finish(Convention::Standard);
    assert_eq!(named(&v, "cosine_similarity"), f64::from(((1.0f32 + 0.8) + 0.6) / 3.0));
    assert!(v[0].float32);
    assert_eq!(named(&m.finish(Convention::Reference), "cosine_similarity"), 0.8);
}

#[test]
fn reference_angle_fractions_divide_before_scaling() {
    // 23 of 640 pixels at 0°, the rest at 90°. The reference's np.mean(angles <= 11.25) * 100 is
    // float64(23/640) = 0.0359374999… (a hair below the decimal) × 100 = 3.5937499999999996 → 3.5937;
    // 100·23/640 is exactly 3.59375, a tie that rounds to even, 3.5938.
    let task = Task::new(TaskSpec { kind: TaskKind::Normal, channels: 3 });
    let pixels: Vec<[f32; 3]> = (0..640).map(|i| if i < 23 { [0.0, 0.0, 1.0] } else { [1.0, 0.0, 0.0] }).collect();
    let (pred, gt) = normal_case(&pixels);
    for (convention, want) in [(Convention::Reference, 3.5937), (Convention::Standard, 3.5938)] {
        let mut m = task.metric(MetricProfile::Full, convention);
        m.update(&pred, &gt).unwrap();
        assert_eq!(named(&m.finish(Convention::Reference), "Angle 11.25"), want, "{convention:?}");
    }
}
