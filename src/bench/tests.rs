use super::*;
use crate::testutil::{random_batch as test_batch, small_model, tasks_of, three_tasks};
use tch::Kind;

#[test]
fn flops_of_convolutions_and_matmuls_match_the_hand_count() {
    let _g = tch::no_grad_guard();
    let opts = (Kind::Float, Device::Cpu);
    // 3→4 channels, 3×3 kernel, padding 1 on 2 × 8×8: 2·4·8·8 outputs × 3·3·3 MACs × 2.
    let x = Tensor::zeros([2, 3, 8, 8], opts);
    let w = Tensor::zeros([4, 3, 3, 3], opts);
    let ((), f) = shim::count_flops(|| {
        let _ = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
    });
    assert_eq!(f, (2 * 4 * 8 * 8 * 27 * 2) as f64);
    // Stride 2, no padding, dilation 2 on 11×11: (11 − 2·2 − 1) / 2 + 1 = 4 per side; plus a
    // grouped 1×1 convolution (2 groups: 2 input channels per output) and a linear layer.
    let x = Tensor::zeros([1, 4, 11, 11], opts);
    let ((), f) = shim::count_flops(|| {
        let _ = x.conv2d(&Tensor::zeros([6, 4, 3, 3], opts), None::<Tensor>, [2, 2], [0, 0], [2, 2], 1);
        let _ = x.conv2d(&Tensor::zeros([6, 2, 1, 1], opts), None::<Tensor>, [1, 1], [0, 0], [1, 1], 2);
        let _ = Tensor::zeros([5, 6], opts).linear(&Tensor::zeros([7, 6], opts), Some(Tensor::zeros([7], opts)));
    });
    let hand = 2 * (6 * 4 * 4 * 36) + 2 * (6 * 11 * 11 * 2) + 2 * 5 * 6 * 7;
    assert_eq!(f, hand as f64);
    // Nothing is counted outside the closure.
    let ((), f) = shim::count_flops(|| ());
    assert_eq!(f, 0.0);
}

#[test]
fn bench_reports_every_rule_and_direction_with_sane_numbers() {
    let specs = three_tasks();
    let mut model = small_model(&specs, 1, 0);
    model.vs.freeze();
    let tasks = tasks_of(&specs);
    let batch = test_batch(&specs, 2, 32, 0, Kind::Float);
    let config = BenchConfig {
        rules: vec![RuleKind::Fgsm, RuleKind::Pgd, RuleKind::Apgd],
        directions: vec![DirectionSpec::Total, DirectionSpec::SignTotal, DirectionSpec::Gbmta],
        iterations: 1,
        repeats: 1,
        seed: 0,
        clock: Clock::Cpu,
        flush_denormals: true,
    };
    let report = run(&model, &tasks, &batch, &config).unwrap();
    let names: Vec<&str> = report.rows.iter().map(|r| r.attack.as_str()).collect();
    assert_eq!(
        names,
        [
            "fgsm/total",
            "fgsm/sign-total",
            "fgsm/gbmta",
            "pgd/total",
            "pgd/sign-total",
            "pgd/gbmta",
            "apgd/total",
            "apgd/sign-total",
            "apgd/gbmta"
        ]
    );
    assert_eq!((report.batch, report.size, report.precision.as_str()), (2, 32, "fp32"));
    assert!(report.flops_per_image > 0.0 && report.floor.seconds > 0.0 && report.floor.flops_per_s > 0.0);
    let pgd = |d: &str| report.rows.iter().find(|r| r.attack == format!("pgd/{d}")).unwrap();
    // PGD: one forward and one backward per iteration for Total and GB-MTA; SignTotal needs one
    // backward per task (3 here).
    assert_eq!((pgd("total").forwards, pgd("total").backwards), (1.0, 1.0));
    assert_eq!(pgd("sign-total").backwards, 3.0);
    let apgd = report.rows.iter().find(|r| r.attack == "apgd/total").unwrap();
    assert_eq!(apgd.forwards, 1.0, "APGD: one forward per iteration");
    for r in &report.rows {
        assert!(r.ratio.is_finite() && r.images_iterations_per_s.is_finite(), "{r:?}");
    }
}

#[test]
fn floor_gradient_is_the_input_gradient_of_the_summed_outputs() {
    // A float64 model: the floor's gradient equals a finite difference of Σ outputs.
    let specs = three_tasks();
    let mut model = small_model(&specs, 0, 3);
    model.set_kind(Kind::Double).unwrap();
    let x = test_batch(&specs, 1, 16, 1, Kind::Double).x;
    let g = floor_pass(&model, &x).unwrap();
    let f = |x: &Tensor| -> f64 {
        let out = model.forward_t(x, false).unwrap();
        out.values().map(|t| t.sum(Kind::Double).double_value(&[])).sum()
    };
    let h = 1e-6;
    let e = Tensor::zeros_like(&x);
    let _ = e.view(-1).get(100).fill_(1.0);
    let fd = (f(&(&x + &e * h)) - f(&(&x - &e * h))) / (2.0 * h);
    let analytic = g.view(-1).double_value(&[100]);
    assert!((fd - analytic).abs() <= 1e-5 * (1.0 + fd.abs()), "{fd} vs {analytic}");
}

#[test]
fn flushing_denormals_zeroes_them_while_on_and_restores_them_after() {
    let tiny = Tensor::from_slice(&[1e-39f32]); // a float32 denormal
    let twice = |t: &Tensor| f64::try_from((t * 2.0f64).sum(Kind::Float)).unwrap();
    assert!(twice(&tiny) > 0.0, "denormals are kept by default");
    {
        let flush = FlushDenormals::on();
        assert!(flush.0, "x86-64 CPUs support FTZ/DAZ");
        assert_eq!(twice(&tiny), 0.0);
    }
    assert!((twice(&tiny) - 2e-39).abs() < 1e-45, "dropping the guard keeps denormals again");
}
