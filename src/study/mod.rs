//! Studies: the paper's experiment grid — models × step rules × directions × ε × norms × seeds —
//! as one resumable, shardable run into a SQLite results store.
//!
//! A study is a TOML file ([`StudyFile`]); [`plan`] validates it and lists its [`Cell`]s; [`run`]
//! computes the cells a [`Store`] does not hold yet. Kill it at any moment and run it again: the
//! store then holds exactly what an uninterrupted run would have written. `--shard i/n` splits
//! the cells deterministically for a job-array scheduler; [`Store::merge`] joins the shards.
//!
//! A whole study on a tiny model and data, written to a temporary folder:
//!
//! ```
//! use mtrobust::data::InputSpace;
//! use mtrobust::data::synth::export::{SynthOptions, write_dataset};
//! use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
//! use mtrobust::study::{RunOptions, Store, StudyFile, plan, run};
//! use mtrobust::task::parse_tasks;
//!
//! let dir = std::env::temp_dir().join(format!("mtrobust-doc-study-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let opts = SynthOptions { n: 10, size: 16, seed: 7, test_fraction: 0.2 };
//! write_dataset(&dir.join("data"), &opts, &mut mtrobust::observe::Silent)?;
//! let tasks = parse_tasks("segm:10,depth")?; // the synthetic scenes have 10 classes
//! let layout = layout_at(2, 5, 0)?;
//! let head = HeadConfig { width: 8, rates: vec![1], dropout: 0.0 };
//! let model = Model::new(ModelConfig { backbone: BackboneKind::Small, tasks, layout, head }, InputSpace::reference(), tch::Device::Cpu, 0)?;
//! model.save(&dir.join("model.safetensors"), None)?;
//!
//! std::fs::write(dir.join("study.toml"), r#"
//!     [data]
//!     path = "data"
//!     [[model]]
//!     path = "model.safetensors"
//!     name = "tiny"
//!     [[attack]]
//!     rule = "fgsm"
//!     directions = ["total", "gbmta"]
//!     eps = [4, 8]
//! "#).unwrap();
//! let plan = plan(&StudyFile::read(&dir.join("study.toml"))?)?;
//! assert_eq!(plan.cells.len(), 4); // 1 model × 2 directions × 2 ε
//! let mut store = Store::open(&dir.join("results.sqlite"))?;
//! let options = RunOptions { device: tch::Device::Cpu, shard: None, per_sample: false };
//! let first = run(&plan, &mut store, options, &mut mtrobust::observe::Silent)?;
//! assert_eq!(first.computed, 4);
//! // Run it again (after a kill, say): nothing is computed twice.
//! let again = run(&plan, &mut store, options, &mut mtrobust::observe::Silent)?;
//! assert_eq!((again.already_done, again.computed), (4, 0));
//! assert_eq!(store.cells()?.len(), 4);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod cell;
pub mod export;
pub mod file;
pub mod runner;
pub mod store;

pub use cell::{Cell, Shard};
pub use file::{EXAMPLE, PAPER_EPS, StudyFile};
pub use runner::{LiveModel, Plan, RunOptions, Summary, plan, plan_with, run, run_with};
pub use store::Store;
