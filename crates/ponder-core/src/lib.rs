//! ponder-core: the parts of test-time compute that need no I/O.
//!
//! Types, the [`Generator`] contract that every backend implements, outcome scorers,
//! answer extraction and equivalence, and the strategies. Everything here runs on a
//! deterministic generator in tests and unchanged on the engine or over HTTP.

pub mod answer;
mod cancel;
pub mod confidence;
pub mod generator;
pub mod outcome;
pub mod problem;
pub mod process;
pub mod reasoning;
pub mod scorer;
pub mod scorer_spec;
pub mod strategy;
pub mod testing;
pub mod verifier;
mod usage;

pub use generator::{
    derive_seed, BranchId, CancelToken, ConfidenceStop, FinishReason, GenError, GenEvent, Generator, GeneratorInfo, Sample,
    SampleRequest, SampleStream, SamplingParams, Step, StepParams, StepSession, TokenStats, TopLogprob, MAX_TOKEN_STATS_K,
};
pub use process::{Aggregate, Partial, ProcessScorer};
pub use problem::{Checker, GoldChecker, Message, Problem, Role, ToolCall};
pub use usage::Usage;
