//! The library's error type. Every failure a user can cause (a file, a flag, a diverging run)
//! ends here with a message that says what went wrong and what to do.

use std::path::PathBuf;

/// Errors of the subspace-lab library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file that cannot be what it claims to be.
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },
    /// Data that parsed but is not the expected content: `data` names what it should be (e.g.
    /// "the canonical MNIST training set"), `fix` what to do — for a cache, fetch again; for a
    /// file the user gave, which file to give (never to delete it).
    #[error(
        "{what}: sha256 mismatch (expected {expected}, got {got}); the file is corrupt or not {data}: {fix}"
    )]
    Checksum {
        what: String,
        expected: String,
        got: String,
        data: String,
        fix: String,
    },
    /// Every source of MNIST-5k failed; the message lists each attempt.
    #[error("could not fetch MNIST-5k:\n{0}")]
    Fetch(String),
    /// Every source of another data set failed (`what` names it); the message lists each attempt
    /// and says what to do.
    #[error("could not get {what}:\n{msg}")]
    DataUnavailable { what: String, msg: String },
    #[error("weights {path}: {msg}")]
    Weights { path: PathBuf, msg: String },
    /// Shapes or sizes that do not fit together (a programming or configuration error).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A value the user passed that cannot work.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// NaN or Inf appeared in a computation.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    #[error("backend error: {0}")]
    Backend(String),
    /// A run diverged: NaN or Inf in the loss or the parameters. `what` is a clause saying what
    /// is not finite ("the loss is inf", "θ is not finite").
    #[error(
        "{run} diverged at step {step}: {what}; the rows up to step {step} are kept in metrics.csv; lower the learning rate (optimizer.lr) and run again"
    )]
    Diverged {
        run: String,
        step: usize,
        what: String,
    },
    /// The user asked the run to stop (Ctrl-C); a checkpoint was written.
    #[error("interrupted at step {step}: {msg}")]
    Interrupted { step: usize, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
