//! What a request runs through once parsed: admission (the ceilings and the key's
//! worst-case token reservation, before any generation), then execution (the strategy on
//! the backend, within the request timeout, every usage through the request's meter).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use ponder_core::process::SelfEval;
use ponder_core::scorer::{MeanLogprob, OutcomeScorer};
use ponder_core::strategy::{self, Candidate, Ctx, Outcome, SearchConfig, StrategyError};
use ponder_core::{Generator, Problem, SampleRequest};
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::error::ApiError;
use crate::observe::{Observed, Progress};
use crate::request::{Kind, Request};
use crate::response::{extract, Ran, TokenLogprobs, EQUIVALENCE};
use crate::settle::{Meter, Metered};

/// Checks the ceilings and reserves the key's worst case: nothing is generated before this.
pub(crate) fn admit(st: &Arc<AppState>, req: &Request, key: Option<&str>) -> Result<Arc<Meter>, ApiError> {
    let samples = req.samples() as u64;
    let worst = samples.saturating_mul(u64::from(req.sampling.max_tokens));
    let ceiling = req.max_total_tokens.map_or(st.config.limits.max_total_tokens, |c| c.min(st.config.limits.max_total_tokens));
    if worst > ceiling {
        return Err(ApiError::invalid(format!(
            "budget {samples} x max_tokens {} = {worst} tokens is above the token ceiling of {ceiling}",
            req.sampling.max_tokens
        ))
        .param(if req.max_total_tokens.is_some() { "ponder.max_total_tokens" } else { "max_tokens" })
        .code("token_ceiling_exceeded"));
    }
    let prompt = match req.kind {
        Kind::Chat => st.backend.prompt_tokens(&req.messages, req.tools.as_ref()).map_err(|e| ApiError::from_gen(&e, false))?,
        Kind::Completion => req.messages.first().and_then(|m| st.backend.raw_tokens(&m.content)),
    };
    let reserve = samples.saturating_mul(u64::from(req.sampling.max_tokens) + prompt.unwrap_or(0) as u64);
    Ok(Meter::new(st.keys.reserve(key, reserve)?, st.metrics.clone()))
}

pub(crate) fn known_scorer(st: &AppState, name: &str) -> Result<(), ApiError> {
    match name {
        "mean-logprob" | "self-eval" => Ok(()),
        "reward" if st.reward.is_some() => Ok(()),
        "reward" => Err(ApiError::invalid("scorer reward needs a [reward] model in the server config").param("ponder.scorer")),
        other => Err(ApiError::invalid(format!("unknown scorer {other:?} (known: mean-logprob, self-eval, reward)")).param("ponder.scorer")),
    }
}

/// Runs the request within the server's request timeout.
pub(crate) async fn run(
    st: Arc<AppState>,
    req: Arc<Request>,
    meter: Arc<Meter>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<Ran, ApiError> {
    let timeout = Duration::from_secs(st.config.limits.request_timeout_s);
    match tokio::time::timeout(timeout, run_inner(st, req, meter, progress)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            format!("the request did not finish within {} s", timeout.as_secs()),
        )
        .code("timeout")),
    }
}

/// Runs the request's strategy; `single` (with any `n`) draws plain samples, keeping their
/// token logprobs. Everything the backend reports goes through `meter`.
async fn run_inner(
    st: Arc<AppState>,
    req: Arc<Request>,
    meter: Arc<Meter>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<Ran, ApiError> {
    let upstream = st.backend.is_upstream();
    let inner = match req.kind {
        Kind::Chat => st.backend.chat(req.tools.as_ref(), req.tool_choice.as_ref()),
        Kind::Completion => st.backend.raw().map_err(|e| ApiError::from_gen(&e, upstream))?,
    };
    let mut generator: Arc<dyn Generator> = Arc::new(Metered { inner, meter });
    if let Some(tx) = progress {
        generator = Arc::new(Observed { inner: generator, tx });
    }
    let ctx_extract = extract;
    let equivalence = EQUIVALENCE;
    if req.strategy == "single" {
        let sreq = SampleRequest { messages: req.messages.clone(), n: req.n, params: req.sampling.clone(), first_index: 0 };
        let got = generator.sample(sreq).await.map_err(|e| ApiError::from_gen(&e, upstream))?;
        let got = got.collect().await.map_err(|e| ApiError::from_gen(&e, upstream))?;
        if let Some((i, e)) = got.failures.first() {
            return Err(ApiError::from_gen(e, upstream).code(format!("sample_{i}_failed")));
        }
        let ctx = Ctx { generator: generator.as_ref(), equivalence: &equivalence, extract: ctx_extract, scorer: None, process: None, verifier: None };
        let logprobs = got
            .samples
            .iter()
            .map(|s| TokenLogprobs { logprobs: s.token_logprobs.clone(), bytes: s.token_bytes.clone() })
            .collect();
        let candidates: Vec<Candidate> = got.samples.into_iter().map(|s| strategy::candidate(s, &ctx)).collect();
        if candidates.is_empty() {
            return Err(ApiError::from_strategy(&StrategyError::InsufficientCandidates(req.n), upstream));
        }
        let outcome = Outcome {
            strategy: "single".into(),
            answer: candidates.first().and_then(|c| c.answer.clone()),
            chosen: Some(0),
            candidates,
            votes: Vec::new(),
            usage: got.usage,
            n_failed: 0,
            stopped_early: false,
            abstained: false,
        };
        return Ok((outcome, logprobs));
    }
    let strategy = strategy::build_with(&req.strategy, req.budget, req.sampling.clone(), &SearchConfig::default())
        .map_err(|e| ApiError::from_strategy(&e, upstream))?;
    let mean_logprob = MeanLogprob;
    let scorer: &dyn OutcomeScorer = match (req.scorer.as_str(), &st.reward) {
        ("reward", Some(r)) => r,
        _ => &mean_logprob,
    };
    let self_eval = SelfEval::default();
    let ctx = Ctx {
        generator: generator.as_ref(),
        equivalence: &equivalence,
        extract: ctx_extract,
        scorer: Some(scorer),
        // Always offered: on a backend without step-wise sessions a search strategy fails
        // at `open` with an error naming the missing capability.
        process: Some(&self_eval),
        verifier: None,
    };
    let problem = Problem { id: "request".into(), question: req.question(), gold: String::new(), level: None, steps: Vec::new() };
    strategy
        .solve(&problem, &req.messages, &ctx)
        .await
        .map(|o| (o, Vec::new()))
        .map_err(|e: StrategyError| ApiError::from_strategy(&e, upstream))
}
