//! Behaviour on a small model actually trained on the synthetic scenes (a few seconds of CPU):
//! every attack raises its own objective, iterative attacks at least match FGSM, and an
//! adversarially fine-tuned (FAT) twin is more robust than its clean twin. The data and the clean
//! model are made once for the file.
use mtrobust::attack::{Attack, AttackConfig, DirectionSpec};
use mtrobust::attack::{EarlyStop, Pgd, Rule, RuleKind};
use mtrobust::data::synth::export::{SynthOptions, write_dataset};
use mtrobust::data::{InputSpace, Loader, Mode, Sizes, open};
use mtrobust::eval::{EvalOptions, Evaluation};
use mtrobust::job::{DataSpec, Job};
use mtrobust::model::{BackboneKind, Model, ModelConfig, layout_at};
use mtrobust::observe::Silent;
use mtrobust::task::{Task, TaskKind, taskonomy_tasks};
use mtrobust::train::{AdversarialTraining, RunDir, TrainConfig, TrainData, train};
use std::path::Path;
use std::sync::OnceLock;
use tch::Device;

struct Setup {
    dir: tempfile::TempDir,
    root: std::path::PathBuf,
    tasks: Vec<Task>,
    kinds: Vec<TaskKind>,
}

/// The data and one clean model trained on it, shared by the tests of this file (trained once).
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        write_dataset(&root, &SynthOptions { n: 240, size: 48, seed: 5, test_fraction: 0.2 }, &mut Silent).unwrap();
        let ds = open(&root, "train", Mode::Train, Sizes::default()).unwrap();
        let specs = taskonomy_tasks(ds.reader.seg_classes() as i64);
        let tasks = ds.tasks_for(&specs).unwrap();
        let kinds = specs.iter().map(|s| s.kind).collect();
        let s = Setup { dir, root, tasks, kinds };
        train_into(&s, fresh_model(&s), &s.dir.path().join("clean"), 240, None);
        s
    })
}

fn fresh_model(s: &Setup) -> Model {
    let specs: Vec<_> = s.tasks.iter().map(|t| t.spec).collect();
    let config = ModelConfig {
        backbone: BackboneKind::Small,
        tasks: specs,
        layout: layout_at(5, 5, 0).unwrap(),
        head: BackboneKind::Small.default_head(),
    };
    Model::new(config, InputSpace::reference(), Device::Cpu, 1).unwrap()
}

fn train_into(s: &Setup, mut model: Model, out: &Path, steps: usize, adversarial: Option<AdversarialTraining>) -> Model {
    let data = Loader::new(open(&s.root, "train", Mode::Train, Sizes::default()).unwrap(), s.kinds.clone(), 16, None).unwrap();
    let mut cfg = TrainConfig::new(5, steps, 16);
    cfg.lr = 0.05;
    cfg.adversarial = adversarial;
    train(
        &mut model,
        TrainData { tasks: &s.tasks, samples: &data, validation: None, eval_options: EvalOptions::default() },
        &cfg,
        RunDir { path: out, restart: false },
        None,
        &mut Silent,
    )
    .unwrap();
    model
}

/// The shared clean model (240 steps).
fn clean_model(s: &Setup) -> Model {
    Model::load(&s.dir.path().join("clean/model.safetensors"), Device::Cpu).unwrap().0
}

fn attack_all(s: &Setup, model: &Model, configs: Vec<AttackConfig>) -> Evaluation {
    let attacks: Vec<Attack> = configs.into_iter().map(|c| Attack::new(c).unwrap()).collect();
    let job = Job::new(model, "trained in this test", DataSpec { limit: Some(32), ..DataSpec::new(&s.root) }, attacks);
    mtrobust::job::run(&job, &mut Silent, None).unwrap().evaluation
}

fn config(kind: RuleKind, direction: DirectionSpec, eps: f64) -> AttackConfig {
    AttackConfig { rule: kind.default_rule().with_n_iter(5), direction, eps, ..Default::default() }
}

#[test]
fn attacks_on_a_trained_model_raise_their_objective_and_iterating_helps() {
    let s = setup();
    let model = clean_model(s);
    let directions = [
        DirectionSpec::Single(TaskKind::SegmentSemantic),
        DirectionSpec::Single(TaskKind::DepthZbuffer),
        DirectionSpec::Total,
        DirectionSpec::SignTotal,
        DirectionSpec::Gbmta,
    ];
    let steps = RuleKind::ALL;
    let mut configs = Vec::new();
    for step in steps {
        for d in &directions {
            configs.push(config(step, d.clone(), 4.0));
        }
    }
    let e = attack_all(s, &model, configs);
    let gain = |step: RuleKind, d: &DirectionSpec| {
        let r = e.attacked.iter().find(|r| r.attack.as_ref().is_some_and(|c| c.rule.kind() == step && &c.direction == d)).unwrap();
        let (clean, adv) = r.objective.unwrap();
        (clean, adv, r.label.clone())
    };
    for step in steps {
        for d in &directions {
            let (clean, adv, label) = gain(step, d);
            eprintln!("{label}: {clean:.4} → {adv:.4}");
            assert!(adv > clean, "{label}: objective {clean} → {adv}");
            // Square's five queries are no match for one gradient step; only gradient rules must beat FGSM.
            if step != RuleKind::Fgsm && step.uses_gradients() {
                let (_, fgsm, _) = gain(RuleKind::Fgsm, d);
                assert!(adv >= fgsm, "{label} reaches {adv}, below FGSM's {fgsm} at the same ε");
            }
        }
    }
    // The attacks hurt the tasks they target: ARP > 0 for all of them.
    for r in &e.attacked {
        assert!(r.arp.as_ref().unwrap().arp > 0.0, "{}: ARP {}", r.label, r.arp.as_ref().unwrap().arp);
    }
}

#[test]
fn adversarial_training_lowers_the_arp_of_pgd() {
    let s = setup();
    let fat_dir = tempfile::tempdir().unwrap();
    let clean = clean_model(s);
    let mut fat_attack = config(RuleKind::Pgd, DirectionSpec::Gbmta, 8.0);
    fat_attack.rule = Rule::Pgd(Pgd { n_iter: 5, early_stop: Some(EarlyStop { tau: 2, threshold: 0.5 }), ..Pgd::default() });
    // Adversarial fine-tuning of the clean twin (cheaper than FAT from scratch, same question).
    let fat = train_into(
        s,
        clean_model(s),
        fat_dir.path(),
        80,
        Some(AdversarialTraining { attack: fat_attack, clean_weight: 0.0, tau_start: None }),
    );
    let eval = |m: &Model| {
        let e = attack_all(s, m, vec![config(RuleKind::Pgd, DirectionSpec::Gbmta, 8.0), config(RuleKind::Pgd, DirectionSpec::Total, 8.0)]);
        e.attacked.iter().map(|r| r.arp.as_ref().unwrap().arp).collect::<Vec<_>>()
    };
    let (a, b) = (eval(&clean), eval(&fat));
    eprintln!("ARP clean {a:?} vs FAT {b:?}");
    for (i, name) in ["gbmta", "total"].iter().enumerate() {
        assert!(b[i] < a[i], "PGD-{name}: ARP of the FAT model {} is not below the clean model's {}", b[i], a[i]);
    }
}
