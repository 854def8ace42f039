//! Reports: what a run writes (`RunRecord`, JSON with a schema version) and the renderers that read
//! it — a text table for the terminal, a CSV with one row per condition (the reference's columns,
//! docs/REFERENCE.md §6, plus ours), and the comparison of several models from their reports.
pub mod compare;
pub mod paper;
pub mod picture;
pub mod table;

// The record and the CSV live where runs are made (`job`, `eval`): re-exported for readers.
pub use crate::eval::csv;
pub use crate::job::record::{RunRecord, SCHEMA_VERSION};
