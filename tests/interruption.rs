//! A run killed (`kill -9`) after its last checkpoint and then resumed writes the same
//! `log.jsonl` as an uninterrupted run, line for line: no step logged twice, and the first loss
//! after the resume averages the whole logging window, not just the steps of the new process.
//! The kill is simulated by copying the run directory while the run is between two checkpoints.
//! One test on purpose: libtorch's CPU kernels are bit-reproducible only while one test runs.
use mtrobust::data::synth::export::{SynthOptions, write_dataset};
use mtrobust::data::{InputSpace, Loader, Mode, Sizes, open};
use mtrobust::eval::EvalOptions;
use mtrobust::model::{BackboneKind, Model, ModelConfig, layout_at};
use mtrobust::observe::{Event, Observer, Silent};
use mtrobust::task::taskonomy_tasks;
use mtrobust::train::{LogLine, RunDir, TrainConfig, TrainData, train};
use std::path::Path;
use tch::Device;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Copies the run directory as it is once `at` steps are done: what a `kill -9` right then leaves.
struct SnapshotAt<'a> {
    at: u64,
    run: &'a Path,
    snapshot: &'a Path,
}

impl Observer for SnapshotAt<'_> {
    fn event(&mut self, e: Event) {
        if let Event::Progress { done, .. } = e
            && done == self.at
        {
            copy_dir(self.run, self.snapshot);
        }
    }
}

/// The log's lines without their wall-clock times.
fn log(dir: &Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    text.lines().map(|l| LogLine { seconds: 0.0, ..serde_json::from_str(l).unwrap() }).collect()
}

#[test]
fn a_run_killed_between_checkpoints_resumes_with_the_uninterrupted_log() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    write_dataset(&root, &SynthOptions { n: 16, size: 32, seed: 5, test_fraction: 0.25 }, &mut Silent).unwrap();
    let ds = open(&root, "train", Mode::Train, Sizes::default()).unwrap();
    let specs = taskonomy_tasks(ds.reader.seg_classes() as i64);
    let tasks = ds.tasks_for(&specs).unwrap();
    let data = Loader::new(ds, specs.iter().map(|s| s.kind).collect(), 4, None).unwrap();
    let model = || {
        let config = ModelConfig {
            backbone: BackboneKind::Small,
            tasks: specs.clone(),
            layout: layout_at(5, 5, 0).unwrap(),
            head: BackboneKind::Small.default_head(),
        };
        Model::new(config, InputSpace::reference(), Device::Cpu, 1).unwrap()
    };
    // Log windows of 2 steps, checkpoints every 3: the checkpoint at step 3 falls inside a window.
    let mut cfg = TrainConfig::new(5, 5, 4);
    cfg.log_every = 2;
    cfg.checkpoint_every = 3;
    cfg.seed = 4;

    let straight = tmp.path().join("straight");
    let run = tmp.path().join("run");
    let killed = tmp.path().join("killed");
    train(
        &mut model(),
        TrainData { tasks: &tasks, samples: &data, validation: None, eval_options: EvalOptions::default() },
        &cfg,
        RunDir { path: &straight, restart: false },
        None,
        &mut Silent,
    )
    .unwrap();
    let mut snapshot = SnapshotAt { at: 4, run: &run, snapshot: &killed };
    train(
        &mut model(),
        TrainData { tasks: &tasks, samples: &data, validation: None, eval_options: EvalOptions::default() },
        &cfg,
        RunDir { path: &run, restart: false },
        None,
        &mut snapshot,
    )
    .unwrap();
    // Killed after step 4: steps 2 and 4 are logged, the newest checkpoint is step 3.
    assert_eq!(log(&killed).iter().map(|l| l.step).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(std::fs::read_to_string(killed.join("checkpoints/latest")).unwrap(), "step-0000003");

    let s = train(
        &mut model(),
        TrainData { tasks: &tasks, samples: &data, validation: None, eval_options: EvalOptions::default() },
        &cfg,
        RunDir { path: &killed, restart: false },
        None,
        &mut Silent,
    )
    .unwrap();
    assert_eq!((s.resumed_from, s.steps), (3, 5));
    let (expected, resumed) = (log(&straight), log(&killed));
    assert_eq!(resumed.iter().map(|l| l.step).collect::<Vec<_>>(), [2, 4, 5], "each step logged once");
    assert_eq!(resumed, expected, "the resumed run's log equals the uninterrupted run's");
}
