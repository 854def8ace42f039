//! A results store written row by row with hand-picked ARPs, so every table and figure has known
//! contents: three clean two-task models (all-shared, 2 shared stages, independent) and one FAT
//! twin of the all-shared one, PGD Single-Segm / Single-Dept / Total / GB-MTA at ε = 4 and 8.
#![allow(dead_code)]
use mtrobust::attack::AttackConfig;
use mtrobust::eval::{Arp, ConditionReport, EvalOptions, transferability};
use mtrobust::study::Store;
use mtrobust::study::store::{DatasetRow, ModelRow, NewCell};
use mtrobust::task::{MetricValue, TaskKind, TaskMap};
use std::path::Path;

const SEGM: TaskKind = TaskKind::SegmentSemantic;
const DEPT: TaskKind = TaskKind::DepthZbuffer;

/// (name, shared stages, parameters, FAT?, [(direction, ARP-segm, ARP-dept)] at ε = 8).
pub type Model = (&'static str, usize, i64, bool, [(&'static str, f64, f64); 4]);

/// The models of the store.
/// ε = 4 has half of each ARP.
pub const MODELS: [Model; 4] = [
    (
        "shared",
        5,
        1_234_567,
        false,
        [("single:segm", 40.0, 10.0), ("single:dept", 8.0, 32.0), ("total", 36.0, 20.0), ("gbmta", 30.0, 30.0)],
    ),
    ("mid", 2, 1_500_000, false, [("single:segm", 42.0, 6.0), ("single:dept", 4.0, 36.0), ("total", 30.0, 20.0), ("gbmta", 31.0, 31.0)]),
    ("indep", 0, 2_000_000, false, [("single:segm", 50.0, 1.0), ("single:dept", 1.0, 50.0), ("total", 45.0, 25.0), ("gbmta", 33.0, 33.0)]),
    ("fat", 5, 1_234_567, true, [("single:segm", 10.0, 2.0), ("single:dept", 2.0, 8.0), ("total", 8.0, 6.0), ("gbmta", 9.0, 9.0)]),
];

pub fn metrics(miou: f64, abs_err: f64) -> TaskMap<Vec<MetricValue>> {
    [(SEGM, vec![MetricValue::new("mIoU", miou, true)]), (DEPT, vec![MetricValue::new("abs_err", abs_err, false)])].into_iter().collect()
}

pub fn report(label: &str, attack: Option<AttackConfig>, arp: Option<Arp>, m: TaskMap<Vec<MetricValue>>) -> ConditionReport {
    ConditionReport {
        label: label.into(),
        attack,
        samples: 4,
        metrics: m,
        losses: [(SEGM, 1.0), (DEPT, 0.5)].into_iter().collect(),
        objective: None,
        counts: None,
        checks: None,
        arp,
        ensemble: None,
    }
}

/// Writes the store at `db`.
pub fn build(db: &Path) {
    let mut store = Store::open(db).unwrap();
    let options = EvalOptions::default();
    store
        .put_dataset(&DatasetRow { id: "d0".into(), path: "data".into(), split: "test".into(), samples: 4, options: serde_json::json!({}) })
        .unwrap();
    for (i, (name, shared, params, fat, cells)) in MODELS.iter().enumerate() {
        let layout = if *shared == 5 {
            "[[{0, 1}]]"
        } else if *shared == 2 {
            "[[{0, 1}], [{0}, {1}]]"
        } else {
            "[[{0}, {1}]]"
        };
        let training = if *fat {
            serde_json::json!({ "adversarial": { "attack": { "step": "pgd", "direction": "gbmta" }, "clean_weight": 0.0 } })
        } else {
            serde_json::json!({ "adversarial": null })
        };
        let id = format!("m{i}");
        store
            .put_model(&ModelRow {
                id: id.clone(),
                name: name.to_string(),
                path: format!("{name}.safetensors"),
                backbone: "small".into(),
                layout: layout.into(),
                layout_index: Some(i),
                shared_stages: *shared,
                parameters: *params,
                tasks: vec!["segment_semantic".into(), "depth_zbuffer".into()],
                sidecar: serde_json::json!({ "provenance": { "training": training } }),
            })
            .unwrap();
        // Clean metrics: the FAT model has mIoU 0.4 (vs 0.5) and abs_err 0.25 (vs 0.2).
        let clean = if *fat { report("clean", None, None, metrics(0.4, 0.25)) } else { report("clean", None, None, metrics(0.5, 0.2)) };
        store.put_clean(&id, "d0", &options, &clean, 0.1).unwrap();
        for eps in [4.0, 8.0] {
            for (direction, segm, dept) in cells {
                let scale = eps / 8.0;
                let per_task: TaskMap<f64> = [(SEGM, segm * scale), (DEPT, dept * scale)].into_iter().collect();
                let arp = Arp { metrics: TaskMap::new(), per_task, arp: (segm + dept) / 2.0 * scale };
                let config = AttackConfig { direction: direction.parse().unwrap(), eps, ..Default::default() };
                let transfer = match config.direction {
                    mtrobust::attack::DirectionSpec::Single(x) => transferability(&arp, x),
                    _ => None,
                };
                let r = report(&config.label(), Some(config), Some(arp), metrics(0.3, 0.3));
                let cell_id = format!("{id}-{direction}-{eps}");
                let cell = NewCell {
                    id: &cell_id,
                    model_id: &id,
                    dataset_id: "d0",
                    options: &options,
                    report: &r,
                    clean: &clean,
                    transfer,
                    seconds: 0.1,
                    device: "cpu",
                    samples: &[],
                };
                assert!(store.put_cell(&cell).unwrap());
            }
        }
    }
}
