//! Step rules on random models and inputs: closed forms, the budget after every attack, pass
//! counts and seeded reproducibility.
use super::*;
use crate::testutil::{random_batch, small_model, tasks_of, three_tasks};
use tch::Kind;

fn config(kind: RuleKind, direction: &str) -> AttackConfig {
    AttackConfig { rule: kind.default_rule().with_n_iter(3), direction: direction.parse().unwrap(), seed: 5, ..Default::default() }
}

#[test]
fn fgsm_is_the_clipped_signed_gradient_step() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    // Independent computation: ∇_x Σ_t Σ_b L_{t,b} by hand.
    let x = batch.x.detach().set_requires_grad(true);
    let out = model.forward_t(&x, false).unwrap();
    let mut total = Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
    for t in &tasks {
        let y = out.get(t.kind()).unwrap();
        let (_, _, h, w) = y.size4().unwrap();
        total += t.loss(y, &batch.targets.get(t.kind()).unwrap().resized(h, w)).unwrap().per_sample().sum(Kind::Float);
    }
    let g = Tensor::run_backward(&[total], &[&x], false, false).pop().unwrap();
    let (lo, hi) = model.input.bound_tensors(Kind::Float, tch::Device::Cpu);
    let want = (&batch.x + g.sign() * 8.0).maximum(&lo).minimum(&hi);
    let got = Attack::new(config(RuleKind::Fgsm, "total")).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap();
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
    for step in RuleKind::ALL {
        for dir in directions {
            for norm in [Norm::Linf, Norm::L2] {
                if norm == Norm::L2 && !matches!(step, RuleKind::Pgd | RuleKind::Apgd) {
                    continue;
                }
                let mut c = config(step, dir);
                c.norm = norm;
                c.eps = if norm == Norm::L2 { 300.0 } else { 6.0 };
                if let Rule::Pgd(p) = &mut c.rule {
                    p.random_start = true;
                }
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
    let counts = |step: RuleKind, dir: &str, n: usize| {
        let mut c = config(step, dir);
        c.rule = c.rule.with_n_iter(n);
        let p = run(c);
        (p.forward, p.backward)
    };
    // PGD: 1 forward + 1 backward per step for GB-MTA and Single; T backwards for SignTotal.
    assert_eq!(counts(RuleKind::Pgd, "gbmta", 4), (4, 4));
    assert_eq!(counts(RuleKind::Pgd, "single:norm", 4), (4, 4));
    assert_eq!(counts(RuleKind::Pgd, "sign-total", 4), (4, 12));
    assert_eq!(counts(RuleKind::Mifgsm, "total", 4), (4, 4));
    // APGD autoattack: clean losses (GB-MTA only) + start + N points; the last needs no gradient.
    assert_eq!(counts(RuleKind::Apgd, "gbmta", 4), (1 + 5, 4));
    assert_eq!(counts(RuleKind::Apgd, "total", 4), (5, 4));
    // APGD paper: N+1 forwards (the reference: 2N+1), N backwards.
    let mut c = config(RuleKind::Apgd, "gbmta");
    c.rule = Rule::Apgd(Apgd { n_iter: 4, profile: ApgdProfile::Paper { revised: false } });
    let p = run(c);
    assert_eq!((p.forward, p.backward), (5, 4));
    // Auto-SAGE: per step one forward + T component backwards, one look-ahead forward + backward.
    assert_eq!(counts(RuleKind::AutoSage, "gbmta", 2), (4, 8));
    assert_eq!(counts(RuleKind::AutoSage, "single:segm", 2), (4, 4));
}

#[test]
fn same_seed_same_examples_bit_for_bit() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    let mut c = config(RuleKind::Apgd, "gbmta");
    c.rule = Rule::Apgd(Apgd { n_iter: 3, profile: ApgdProfile::Autoattack { restarts: 2 } });
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
fn nan_or_out_of_range_parameters_are_refused_by_name() {
    let refused = |c: AttackConfig, name: &str| {
        let err = c.check().unwrap_err().to_string();
        assert!(err.starts_with(name), "{err}");
    };
    refused(AttackConfig { eps: 0.0, ..config(RuleKind::Pgd, "total") }, "eps: ε must be > 0");
    refused(AttackConfig { eps: f64::NAN, ..config(RuleKind::Pgd, "total") }, "eps:");
    refused(AttackConfig { eps: 300.0, ..config(RuleKind::Pgd, "total") }, "eps:");
    refused(
        AttackConfig { rule: Rule::Mifgsm(MiFgsm { mi_momentum: f64::NAN, ..MiFgsm::default() }), ..config(RuleKind::Pgd, "total") },
        "mi_momentum",
    );
    refused(
        AttackConfig { rule: Rule::AutoSage(AutoSage { sage_lr: f64::NAN, ..AutoSage::default() }), ..config(RuleKind::Pgd, "total") },
        "sage_lr",
    );
    refused(
        AttackConfig { rule: Rule::AutoSage(AutoSage { sage_fitting: 0.0, ..AutoSage::default() }), ..config(RuleKind::Pgd, "total") },
        "sage_fitting",
    );
    let early_stop = Some(step::EarlyStop { tau: 2, threshold: f64::NAN });
    refused(AttackConfig { rule: Rule::Pgd(Pgd { early_stop, ..Pgd::default() }), ..config(RuleKind::Pgd, "total") }, "fat_threshold");
    assert!(parse_eps("0").unwrap_err().to_string().contains("must be > 0"));
    assert!(parse_eps("-8/255").unwrap_err().to_string().contains("negative"));
    // An L2 budget is a norm over the whole image and may exceed 255 grey levels.
    assert!(AttackConfig { eps: 300.0, norm: Norm::L2, ..config(RuleKind::Pgd, "total") }.check().is_ok());
}

#[test]
fn a_given_start_point_replaces_apgds_random_start() {
    // APGD from x_init = the clean input and from a random start reach different points; the same
    // start point gives the same run whatever the seed (no randomness is drawn for it).
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 2, 32, 2, Kind::Float);
    let c = config(RuleKind::Apgd, "gbmta");
    let run = |c: &AttackConfig, start: Option<&Tensor>| {
        let at = BatchContext { start, ..BatchContext::at(0) };
        Attack::new(c.clone()).unwrap().run(&model, &tasks, &batch, at).unwrap()
    };
    let from_x = run(&c, Some(&batch.x));
    let other_seed = run(&AttackConfig { seed: 99, ..c.clone() }, Some(&batch.x));
    assert!(from_x.x_adv.equal(&other_seed.x_adv));
    let random = run(&c, None);
    assert!(!from_x.x_adv.equal(&random.x_adv));
    // The trace starts at the start point: from x, GB-MTA's relative increase there is exactly 0.
    assert_eq!(from_x.trace.objective[0], 0.0, "{:?}", from_x.trace.objective);
    assert!(random.trace.objective[0] != 0.0);
    assert!(from_x.checks.passed());
}

#[test]
fn apgds_random_start_lies_on_the_surface_of_the_ball() {
    // AutoAttack's start: x + ε·t/‖t‖∞, so every sample's largest change is exactly ε.
    let budget = Budget::new(Norm::Linf, 8.0, &crate::data::InputSpace::reference(), Kind::Float, tch::Device::Cpu).unwrap();
    let x = Tensor::zeros([3, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
    let start = budget.random_surface_start(&x, &mut crate::rng::stream(1, &[0]));
    let largest = Vec::<f64>::try_from(budget.perturbation(&start, &x).to_kind(Kind::Double)).unwrap();
    assert!(largest.iter().all(|&d| (d - 8.0).abs() < 1e-4), "{largest:?}");
    let l2 = Budget::new(Norm::L2, 20.0, &crate::data::InputSpace::reference(), Kind::Float, tch::Device::Cpu).unwrap();
    let norms =
        Vec::<f64>::try_from(l2.perturbation(&l2.random_surface_start(&x, &mut crate::rng::stream(1, &[0])), &x).to_kind(Kind::Double))
            .unwrap();
    assert!(norms.iter().all(|&d| (d - 20.0).abs() < 1e-3), "{norms:?}");
}

#[test]
fn an_attack_that_moves_no_sample_fails_its_checks() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 3, 32, 2, Kind::Float);
    let c = Attack::new(config(RuleKind::Pgd, "total")).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap().checks;
    assert_eq!((c.samples, c.unmoved_samples), (3, 0));
    assert!(c.passed(), "{:?}", c.failures());
    // Two of three samples unmoved: still a valid attack; all three: a failed one, with its reason.
    let partly = Checks { unmoved_samples: 2, ..c.clone() };
    assert!(partly.passed());
    let none = Checks { unmoved_samples: 3, max_perturbation: 0.0, ..c };
    assert_eq!(none.failures(), ["the attack left all 3 sample(s) unperturbed, so the metrics say nothing about robustness"]);
    assert!(!none.passed());
}

/// Square along `direction` with `n_queries` queries and `seed`.
fn square(direction: &str, n_queries: usize, seed: u64) -> AttackConfig {
    AttackConfig {
        rule: Rule::Square(Square { n_queries, p_init: 0.8 }),
        direction: direction.parse().unwrap(),
        seed,
        ..Default::default()
    }
}

#[test]
fn square_counts_forwards_only_and_repeats_for_a_seed() {
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 3, 32, 2, Kind::Float);
    let run = |c: AttackConfig| Attack::new(c).unwrap().run(&model, &tasks, &batch, BatchContext::at(1)).unwrap();
    // [clean losses, GB-MTA only] + the stripes + one forward per query; never a backward.
    for (dir, clean) in [("gbmta", 1), ("total", 0), ("sign-total", 0), ("single:depth", 0), ("weighted:segm=2,normal=1", 0)] {
        let out = run(square(dir, 7, 5));
        assert_eq!((out.counts.forward, out.counts.backward), (clean + 1 + 7, 0), "{dir}");
        assert_eq!(out.trace.objective.len(), 1 + 7, "{dir}: one traced objective per query");
        assert_eq!(out.trace.zero_gradient_samples, 0);
        assert!(out.checks.passed(), "{dir}: {:?}", out.checks.failures());
    }
    let a = run(square("gbmta", 12, 5)).x_adv;
    assert!(a.equal(&run(square("gbmta", 12, 5)).x_adv), "same seed, same examples");
    assert!(!a.equal(&run(square("gbmta", 12, 6)).x_adv), "another seed, other stripes and squares");
}

#[test]
fn square_keeps_every_pixel_on_a_corner_of_the_ball() {
    // Every pixel of the result is clip(x + ε) or clip(x − ε) exactly (the stripes put every pixel
    // there, and the squares only ever write those two values), so each sample's ‖δ‖∞ is ε; with
    // every direction.
    let specs = three_tasks();
    let model = small_model(&specs, 5, 3);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 3, 32, 4, Kind::Float);
    let (lo, hi) = model.input.bound_tensors(Kind::Float, tch::Device::Cpu);
    let x = &batch.x;
    for dir in ["single:segm", "single:normal", "total", "sign-total", "gbmta", "weighted:normal=1,depth=3"] {
        let mut c = square(dir, 30, 1);
        c.eps = 6.0;
        let out = Attack::new(c).unwrap().run(&model, &tasks, &batch, BatchContext::at(0)).unwrap();
        let up = (x + 6.0).maximum(&lo).minimum(&hi);
        let down = (x - 6.0).maximum(&lo).minimum(&hi);
        let on_corner = out.x_adv.eq_tensor(&up).logical_or(&out.x_adv.eq_tensor(&down));
        assert!(bool::try_from(on_corner.all()).unwrap(), "{dir}");
        let largest =
            Vec::<f64>::try_from((&out.x_adv - x).abs().flatten(1, -1).amax([1i64].as_slice(), false).to_kind(Kind::Double)).unwrap();
        assert!(largest.iter().all(|d| (d - 6.0).abs() < 1e-5), "{dir}: {largest:?}");
        assert!(out.checks.passed() && out.checks.unmoved_samples == 0, "{dir}: {:?}", out.checks);
    }
}

#[test]
fn squares_best_objective_never_decreases_per_sample() {
    // The search on a real model, watched after every query: each sample's best objective never
    // goes down, rises above the stripes' for some sample, and is what a fresh forward at the
    // returned point gives; every watched best point is on the ball's corners.
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 4, 32, 7, Kind::Float);
    for dir in ["gbmta", "total", "single:normal"] {
        let oracle = Oracle::new(&model, &tasks, &batch.targets).unwrap();
        let direction = dir.parse::<DirectionSpec>().unwrap().build(&tasks).unwrap();
        let budget = Budget::new(Norm::Linf, 8.0, &model.input, Kind::Float, tch::Device::Cpu).unwrap();
        let dctx = DirectionContext::default();
        let mut cx = step::RunContext::new(&oracle, direction.as_ref(), &budget, &batch.x, dctx, 11);
        cx.ensure_clean(false).unwrap();
        let (plus, minus) = (budget.project(&(&batch.x + 8.0), &batch.x), budget.project(&(&batch.x - 8.0), &batch.x));
        let mut best: Vec<Vec<f64>> = Vec::new();
        let mut off_corner = 0;
        let mut watch = |_: usize, xb: &Tensor, fb: &Tensor| {
            best.push(Vec::<f64>::try_from(fb.to_kind(Kind::Double)).unwrap());
            off_corner += i64::try_from(xb.ne_tensor(&plus).logical_and(&xb.ne_tensor(&minus)).sum(Kind::Int64)).unwrap();
        };
        let mut rng = cx.rng(0);
        let sq = Square { n_queries: 40, p_init: 0.8 };
        let (x_best, f_best) = {
            let mut query = |p: &Tensor| Ok(cx.objective(p, false)?.objective);
            sq.search(&batch.x, &budget, &mut rng, &mut query, &mut watch).unwrap()
        };
        assert_eq!(best.len(), 41);
        assert_eq!(off_corner, 0, "{dir}");
        for (k, pair) in best.windows(2).enumerate() {
            for (s, (before, after)) in pair[0].iter().zip(&pair[1]).enumerate() {
                assert!(after >= before, "{dir}, query {}: sample {s} fell from {before} to {after}", k + 1);
            }
        }
        let (first, last) = (&best[0], best.last().unwrap());
        assert!((0..4).any(|s| last[s] > first[s]), "{dir}: no sample improved on the stripes: {first:?} → {last:?}");
        let again = cx.objective(&x_best, false).unwrap().objective;
        assert!(again.equal(&f_best), "{dir}: {again} vs {f_best}");
    }
}

#[test]
fn square_refuses_l2_when_configured() {
    let mut c = square("total", 5, 0);
    c.norm = Norm::L2;
    c.eps = 300.0;
    let e = c.check().unwrap_err().to_string();
    assert!(e.starts_with("norm:") && e.contains("L∞"), "{e}");
    assert!(Attack::new(c).is_err());
}

/// An ensemble of three unlike members along GB-MTA's score.
fn small_ensemble(score: &str) -> AttackConfig {
    let members = vec![
        Member { rule: Rule::Pgd(Pgd { n_iter: 3, ..Pgd::default() }), direction: DirectionSpec::Total },
        Member { rule: Rule::Fgsm(Fgsm {}), direction: "single:depth".parse().unwrap() },
        Member { rule: Rule::Square(Square { n_queries: 8, p_init: 0.8 }), direction: DirectionSpec::Gbmta },
        Member { rule: Rule::Apgd(Apgd { n_iter: 4, ..Apgd::default() }), direction: DirectionSpec::Gbmta },
    ];
    AttackConfig {
        rule: Rule::Ensemble(Ensemble { name: "test".into(), members }),
        direction: score.parse().unwrap(),
        eps: 6.0,
        seed: 7,
        ..Default::default()
    }
}

#[test]
fn an_ensemble_keeps_each_samples_highest_scoring_member() {
    // Each member's examples are bit for bit those of the member run alone; each sample keeps the
    // example of the member whose score (the ensemble's direction's objective, recomputed here
    // from a fresh forward) is highest; the passes are the members' + one scoring forward each
    // (+ one clean forward for GB-MTA's relative score).
    let specs = three_tasks();
    let model = small_model(&specs, 9, 1);
    let tasks = tasks_of(&specs);
    let batch = random_batch(&specs, 5, 32, 3, Kind::Float);
    for (score, clean_forward) in [("gbmta", 1), ("single:normal", 0)] {
        let config = small_ensemble(score);
        let Rule::Ensemble(ensemble) = &config.rule else { unreachable!() };
        let out = Attack::new(config.clone()).unwrap().run(&model, &tasks, &batch, BatchContext::at(2)).unwrap();
        let members = out.ensemble.as_ref().expect("an ensemble reports its members");
        assert_eq!(members.members.len(), 4);
        let oracle = Oracle::new(&model, &tasks, &batch.targets).unwrap();
        let scorer = config.direction.build(&tasks).unwrap();
        let mut dctx = DirectionContext::default();
        direction::objective(scorer.as_ref(), &oracle, &batch.x, &mut dctx, true).unwrap();
        let mut scores = Vec::new();
        let mut passes = PassCounts::default();
        for (m, solo_config) in ensemble.member_configs(&config).into_iter().enumerate() {
            let solo = Attack::new(solo_config.clone()).unwrap().run(&model, &tasks, &batch, BatchContext::at(2)).unwrap();
            assert!(solo.x_adv.equal(&members.members[m].x_adv), "{score}: member {m} differs from {} alone", solo_config.label());
            assert_eq!(solo.counts, members.members[m].counts, "member {m}");
            passes.forward += solo.counts.forward + 1;
            passes.backward += solo.counts.backward;
            let f = direction::objective(scorer.as_ref(), &oracle, &solo.x_adv, &mut dctx, false).unwrap().objective;
            scores.push(Vec::<f64>::try_from(f.to_kind(Kind::Double)).unwrap());
        }
        passes.forward += clean_forward;
        assert_eq!(out.counts, passes, "{score}");
        assert_eq!(members.winners.len(), 5);
        for (s, &winner) in members.winners.iter().enumerate() {
            let best = (0..4).fold(0, |w, m| if scores[m][s] > scores[w][s] { m } else { w });
            assert_eq!(winner, best, "{score}, sample {s}: scores {:?}", (0..4).map(|m| scores[m][s]).collect::<Vec<_>>());
            assert!(out.x_adv.get(s as i64).equal(&members.members[best].x_adv.get(s as i64)), "{score}, sample {s}");
        }
        assert!(out.checks.passed() && out.checks.max_perturbation <= 6.0 + 1e-5, "{:?}", out.checks);
    }
}
