//! Studies: the paper's experiment grid — models × step rules × directions × ε × norms × seeds —
//! as one resumable, shardable run into a SQLite results store.
//!
//! A study is a TOML file ([`StudyFile`]); [`plan`] validates it and lists its [`Cell`]s; [`run`]
//! computes the cells a [`Store`] does not hold yet. Kill it at any moment and run it again: the
//! store then holds exactly what an uninterrupted run would have written. `--shard i/n` splits
//! the cells deterministically for a job-array scheduler; [`Store::merge`] joins the shards.
pub mod cell;
pub mod export;
pub mod file;
pub mod runner;
pub mod store;

pub use cell::{Cell, Shard};
pub use file::{EXAMPLE, PAPER_EPS, StudyFile};
pub use runner::{Plan, RunOptions, Summary, plan, run};
pub use store::Store;
