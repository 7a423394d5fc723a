//! Errors of ponder-eval.

/// What can go wrong loading a dataset, planning, running or reading a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown dataset `{spec}`; known: {}", crate::KNOWN_SPECS)]
    UnknownDataset { spec: String },
    #[error("dataset slice `{spec}`: {reason}")]
    BadSlice { spec: String, reason: String },
    #[error("arith level must be an integer from 1 to 5, got `{level}`")]
    LevelOutOfRange { level: String },
    #[error("arith problem count must be an integer from 1 to {max}, got `{count}`", max = crate::MAX_GENERATED)]
    CountOutOfRange { count: String },
    /// The vendored data does not parse: a build shipped a damaged file.
    #[error("vendored {dataset} data is malformed at line {line}: {reason}")]
    MalformedData { dataset: &'static str, line: usize, reason: String },
    /// A dataset file (`jsonl:PATH`) cannot be read.
    #[error("cannot read dataset file {path}: {reason}")]
    Io { path: String, reason: String },
    /// A row of a dataset file that does not parse or lacks a field.
    #[error("{path} line {line}: {reason} (pass --skip-bad-rows to skip bad rows)")]
    BadRow { path: String, line: usize, reason: String },
    #[error("no problems in {path}{}", if *skipped > 0 { format!(" ({skipped} bad rows skipped)") } else { String::new() })]
    NoProblems { path: String, skipped: usize },
    /// The run store file is missing (reading commands never create one).
    #[error("no run store at {path} (ponder eval creates one; --store FILE picks another)")]
    NoStore { path: String },
    /// The run store cannot be opened or created.
    #[error("cannot open run store {path}: {reason}")]
    StoreOpen { path: String, reason: String },
    /// The file exists but is not a run store: corrupt, or another program's database.
    #[error("{path} is not a ponder run store: {reason}")]
    NotAStore { path: String, reason: String },
    #[error("no run {id} in {path}{}", if known.is_empty() { " (it holds no runs)".to_string() } else { format!(" (runs: {known})") })]
    UnknownRun { id: i64, path: String, known: String },
    /// A run's stored configuration does not parse (written by an incompatible version).
    #[error("run {id}: stored configuration is unreadable: {reason}")]
    BadConfig { id: i64, reason: String },
    /// A resumed run whose dataset no longer holds the same problems.
    #[error("run {id} was made on other problems than `{dataset}` gives now (its file or generator changed); start a new run")]
    DatasetChanged { id: i64, dataset: String },
    #[error("run store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A problem's strategy failed; units stored so far stay.
    /// (`cause`, not `source`: the message carries it, and an error chain printed it twice.)
    #[error("{strategy} (budget {budget}, seed {seed}) on problem {problem}: {cause}")]
    Unit { strategy: String, budget: usize, seed: u64, problem: String, cause: Box<ponder_core::strategy::StrategyError> },
    /// A strategy spec that does not parse, check or build.
    #[error(transparent)]
    Strategy(Box<ponder_core::strategy::StrategyError>),
    /// Two problems of a dataset share an id (units are keyed by it).
    #[error("dataset {spec}: problem id {id:?} appears twice; ids must be unique")]
    DuplicateId { spec: String, id: String },
    /// A run stored without the arguments it was started with cannot be resumed.
    #[error("run {id} has no stored arguments to resume with")]
    NoStoredArgs { id: i64 },
    /// A policy file (`ponder plan`, `--strategy auto`) that cannot be used.
    #[error("policy {path}: {reason}")]
    Policy { path: String, reason: String },
    /// A prompt template (built-in name or file) that cannot be used.
    #[error("prompt template {name}: {reason}")]
    BadPrompt { name: String, reason: String },
    /// A price table that cannot be used.
    #[error("price table {path}: {reason}")]
    Prices { path: String, reason: String },
    /// Not enough data in a run for what was asked.
    #[error("{0}")]
    Insufficient(String),
    /// Writing a report or a plot.
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
    /// The code datasets grade in the sandbox, which cannot start here.
    #[error(transparent)]
    Sandbox(#[from] ponder_verify::code::Error),
}
