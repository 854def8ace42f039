//! The integration tests that drive the `mtrobust` binary or read its files, in one test binary
//! (each binary links libtorch, so one binary instead of ten saves most of their link time). The
//! tests that need a process of their own stay apart: `resume` and `interruption` (bit-identical
//! training needs one thread issuing ops), `learnability` (it sets libtorch's thread count for
//! the whole process), `fuzz_readers` (it re-runs its own binary under a memory limit).
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/paper_store.rs"]
mod paper_store;

mod cli;
mod guarantees;
mod outputs;
mod picture;
mod reliability;
mod report_snapshot;
mod report_store;
mod robustness;
mod study;
mod torchscript;
mod treemtl;
