//! The library's one error type. Messages are lower-case, name the file, flag or value that
//! caused the problem, and say how to fix it; the library never prints and never exits.
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

    /// A configuration value (flag, option, config field) that is out of range or inconsistent.
    #[error("{name}: {reason}")]
    Config { name: String, reason: String },

    /// An I/O error on a named path.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// An error reported by libtorch.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Data`] for `path`.
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data { path: path.into(), reason: reason.into() }
    }

    /// A [`Error::Config`] for the option `name`.
    pub fn config(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { name: name.into(), reason: reason.into() }
    }

    /// A [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
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
