//! ponder-http: the generator contract over OpenAI-compatible HTTP servers (vLLM, SGLang,
//! llama.cpp's server, Ollama, hosted APIs, or another `ponder serve`).
//!
//! [`HttpGenerator::connect`] probes the server once (models, `n`, logprobs, the
//! completions endpoint, prompt rendering, next-token probes) and then serves
//! [`Generator::sample`] through `chat/completions` (one request with `n` when the server
//! honours it and its `usage` counts every choice, else parallel requests) and step-wise sessions through `completions` on a
//! prompt ponder renders (or the server's `continue_final_message`). Several endpoints
//! may serve one model: all samples of one prompt go to the same endpoint (hash of the
//! prompt) so its prefix cache hits. Each endpoint has a concurrency limit; 429 and 5xx
//! are retried with backoff within a deadline, on the next endpoint; a server that refuses
//! connections is tried last for a few seconds; a stream's cancel aborts requests in flight.
//! [`HttpGenerator::endpoint_stats`] says what each endpoint answered and reported.
//!
//! Partial failures follow the contract: a failed request becomes [`GenEvent::Failed`]
//! for its samples and the strategy goes on with the rest.
//!
//! [`Generator::sample`]: ponder_core::Generator::sample
//! [`GenEvent::Failed`]: ponder_core::GenEvent::Failed

mod client;
mod config;
mod generator;
mod health;
mod reward;
mod session;
mod thinking;
pub mod wire;

pub use client::{Caps, ProbeMode};
pub use config::{Api, EndpointConfig, HttpConfig, StepMode};
pub use generator::HttpGenerator;
pub use health::EndpointStats;
pub use reward::{RewardApi, RewardScorer};
pub use session::HttpSession;

/// Errors of setting up an HTTP backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("invalid HTTP backend configuration: {0}")]
    Config(String),
    #[error("upstream {url} is unreachable or broken: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("upstream {url} does not serve model {model:?} (it serves: {served})")]
    UnknownModel { url: String, model: String, served: String },
}
