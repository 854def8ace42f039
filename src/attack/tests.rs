//! Step rules on random models and inputs: closed forms, the budget after every attack, pass
//! counts and seeded reproducibility.
use super::*;
use crate::testutil::{random_batch, small_model, tasks_of, three_tasks};
use tch::Kind;

fn config(step: StepKind, direction: &str) -> AttackConfig {
    AttackConfig { step, direction: direction.parse().unwrap(), n_iter: 3, seed: 5, ..Default::default() }
}

#[test]
fn fgsm_is_the_clipped_signed_gradient_step() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    // Independent computation: ∇_x Σ_t Σ_b L_{t,b} by hand.
    let x = batch.x.detach().set_requires_grad(true);
    let out = model.forward_t(&x, false);
    let mut total = Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
    for t in &tasks {
        let y = out.get(t.kind()).unwrap();
        let (_, _, h, w) = y.size4().unwrap();
        total += t.loss(y, &batch.targets.get(t.kind()).unwrap().resized(h, w)).per_sample().sum(Kind::Float);
    }
    let g = Tensor::run_backward(&[total], &[&x], false, false).pop().unwrap();
    let (lo, hi) = model.input.bound_tensors(Kind::Float, tch::Device::Cpu);
    let want = (&batch.x + g.sign() * 8.0).maximum(&lo).minimum(&hi);
    let got = Attack::new(config(StepKind::Fgsm, "total")).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap();
    assert!(got.x_adv.allclose(&want, 0.0, 1e-4, false));
    assert_eq!((got.counts.forward, got.counts.backward), (1, 1));
}

#[test]
fn every_rule_and_direction_stays_in_budget_and_range() {
    let specs = three_tasks();
    let model = small_model(&specs, 5, 3);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 4, Kind::Float);
    let directions = ["single:segm", "single:depth", "total", "sign-total", "gbmta", "weighted:normal=1,depth=3"];
    for step in [StepKind::Fgsm, StepKind::Mifgsm, StepKind::Pgd, StepKind::Apgd, StepKind::AutoSage] {
        for dir in directions {
            for norm in [Norm::Linf, Norm::L2] {
                if norm == Norm::L2 && !matches!(step, StepKind::Pgd | StepKind::Apgd) {
                    continue;
                }
                let mut c = config(step, dir);
                c.norm = norm;
                c.eps = if norm == Norm::L2 { 300.0 } else { 6.0 };
                c.random_start = step == StepKind::Pgd;
                let out = Attack::new(c.clone()).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap();
                let ch = &out.checks;
                assert!(ch.passed(), "{}: {ch:?}", c.label());
                assert!(ch.max_perturbation <= c.eps + 1e-5, "{}", c.label());
                assert!(ch.max_perturbation > 0.0, "{} did not move", c.label());
                // Independent re-check of the L∞ bound and the pixel range.
                let (lo, hi) = model.input.bound_tensors(Kind::Float, tch::Device::Cpu);
                if norm == Norm::Linf {
                    let d = f64::try_from((&out.x_adv - &batch.x).abs().max()).unwrap();
                    assert!(d <= c.eps + 1e-5, "{}: ‖δ‖∞ = {d}", c.label());
                }
                assert!(bool::try_from(out.x_adv.ge_tensor(&(&lo - 1e-5)).all()).unwrap());
                assert!(bool::try_from(out.x_adv.le_tensor(&(&hi + 1e-5)).all()).unwrap());
            }
        }
    }
}

#[test]
fn pass_counts_per_iteration_are_as_designed() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    let run = |c: AttackConfig| Attack::new(c).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap().counts;
    let counts = |step, dir: &str, n: usize| {
        let mut c = config(step, dir);
        c.n_iter = n;
        let p = run(c);
        (p.forward, p.backward)
    };
    // PGD: 1 forward + 1 backward per step for GB-MTA and Single; T backwards for SignTotal.
    assert_eq!(counts(StepKind::Pgd, "gbmta", 4), (4, 4));
    assert_eq!(counts(StepKind::Pgd, "single:norm", 4), (4, 4));
    assert_eq!(counts(StepKind::Pgd, "sign-total", 4), (4, 12));
    assert_eq!(counts(StepKind::Mifgsm, "total", 4), (4, 4));
    // APGD autoattack: clean losses (GB-MTA only) + start + N points; the last needs no gradient.
    assert_eq!(counts(StepKind::Apgd, "gbmta", 4), (1 + 5, 4));
    assert_eq!(counts(StepKind::Apgd, "total", 4), (5, 4));
    // APGD paper: N+1 forwards (the reference: 2N+1), N backwards.
    let mut c = config(StepKind::Apgd, "gbmta");
    c.apgd_profile = ApgdProfile::Paper;
    c.n_iter = 4;
    let p = run(c);
    assert_eq!((p.forward, p.backward), (5, 4));
    // Auto-SAGE: per step one forward + T component backwards, one look-ahead forward + backward.
    assert_eq!(counts(StepKind::AutoSage, "gbmta", 2), (4, 8));
    assert_eq!(counts(StepKind::AutoSage, "single:segm", 2), (4, 4));
}

#[test]
fn same_seed_same_examples_bit_for_bit() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    let mut c = config(StepKind::Apgd, "gbmta");
    c.restarts = 2;
    let a = Attack::new(c.clone()).unwrap().run(&model, &tasks, &batch, BatchContext::at(3)).unwrap().x_adv;
    let b = Attack::new(c.clone()).unwrap().run(&model, &tasks, &batch, BatchContext::at(3)).unwrap().x_adv;
    assert!(a.equal(&b));
    c.seed += 1;
    let other = Attack::new(c).unwrap().run(&model, &tasks, &batch, BatchContext::at(3)).unwrap().x_adv;
    assert!(!a.equal(&other), "another seed draws another random start");
}

#[test]
fn eps_parsing_accepts_grey_levels_and_fractions() {
    assert_eq!(parse_eps("8").unwrap(), 8.0);
    assert_eq!(parse_eps("8/255").unwrap(), 8.0);
    assert!((parse_eps("0.5/1").unwrap() - 127.5).abs() < 1e-12);
    assert!(parse_eps("-1").is_err() && parse_eps("eight").is_err() && parse_eps("1/0").is_err());
    assert_eq!(fmt_eps(8.0), "8");
    assert_eq!(fmt_eps(2.5), "2.5");
}

#[test]
fn nan_or_out_of_range_hyper_parameters_are_refused_by_flag() {
    let refused = |c: AttackConfig, flag: &str| {
        let err = c.check().unwrap_err().to_string();
        assert!(err.starts_with(flag), "{err}");
    };
    refused(AttackConfig { eps: 0.0, ..config(StepKind::Pgd, "total") }, "--eps: ε must be > 0");
    refused(AttackConfig { momentum: f64::NAN, ..config(StepKind::Mifgsm, "total") }, "--mi-momentum");
    refused(AttackConfig { sage_lr: f64::NAN, ..config(StepKind::AutoSage, "total") }, "--sage-lr");
    refused(AttackConfig { sage_fitting: 0.0, ..config(StepKind::AutoSage, "total") }, "--sage-fitting");
    let es = Some(step::EarlyStop { tau: 2, threshold: f64::NAN });
    refused(AttackConfig { early_stop: es, ..config(StepKind::Pgd, "total") }, "--fat-threshold");
    // Another rule's parameter is refused as ignored, whatever its value.
    refused(AttackConfig { momentum: f64::NAN, ..config(StepKind::Pgd, "total") }, "--mi-momentum: `--attack pgd` ignores it");
    assert!(parse_eps("0").unwrap_err().to_string().contains("must be > 0"));
    assert!(parse_eps("-8/255").unwrap_err().to_string().contains("negative"));
}

#[test]
fn options_the_rule_ignores_are_refused_with_the_rules_that_read_them() {
    let err = |c: AttackConfig| c.check().map(|_| String::new()).unwrap_or_else(|e| e.to_string());
    let with = |step: StepKind, f: fn(&mut AttackConfig)| {
        let mut c = config(step, "total");
        f(&mut c);
        c
    };
    // Every rule accepts the defaults (what the CLI and study files fill in).
    for step in [StepKind::Fgsm, StepKind::Mifgsm, StepKind::Pgd, StepKind::Apgd, StepKind::AutoSage] {
        assert_eq!(err(config(step, "total")), "", "{step:?}");
    }
    assert_eq!(
        err(with(StepKind::Pgd, |c| c.restarts = 3)),
        "--restarts: `--attack pgd` ignores it; it is read by apgd with --apgd-profile autoattack only. \
         Remove it, or choose a rule that reads it"
    );
    assert!(err(with(StepKind::Fgsm, |c| c.restarts = 2)).starts_with("--restarts: `--attack fgsm` ignores it"));
    // The paper profile has no restarts; its revised variant is its own.
    let paper = |c: &mut AttackConfig| c.apgd_profile = ApgdProfile::Paper;
    assert!(err(with(StepKind::Apgd, |c| c.restarts = 2)).is_empty());
    assert!(
        err(with(StepKind::Apgd, |c| (c.apgd_profile, c.restarts) = (ApgdProfile::Paper, 2)))
            .starts_with("--restarts: `--attack apgd --apgd-profile paper` ignores it")
    );
    assert!(err(with(StepKind::Apgd, |c| (c.apgd_profile, c.apgd_revised) = (ApgdProfile::Paper, true))).is_empty());
    assert!(err(with(StepKind::Apgd, |c| c.apgd_revised = true)).starts_with("--apgd-revised: `--attack apgd --apgd-profile autoattack`"));
    assert!(err(with(StepKind::Pgd, paper)).starts_with("--apgd-profile: `--attack pgd` ignores it; it is read by apgd only"));
    // Step sizes: fgsm steps by ε and apgd by its schedule; random starts are PGD's.
    assert!(err(with(StepKind::Apgd, |c| c.step_size = Some(2.0))).starts_with("--step-size: `--attack apgd"));
    assert!(err(with(StepKind::Fgsm, |c| c.step_size = Some(2.0))).starts_with("--step-size: `--attack fgsm`"));
    assert!(err(with(StepKind::Mifgsm, |c| c.step_size = Some(2.0))).is_empty());
    assert!(err(with(StepKind::Pgd, |c| c.random_start = true)).is_empty());
    assert!(err(with(StepKind::Apgd, |c| c.random_start = true)).starts_with("--random-start: `--attack apgd"));
    // Momentum and Auto-SAGE's parameters belong to their rules.
    assert!(err(with(StepKind::Pgd, |c| c.momentum = 0.5)).contains("read by mifgsm only"));
    assert!(err(with(StepKind::Mifgsm, |c| c.momentum = 0.5)).is_empty());
    assert!(err(with(StepKind::Mifgsm, |c| c.sage_lr = 5.0)).starts_with("--sage-lr: `--attack mifgsm`"));
    assert!(err(with(StepKind::Apgd, |c| c.sage_fitting = 5.0)).starts_with("--sage-fitting"));
    assert!(err(with(StepKind::Pgd, |c| c.sage_decay = 0.5)).starts_with("sage_decay"));
    assert!(err(with(StepKind::AutoSage, |c| (c.sage_lr, c.sage_fitting, c.sage_decay) = (5.0, 20.0, 0.5))).is_empty());
}

#[test]
fn an_attack_that_moves_no_sample_fails_its_checks() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 3, 32, 2, Kind::Float);
    let c = Attack::new(config(StepKind::Pgd, "total")).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap().checks;
    assert_eq!((c.samples, c.unmoved_samples), (3, 0));
    assert!(c.passed(), "{:?}", c.failures());
    // Two of three samples unmoved: still a valid attack; all three: a failed one, with its reason.
    let partly = Checks { unmoved_samples: 2, ..c.clone() };
    assert!(partly.passed());
    let none = Checks { unmoved_samples: 3, max_perturbation: 0.0, ..c };
    assert_eq!(none.failures(), ["the attack left all 3 sample(s) unperturbed, so the metrics say nothing about robustness"]);
    assert!(!none.passed());
}
