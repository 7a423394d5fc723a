//! The generator contract: what every backend (the llama.cpp engine, an OpenAI-compatible
//! server) offers to strategies.
//!
//! Two forms. [`Generator::sample`] draws N complete samples of one conversation and
//! streams each as it finishes, so a strategy can stop early and cancel the rest.
//! [`Generator::open`] starts a step-wise [`StepSession`] for search: branches are extended
//! one step at a time, forked, rolled back and released. Every call reports [`Usage`].

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

pub use crate::cancel::CancelToken;
use crate::reasoning::Thinking;
use crate::{Message, Usage};

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax); otherwise logits are divided by it.
    pub temperature: f32,
    /// Nucleus sampling mass; 1.0 turns it off.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 turns it off.
    pub top_k: u32,
    /// Drop tokens below `min_p` times the top token's probability; 0 turns it off.
    pub min_p: f32,
    /// Base seed; sample `i` (or branch `i`) uses [`derive_seed`]`(seed, i)`.
    pub seed: u64,
    /// Most tokens to generate per sample (per step in step-wise calls: see [`StepParams`]).
    pub max_tokens: u32,
    /// Generation stops when the text ends with any of these (the stop text is removed).
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens (benchmarks that need fixed lengths).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Report [`TokenStats`] for every generated token over the `k` most likely
    /// candidates (DeepConf uses 20); 0 turns them off, and they cost nothing then.
    #[serde(default)]
    pub token_stats_k: u32,
    /// End a sample as soon as its group confidence falls below a threshold
    /// (DeepConf's online termination); needs `token_stats_k > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_stop: Option<ConfidenceStop>,
    /// Report the `k` most likely tokens at every generated position, with their
    /// untempered log-probabilities (OpenAI's `top_logprobs`); 0 turns them off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub top_logprobs: u32,
    /// Reasoning spans: count the thinking tokens between these markers (each sample's
    /// `n_thinking`, `Usage::thinking`) and, with a budget, end a span at that many tokens
    /// by forcing the close marker and an answer prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
}

fn is_zero(k: &u32) -> bool {
    *k == 0
}

/// One of the most likely tokens at a generated position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// The token's bytes (a token may end inside a UTF-8 character).
    pub bytes: Vec<u8>,
    /// Its log-probability under the untempered distribution.
    pub logprob: f32,
}

/// DeepConf's early stop (Fu et al., 2025): a sample ends with
/// [`FinishReason::LowConfidence`] once the mean token confidence of its last `window`
/// tokens is below `threshold`. Its tokens still count as generated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceStop {
    pub window: u32,
    pub threshold: f32,
}

/// What the model's distribution looked like when a token was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    /// DeepConf's token confidence: minus the mean log-probability of the `k` most likely
    /// tokens (untempered). High when the distribution is peaked.
    pub confidence: f32,
    /// Entropy of the untempered next-token distribution, in nats.
    pub entropy: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
            ignore_eos: false,
            token_stats_k: 0,
            confidence_stop: None,
            top_logprobs: 0,
            thinking: None,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// Rejects values no backend can honour.
    pub fn validate(&self) -> Result<(), GenError> {
        let bad = |m: String| Err(GenError::InvalidRequest(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!("temperature must be a finite number >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1, got 0".into());
        }
        if self.token_stats_k > MAX_TOKEN_STATS_K {
            return bad(format!("token_stats_k must be at most {MAX_TOKEN_STATS_K}, got {}", self.token_stats_k));
        }
        if self.top_logprobs > MAX_TOKEN_STATS_K {
            return bad(format!("top_logprobs must be at most {MAX_TOKEN_STATS_K}, got {}", self.top_logprobs));
        }
        if let Some(c) = self.confidence_stop {
            if self.token_stats_k == 0 {
                return bad("confidence_stop needs token_stats_k > 0 (the confidence it reads)".into());
            }
            if c.window == 0 || !c.threshold.is_finite() {
                return bad(format!(
                    "confidence_stop needs window >= 1 and a finite threshold, got window {} threshold {}",
                    c.window, c.threshold
                ));
            }
        }
        if let Some(t) = &self.thinking {
            t.validate().map_err(GenError::InvalidRequest)?;
        }
        Ok(())
    }
}

/// Most candidates [`TokenStats`] may average over, and most `top_logprobs` (OpenAI allows 20).
pub const MAX_TOKEN_STATS_K: u32 = 20;

/// The seed of sample or branch `index` under base seed `seed` (splitmix64), so results
/// do not depend on the order in which a backend schedules samples.
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Why a sample or a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model emitted an end-of-generation token.
    Eos,
    /// A stop string matched (it is not part of the text).
    Stop(String),
    /// A step delimiter ended this step; the solution may go on.
    StepEnd,
    /// `max_tokens` reached.
    Length,
    /// The sequence reached the end of the context window.
    ContextFull,
    /// [`ConfidenceStop`] ended it: its recent tokens were not confident enough.
    LowConfidence,
    /// Its caller stopped it alone ([`SampleStream::stop`]); the text is what it had
    /// generated by then.
    Stopped,
    /// Its stream was cancelled while it ran ([`SampleStream::cancel`]); the text is what it
    /// had generated by then.
    Cancelled,
}

impl FinishReason {
    /// It ended before its own end (stopped, cancelled, or by a [`ConfidenceStop`]): its
    /// tokens count in [`Usage::dropped`].
    pub fn is_dropped(&self) -> bool {
        matches!(self, FinishReason::LowConfidence | FinishReason::Stopped | FinishReason::Cancelled)
    }
}

/// One complete sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Position in the request, `0..n`; fixes its seed.
    pub index: usize,
    pub text: String,
    pub n_tokens: usize,
    /// Log-probability of each chosen token under the model's untempered distribution.
    pub token_logprobs: Vec<f32>,
    /// Bytes of each chosen token, aligned with `token_logprobs` (an end-of-generation
    /// token has none); empty when the backend does not report tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_bytes: Vec<Vec<u8>>,
    /// Per generated token, when asked for with `token_stats_k` (else empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_stats: Vec<TokenStats>,
    /// Per generated token, the `top_logprobs` most likely tokens, most likely first (else empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<Vec<TopLogprob>>,
    pub finish: FinishReason,
    /// Generated tokens inside reasoning spans, when the request named markers
    /// (`SamplingParams::thinking`) and the backend could count them; forced tokens are
    /// not generated and never count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_thinking: Option<usize>,
}

impl Sample {
    /// Mean chosen-token log-probability; `None` for an empty sample or a backend without logprobs.
    pub fn mean_logprob(&self) -> Option<f64> {
        mean(&self.token_logprobs)
    }
}

pub(crate) fn mean(xs: &[f32]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64)
}

/// A request for `n` samples of one conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRequest {
    pub messages: Vec<Message>,
    pub n: usize,
    pub params: SamplingParams,
    /// Index of the first sample; later rounds of one strategy continue the numbering so
    /// that their seeds differ from earlier rounds'.
    #[serde(default)]
    pub first_index: usize,
}

/// Errors of the generator contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("prompt is {prompt_tokens} tokens but the context holds {context} (with room for at least one generated token)")]
    PromptTooLong { prompt_tokens: usize, context: usize },
    #[error("unknown branch {0}")]
    UnknownBranch(BranchId),
    #[error("backend does not support {0}")]
    Unsupported(String),
    #[error("backend failed: {0}")]
    Backend(String),
}

/// What a backend sends on a sample stream.
#[derive(Debug, Clone)]
pub enum GenEvent {
    Sample(Sample),
    /// One sample failed; the others go on (partial-failure rule).
    Failed { index: usize, error: GenError },
    /// The last event: total usage, counting cancelled samples' tokens too (or, where a
    /// backend cannot learn them, counting those calls in `Usage::unreported`).
    Done(Usage),
}

/// Samples as they finish. Call [`SampleStream::cancel`] to stop the rest, then
/// [`SampleStream::finish`] for the usage; [`SampleStream::stop`] ends one sample alone.
pub struct SampleStream {
    events: Pin<Box<dyn Stream<Item = GenEvent> + Send>>,
    cancel: CancelToken,
    usage: Option<Usage>,
}

impl SampleStream {
    pub fn new(events: impl Stream<Item = GenEvent> + Send + 'static, cancel: CancelToken) -> Self {
        Self { events: Box::pin(events), cancel, usage: None }
    }

    /// The next finished sample (or failure); `None` once all are done or cancelled.
    pub async fn next(&mut self) -> Option<Result<Sample, (usize, GenError)>> {
        if self.usage.is_some() {
            return None;
        }
        match self.events.next().await {
            Some(GenEvent::Sample(s)) => Some(Ok(s)),
            Some(GenEvent::Failed { index, error }) => Some(Err((index, error))),
            Some(GenEvent::Done(u)) => {
                self.usage = Some(u);
                None
            }
            None => None,
        }
    }

    /// Asks the backend to stop the samples still running. A backend that holds their
    /// partial text (the engine) still sends them, as `FinishReason::Cancelled`; one that
    /// does not (an aborted HTTP request) sends nothing and counts the call in
    /// `Usage::unreported`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Asks the backend to end sample `index` alone; the others go on. On the engine its
    /// KV cells are freed before the next decode step, and it arrives as a sample with
    /// `FinishReason::Stopped` and what it had generated, its tokens counted in
    /// `Usage::dropped`. An HTTP backend aborts the sample's request when the sample is
    /// the request's only one (nothing arrives; the call counts in `unreported`); a sample
    /// sharing an `n > 1` request with samples still wanted cannot be cut out of it, so the
    /// server finishes it and it arrives as generated. An index that has already finished,
    /// or is not in the request, is ignored.
    pub fn stop(&self, index: usize) {
        self.cancel.stop(index);
    }

    /// The token that cancels or stops this stream's samples, for wrappers that hand the
    /// stream on: the outer stream shares it, so stops reach the backend at once.
    pub fn token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Drains what is left and returns the total usage.
    pub async fn finish(mut self) -> Result<Usage, GenError> {
        while self.next().await.is_some() {}
        self.usage.ok_or_else(|| GenError::Backend("sample stream ended without reporting usage".into()))
    }

    /// Every sample, in index order, with the usage; failed samples are left out and
    /// returned separately.
    pub async fn collect(mut self) -> Result<Collected, GenError> {
        let mut samples = Vec::new();
        let mut failures = Vec::new();
        while let Some(r) = self.next().await {
            match r {
                Ok(s) => samples.push(s),
                Err(f) => failures.push(f),
            }
        }
        samples.sort_by_key(|s| s.index);
        let usage = self.finish().await?;
        Ok(Collected { samples, failures, usage })
    }
}

/// All samples of a request.
#[derive(Debug, Clone)]
pub struct Collected {
    pub samples: Vec<Sample>,
    pub failures: Vec<(usize, GenError)>,
    pub usage: Usage,
}

/// Identifies a branch within a [`StepSession`].
pub type BranchId = u64;

/// Parameters of one step-wise extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepParams {
    /// Sampling; `max_tokens` is ignored in favour of `max_step_tokens`; stop strings end
    /// the whole solution.
    pub sampling: SamplingParams,
    /// Ends a step (kept in the step's text); `None` means a step is the whole rest.
    pub delimiter: Option<String>,
    /// Most tokens in one step; a step cut here ends with `StepEnd` (the branch may go on).
    pub max_step_tokens: u32,
    /// Most tokens a branch may hold in total (prompt excluded); reaching it ends the branch.
    pub max_total_tokens: u32,
}

impl Default for StepParams {
    fn default() -> Self {
        Self { sampling: SamplingParams::default(), delimiter: Some("\n\n".into()), max_step_tokens: 128, max_total_tokens: 512 }
    }
}

/// What one step of one branch produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub branch: BranchId,
    pub text: String,
    pub n_tokens: usize,
    pub token_logprobs: Vec<f32>,
    /// Bytes of each chosen token, as in [`Sample::token_bytes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_bytes: Vec<Vec<u8>>,
    /// As in [`Sample::token_stats`], when the step's sampling asks for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_stats: Vec<TokenStats>,
    /// As in [`Sample::top_logprobs`], when the step's sampling asks for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<Vec<TopLogprob>>,
    /// `StepEnd` means the branch may be extended again; anything else ends it.
    pub finish: FinishReason,
}

impl Step {
    pub fn is_final(&self) -> bool {
        self.finish != FinishReason::StepEnd
    }
}

/// Step-wise generation over branches of one prompt, for search strategies.
#[async_trait]
pub trait StepSession: Send {
    /// The branch holding just the prompt.
    fn root(&self) -> BranchId;
    /// `n` new branches continuing `branch` exactly where it stands (KV shared on the engine).
    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError>;
    /// Extends each branch by one step, all in one batch; results in the order given.
    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError>;
    /// Keeps only the first `n_tokens` generated tokens of `branch`.
    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError>;
    /// Frees branches at once; their ids become unknown.
    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError>;
    /// Usage so far (probes excluded: they report their own).
    fn usage(&self) -> Usage;
    /// Appends `text` to a branch as if it had been generated (forced decoding), e.g. a
    /// complete candidate to be judged; its tokens are computed with the branch's next
    /// extend or probe and counted as prompt work.
    async fn append(&mut self, branch: BranchId, text: &str) -> Result<(), GenError> {
        let _ = (branch, text);
        Err(GenError::Unsupported("appending text to a branch on this backend".into()))
    }
    /// For each branch, the log-probabilities of the first token of each of `candidates`
    /// as the next token after `suffix` is appended to the branch. The branches themselves
    /// are left unchanged. Self-evaluation uses it ("Is this step correct? Yes/No").
    /// On the engine each probe forks the branch (KV shared) and computes only `suffix`.
    async fn probe(
        &mut self,
        branches: &[BranchId],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        let _ = (branches, suffix, candidates);
        Err(GenError::Unsupported("next-token probes (self-evaluation) on this backend".into()))
    }
}

/// Facts about a backend that strategies and reports need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub backend: String,
    pub model: String,
    /// Tokens per sequence.
    pub context_len: usize,
    /// Model parameters, for FLOPs estimates; 0 when unknown.
    pub n_params: u64,
}

/// A backend.
#[async_trait]
pub trait Generator: Send + Sync {
    fn info(&self) -> GeneratorInfo;
    /// Starts `req.n` samples; request-level problems (bad parameters, a prompt longer
    /// than the context) are reported here, before any generation.
    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError>;
    /// Opens a step-wise session on a conversation; the root branch is seeded with `seed`.
    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError>;
}
