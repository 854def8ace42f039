//! TorchScript multi-task models: any module whose forward returns a dict, tuple or list of
//! per-task outputs, described by a model spec (tasks, outputs, input normalisation).
mod net;
pub mod spec;

pub use net::ScriptNet;
pub use spec::{OutputKey, ResolvedSpec, ScriptInput, ScriptSpec, ScriptTask};
