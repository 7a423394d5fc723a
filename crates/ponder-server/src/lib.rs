//! ponder-server: `ponder serve`, an OpenAI-compatible gateway that runs a test-time
//! strategy for every request.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
//! `GET /health`, `GET /metrics` (Prometheus), and for other ponder instances using this one
//! as their upstream, `POST /apply-template` (prompt rendering, llama.cpp server's shape)
//! and `POST /v1/ponder/probe` (next-token log-probabilities for self-evaluation).
//!
//! The strategy and budget come from the model prefix (`sc-16:smollm2-135m`) or the body's
//! `ponder` object, else the server's defaults. Every ceiling (body size, budget, tokens per
//! sample, budget x tokens, the key's token budget) is checked before any generation; the
//! key is then charged what the backend computes, as it computes it, however the request
//! ends (`settle`).
//! Responses carry `usage` summed over every sample and a `ponder` field with the votes,
//! scores and the exact usage breakdown; streams send progress as SSE comments (or as
//! chunks with empty `choices`), then the answer as ordinary chunks, then usage.

mod app;
mod backend;
pub mod config;
mod error;
mod keys;
mod messages;
mod metrics;
mod observe;
mod probe;
mod request;
mod response;
mod run;
mod settle;
mod stream;
mod tool_defs;

pub use app::{router, serve, AppState};
pub use backend::Backend;
pub use config::ServerConfig;
pub use error::ApiError;
