//! What an HTTP backend is pointed at and how patient it is.

use serde::{Deserialize, Serialize};

use crate::Error;

/// One OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL including the API prefix, e.g. `http://127.0.0.1:8000/v1`.
    pub url: String,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Most requests in flight to this endpoint at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
}

fn default_concurrency() -> usize {
    16
}

impl EndpointConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), api_key: None, max_concurrency: default_concurrency() }
    }
}

/// Which endpoint [`Generator::sample`](ponder_core::Generator::sample) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `chat/completions` with the conversation's messages (the server applies its template).
    #[default]
    Chat,
    /// `completions` with the conversation's contents joined as one raw prompt (base models,
    /// or a prompt that is already rendered).
    Completions,
}

/// How step-wise sessions continue a partial solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepMode {
    /// Detected at start-up: `completions` when the server renders prompts for us
    /// (`/apply-template`), else `continue-final-message` on vLLM, else none.
    #[default]
    Auto,
    /// `completions` on the prompt rendered by the server's `/apply-template` plus the
    /// branch's text.
    Completions,
    /// `chat/completions` with the branch's text as a final assistant message and
    /// `continue_final_message: true` (vLLM).
    ContinueFinalMessage,
    /// No step-wise sessions: search strategies are refused.
    None,
}

/// An HTTP backend: endpoints serving one model, and the patience rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub endpoints: Vec<EndpointConfig>,
    /// Model name sent upstream; `None`: the first one the server lists.
    pub model: Option<String>,
    pub api: Api,
    pub step_mode: StepMode,
    /// Timeout of one attempt, milliseconds.
    pub timeout_ms: u64,
    /// Everything one call may take, retries and backoff included, milliseconds.
    pub deadline_ms: u64,
    /// Retries of an attempt that failed with 429, 5xx, a transport error or a broken body.
    pub retries: u32,
    /// First backoff, milliseconds; doubles per retry (with jitter).
    pub backoff_ms: u64,
    /// Use `n` when the server honours it; `false` always sends parallel requests.
    pub use_n: bool,
    /// Most samples in one request with `n`.
    pub max_n: usize,
    /// Timeout of the start-up capability probes, milliseconds.
    pub probe_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            model: None,
            api: Api::Chat,
            step_mode: StepMode::Auto,
            timeout_ms: 120_000,
            deadline_ms: 600_000,
            retries: 2,
            backoff_ms: 200,
            use_n: true,
            max_n: 16,
            probe_timeout_ms: 60_000,
        }
    }
}

impl HttpConfig {
    /// One endpoint with default rules.
    pub fn single(url: impl Into<String>) -> Self {
        Self { endpoints: vec![EndpointConfig::new(url)], ..Self::default() }
    }

    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.endpoints.is_empty() {
            return bad("no endpoints".into());
        }
        for e in &self.endpoints {
            if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                return bad(format!("endpoint URL {:?} must start with http:// or https://", e.url));
            }
            if e.max_concurrency == 0 {
                return bad(format!("endpoint {} has max_concurrency 0", e.url));
            }
        }
        if self.timeout_ms == 0 || self.deadline_ms == 0 {
            return bad("timeout_ms and deadline_ms must be positive".into());
        }
        if self.max_n == 0 {
            return bad("max_n must be at least 1".into());
        }
        Ok(())
    }
}
