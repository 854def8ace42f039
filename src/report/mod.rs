//! Reports: what a run writes (`RunRecord`, JSON with a schema version) and the renderers that read
//! it — a text table for the terminal, a CSV with one row per condition (the reference's columns,
//! docs/REFERENCE.md §6, plus ours), and the comparison of several models from their reports.
//!
//! The paper-style tables ([`paper`]) render one [`paper::Table`] three ways:
//!
//! ```
//! use mtrobust::report::paper::Table;
//! use mtrobust::report::paper::grid::{Row, bold_max, fmt2};
//!
//! let arp = [Some(12.5), Some(14.0), None];
//! let table = Table {
//!     id: "table1_arp".into(),
//!     title: "ARP (%) at ε = 8/255".into(),
//!     head: vec!["Model".into()],
//!     groups: vec![("PGD".into(), vec!["Total".into(), "GB-MTA".into(), "SignTotal".into()])],
//!     rows: vec![Row { labels: vec!["shared-5L".into()], values: arp.iter().map(|v| fmt2(*v)).collect(), bold: bold_max(&arp) }],
//!     summary: "GB-MTA strongest in 1/1 models".into(),
//! };
//! assert_eq!(table.cell("shared-5L", "PGD GB-MTA"), Some(("14.00".to_string(), true)));
//! assert!(table.markdown().contains("| shared-5L | 12.50 | **14.00** | - |"));
//! assert_eq!(table.csv().lines().nth(1), Some("shared-5L,12.50,14.00,"));
//! assert!(table.latex().contains(r"\textbf{14.00}"));
//! ```
pub mod compare;
pub mod paper;
pub mod picture;
pub mod table;

// The record and the CSV live where runs are made (`job`, `eval`): re-exported for readers.
pub use crate::eval::csv;
pub use crate::job::record::{RunRecord, SCHEMA_VERSION};
