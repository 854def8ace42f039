//! The library's one error type. Messages are lower-case, name the file, flag or value that
//! caused the problem, and say how to fix it; the library never prints and never exits.
//!
//! ```
//! use mtrobust::Error;
//! let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
//! let err = Error::io("results.sqlite", denied);
//! assert_eq!(err.to_string(), "results.sqlite"); // the message names the file…
//! assert_eq!(err.chain(), "results.sqlite: permission denied"); // …and the cause stays its source
//! assert!(std::error::Error::source(&err).is_some());
//! ```
use std::path::PathBuf;

/// Everything that can go wrong in mtrobust.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A TreeMTL layout string or index that does not describe a valid tree.
    #[error("layout `{spec}`: {reason}")]
    Layout { spec: String, reason: String },

    /// A data file that is missing, unreadable or not in the expected format.
    #[error("{}: {reason}", path.display())]
    Data { path: PathBuf, reason: String },

    /// A checkpoint that cannot be read or does not fit the model it claims to describe.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },

    /// A tensor whose shape does not match what the caller promised.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape { what: String, expected: String, got: String },

    /// A parameter of the library (an attack's, a training run's, a data option) whose value is
    /// out of range or inconsistent with others. `name` is the library's and the study file's
    /// spelling (`n_iter`); the command line shows it as its flag (`--n-iter`).
    #[error("{name}: {reason}")]
    Parameter { name: String, reason: String },

    /// A configuration that is inconsistent as a whole, or an object that does not fit what it is
    /// used for (a model spec, a study entry, a network's outputs).
    #[error("{name}: {reason}")]
    Config { name: String, reason: String },

    /// NaN or infinite values where numbers are required: model weights and outputs, losses,
    /// budgets. The numbers computed from them would mean nothing.
    #[error("{what}: {detail}")]
    NonFinite { what: String, detail: String },

    /// Training that diverged: its loss became NaN or infinite.
    #[error("training diverged at step {step}: {detail}")]
    Diverged { step: usize, detail: String },

    /// An I/O error on a named path. The I/O error is the [`source`](std::error::Error::source),
    /// not part of the message: `{:#}` (anyhow, the CLI) prints "path: cause".
    #[error("{}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// What mtrobust was doing when an underlying error occurred (SQLite, JSON, TOML, image,
    /// libtorch, or an mtrobust error from a lower layer). The cause stays the
    /// [`source`](std::error::Error::source) instead of being copied into the message, so `{:#}`
    /// (anyhow, the CLI) prints "context: cause" once and a caller can downcast the cause.
    #[error("{context}")]
    Context { context: String, source: Cause },

    /// An error reported by libtorch (its message, once, whether printed with `{}` or `{:#}`).
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// The underlying error of [`Error::Context`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a libtorch message reports a failed allocation: CUDA's "out of memory … Tried to
/// allocate", the CPU allocator's "can't allocate memory".
pub fn says_out_of_memory(text: &str) -> bool {
    ["out of memory", "can't allocate memory", "Tried to allocate"].iter().any(|k| text.contains(k))
}

impl Error {
    /// A [`Error::Data`] for `path`.
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data { path: path.into(), reason: reason.into() }
    }

    /// A [`Error::Parameter`]: the parameter `name` (library spelling, e.g. `n_iter`) is out of range.
    pub fn parameter(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Parameter { name: name.into(), reason: reason.into() }
    }

    /// A [`Error::NonFinite`]: `what` holds NaN or infinite values (`detail` says where and why it matters).
    pub fn non_finite(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::NonFinite { what: what.into(), detail: detail.into() }
    }

    /// Whether libtorch ran out of memory somewhere in this error's chain (a batch too large for
    /// the device); the caller can retry with a smaller batch.
    pub fn is_out_of_memory(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(c) = cause {
            if says_out_of_memory(&c.to_string()) {
                return true;
            }
            cause = c.source();
        }
        false
    }

    /// A [`Error::Config`] for the option `name`.
    pub fn config(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { name: name.into(), reason: reason.into() }
    }

    /// A [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A [`Error::Context`]: `source` happened while doing `context`.
    pub fn context(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Context { context: context.into(), source: source.into() }
    }

    /// The message with every cause, `context: cause: …` (what the CLI prints).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out += &format!(": {c}");
            cause = c.source();
        }
        out
    }

    /// A [`Error::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), reason: reason.into() }
    }

    /// A [`Error::Shape`] describing `what`.
    pub fn shape(what: impl Into<String>, expected: impl std::fmt::Debug, got: impl std::fmt::Debug) -> Self {
        Error::Shape { what: what.into(), expected: format!("{expected:?}"), got: format!("{got:?}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_sources_printed_once_by_the_cli() {
        let io = Error::io("r.json", std::io::Error::other("disk full"));
        assert_eq!(io.to_string(), "r.json");
        assert_eq!(io.chain(), "r.json: disk full");
        // What the CLI prints (`{:#}` of anyhow): every cause once.
        assert_eq!(format!("{:#}", anyhow::Error::from(io)), "r.json: disk full");
        // A lower layer's error under a context, itself with a cause: three links.
        let inner = Error::context("results.sqlite: results store", std::io::Error::other("database is locked"));
        let outer = Error::context("[[attack]] #1 (pgd)", inner);
        assert_eq!(outer.to_string(), "[[attack]] #1 (pgd)");
        assert_eq!(outer.chain(), "[[attack]] #1 (pgd): results.sqlite: results store: database is locked");
        assert_eq!(format!("{:#}", anyhow::Error::from(outer)), "[[attack]] #1 (pgd): results.sqlite: results store: database is locked");
        // The cause can be downcast.
        let e = Error::context("x", std::io::Error::other("boom"));
        let source = std::error::Error::source(&e).unwrap();
        assert_eq!(source.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::Other);
        // libtorch's message once, without a source of its own.
        let t = Error::from(tch::TchError::Torch("shape mismatch".into()));
        assert_eq!(format!("{:#}", anyhow::Error::from(t)), "Internal torch error: shape mismatch");
    }
}
