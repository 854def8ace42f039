//! The built-in data's keypoint and edge labels are learnable by a small model in a short budget:
//! after a few hundred steps on 32² scenes, the `small` backbone beats the best constant prediction
//! on both (the demo's model and recipe, at a smaller size — see `mtrobust demo`).
use mtrobust::data::synth::export::{SynthOptions, write_dataset};
use mtrobust::data::{InputSpace, Loader, Mode, Sizes};
use mtrobust::eval::{EvalOptions, clean_run};
use mtrobust::model::{BackboneKind, Model, ModelConfig};
use mtrobust::observe::Silent;
use mtrobust::report::paper::quality::{best_constants, constant_metrics, improvement};
use mtrobust::task::{Convention, TaskKind, taskonomy_tasks};
use mtrobust::train::{RunDir, TrainConfig, TrainData, train};
use tch::Device;

#[test]
fn a_small_model_beats_the_constant_baseline_on_keypoints_and_edges() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, &SynthOptions { n: 160, size: 32, seed: 7, test_fraction: 0.2 }, &mut Silent).unwrap();
    let open = |mode| mtrobust::data::open(&data, if mode == Mode::Train { "train" } else { "test" }, mode, Sizes::default()).unwrap();
    let train_set = open(Mode::Train);
    let specs = taskonomy_tasks(train_set.reader.seg_classes() as i64);
    let tasks = train_set.tasks_for(&specs).unwrap();
    let kinds: Vec<TaskKind> = specs.iter().map(|s| s.kind).collect();
    let options = EvalOptions { profile: train_set.default_profile(), convention: Convention::Standard };
    let loader = Loader::new(train_set, kinds.clone(), 16, None).unwrap();
    let layout = "[[{0, 1, 2, 3, 4}], [{0, 1, 2, 3, 4}], [{0, 1, 2, 3, 4}], [{0, 1, 2, 3, 4}], [{0, 1, 2, 3, 4}]]".parse().unwrap();
    let config = ModelConfig { backbone: BackboneKind::Small, tasks: specs.clone(), layout, head: BackboneKind::Small.default_head() };
    let mut model = Model::new(config, InputSpace::reference(), Device::Cpu, 0).unwrap();
    let mut tc = TrainConfig::new(specs.len(), 300, 16);
    tc.lr = 0.05;
    train(
        &mut model,
        TrainData { tasks: &tasks, samples: &loader, validation: None, eval_options: options },
        &tc,
        RunDir { path: &tmp.path().join("model"), restart: false },
        None,
        &mut Silent,
    )
    .unwrap();

    let test_set = open(Mode::Test);
    let test_tasks = test_set.tasks_for(&specs).unwrap();
    let test = Loader::new(test_set, kinds, 16, None).unwrap();
    let trained = clean_run(&model, &test_tasks, &test, options, &mut Silent).unwrap().report.metrics;
    let constants = best_constants(&test_tasks, &test, options.profile).unwrap();
    let constant = constant_metrics(&test_tasks, &test, &constants, options.profile, options.convention).unwrap();
    for (task, name) in [(TaskKind::Keypoints2d, "key_err"), (TaskKind::EdgeTexture, "edge_err")] {
        let get = |m: &mtrobust::task::TaskMap<Vec<mtrobust::task::MetricValue>>| {
            m.get(task).unwrap().iter().find(|v| v.name == name).unwrap().clone()
        };
        let (model_value, constant_value) = (get(&trained), get(&constant));
        let gain = improvement(&model_value, &constant_value);
        println!("{name}: model {:.4}, constant {:.4} ({:+.1} %)", model_value.value, constant_value.value, 100.0 * gain);
        assert!(gain > 0.15, "{name}: the model ({}) is not 15 % better than the constant ({})", model_value.value, constant_value.value);
    }
}
