//! Errors of ponder-eval.

/// What can go wrong loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown dataset `{spec}`; known: {}", crate::KNOWN_SPECS)]
    UnknownDataset { spec: String },
    #[error("arith level must be an integer from 1 to 5, got `{level}`")]
    LevelOutOfRange { level: String },
    #[error("arith problem count must be an integer from 1 to {max}, got `{count}`", max = crate::MAX_GENERATED)]
    CountOutOfRange { count: String },
    /// The vendored data does not parse: a build shipped a damaged file.
    #[error("vendored {dataset} data is malformed at line {line}: {reason}")]
    MalformedData { dataset: &'static str, line: usize, reason: String },
    /// The code datasets grade in the sandbox, which cannot start here.
    #[error(transparent)]
    Sandbox(#[from] ponder_verify::code::Error),
}
