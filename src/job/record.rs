//! What a run writes: the JSON record of a job, with a schema version and the versions of the
//! code that produced it.
use crate::eval::Evaluation;

/// Version of the JSON report schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run of `mtrobust attack` (or `demo`) produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub schema_version: u32,
    /// Digest of everything that changes the numbers (checkpoint contents, data, attack and
    /// metric options): a rerun with the same identity may replace this report, another may not.
    #[serde(default)]
    pub run_id: String,
    pub mtrobust: String,
    /// The libtorch the binary loads (the PyTorch wheel's version, e.g. `2.11.0+cu130`).
    pub libtorch: String,
    /// The git commit mtrobust was built from.
    #[serde(default)]
    pub commit: String,
    pub device: String,
    /// The checkpoint attacked.
    pub model: String,
    /// Backbone and layout of the model.
    pub architecture: String,
    /// The data and split evaluated.
    pub data: String,
    pub seconds: f64,
    pub evaluation: Evaluation,
}

impl RunRecord {
    /// A record stamped with the versions of this build.
    pub fn new(device: String, model: String, architecture: String, data: String, seconds: f64, evaluation: Evaluation) -> Self {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            run_id: String::new(),
            mtrobust: env!("CARGO_PKG_VERSION").into(),
            libtorch: env!("MTROBUST_LIBTORCH_VERSION").into(),
            commit: env!("MTROBUST_GIT_COMMIT").into(),
            device,
            model,
            architecture,
            data,
            seconds,
            evaluation,
        }
    }
}
