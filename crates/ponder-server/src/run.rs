//! What a request runs through once parsed: admission (the ceilings and the key's
//! worst-case token reservation, before any generation), then execution (the strategy on
//! the backend, within the request timeout, every usage through the request's meter).

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use axum::http::StatusCode;
use ponder_core::scorer::OutcomeScorer;
use ponder_core::scorer_spec::{ScorerEnv, ScorerModels, ScorerSpec, ScorerSpecError, Scorers};
use ponder_core::strategy::Ctx;
use ponder_core::{
    GenError, GenEvent, Generator, GeneratorInfo, Message, Problem, SampleRequest,
    SampleStream, SamplingParams, StepSession,
};
use ponder_http::RewardScorer;
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

/// The model-backed scorers the gateway has: its reward server, if configured.
struct GatewayModels<'a>(Option<&'a RewardScorer>);

impl ScorerModels for GatewayModels<'_> {
    fn reward(&self) -> Result<Arc<dyn OutcomeScorer>, String> {
        match self.0 {
            Some(r) => Ok(Arc::new(r.clone())),
            None => Err("needs a reward model server: `[reward]` in the `ponder serve` config".into()),
        }
    }
}

/// The request's scorers through ponder-core's builder (the CLI's too); self-evaluation
/// judges whole candidates for best-of-N through `generator`, so that work is metered.
fn scorers(st: &AppState, req: &Request, generator: Arc<dyn Generator>) -> Result<Scorers, ApiError> {
    let messages = req.messages.clone();
    let env = ScorerEnv { checker: None, generator, prompt: Arc::new(move |_| messages.clone()), self_eval_question: None };
    let models = GatewayModels(st.reward.as_ref());
    let bad = |e: ScorerSpecError| ApiError::invalid(e.to_string()).param("ponder.scorer");
    let mut scorers = req.scorer.build(&env, &models).map_err(bad)?;
    // Searches judge steps with self-evaluation unless the request names a process scorer
    // (the gateway's default scorer, mean-logprob, judges only whole candidates).
    if scorers.process.is_none() && req.strategy.needs().process_scorer {
        scorers.process = ScorerSpec::SelfEval.build(&env, &models).map_err(bad)?.process;
    }
    Ok(scorers)
}

/// Fails when the request's scorer cannot be built here (before any generation).
pub(crate) fn check_scorer(st: &AppState, req: &Request) -> Result<(), ApiError> {
    let generator = st.backend.chat(req.tools.as_ref(), req.tool_choice.as_ref(), req.upstream);
    scorers(st, req, generator).map(drop)
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

/// Runs the request's strategy, built from its spec. Everything the backend reports goes
/// through `meter`; with `logprobs` the samples' token logprobs are kept on the way.
async fn run_inner(
    st: Arc<AppState>,
    req: Arc<Request>,
    meter: Arc<Meter>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<Ran, ApiError> {
    let upstream = st.backend.is_upstream();
    let inner = match req.kind {
        Kind::Chat => st.backend.chat(req.tools.as_ref(), req.tool_choice.as_ref(), req.upstream),
        Kind::Completion => st.backend.raw(req.upstream).map_err(|e| ApiError::from_gen(&e, upstream))?,
    };
    let mut generator: Arc<dyn Generator> = Arc::new(Metered { inner, meter });
    if let Some(tx) = progress {
        generator = Arc::new(Observed { inner: generator, tx });
    }
    let kept = Arc::new(Mutex::new(BTreeMap::new()));
    if req.logprobs {
        generator = Arc::new(KeepLogprobs { inner: generator, kept: kept.clone() });
    }
    let thinking = req
        .thinking
        .resolve(st.backend.thinking_markers())
        .map_err(|e| ApiError::invalid(e).param("ponder.think_markers"))?;
    let markers = thinking.as_ref().map(|t| t.markers.clone());
    let sampling = SamplingParams {
        thinking,
        ..req.sampling.clone()
    };
    let strategy = req
        .strategy
        .build(sampling)
        .map_err(|e| ApiError::from_strategy(&e, upstream))?;
    let scorers = scorers(&st, &req, generator.clone())?;
    let equivalence = EQUIVALENCE;
    let by_pattern = |text: &str| req.answer_pattern.as_ref().and_then(|p| p.extract(text));
    let extract: &(dyn Fn(&str) -> Option<String> + Sync) = if req.answer_pattern.is_some() { &by_pattern } else { &extract };
    let ctx = Ctx {
        generator: generator.as_ref(),
        equivalence: &equivalence,
        extract,
        scorer: scorers.outcome.as_deref(),
        // On a backend without step-wise sessions a search strategy fails at `open` with an
        // error naming the missing capability.
        process: scorers.process.as_deref(),
        verifier: None,
        thinking: markers.as_ref(),
    };
    let problem = Problem { id: "request".into(), question: req.question(), gold: String::new(), level: None, steps: Vec::new() };
    let outcome = strategy.solve(&problem, &req.messages, &ctx).await.map_err(|e| ApiError::from_strategy(&e, upstream))?;
    // Every choice is a sample of its own: one that failed fails the request.
    if req.n > 1 && outcome.n_failed > 0 {
        return Err(ApiError::internal(format!("{} of {} samples failed", outcome.n_failed, req.n)).code("sample_failed"));
    }
    let kept = kept.lock().map(|k| k.clone()).unwrap_or_default();
    let logprobs = outcome.candidates.iter().filter_map(|c| kept.get(&c.index).cloned()).collect();
    Ok((outcome, logprobs))
}

/// Keeps each sample's token logprobs by sample index (a strategy's candidates do not).
struct KeepLogprobs {
    inner: Arc<dyn Generator>,
    kept: Arc<Mutex<BTreeMap<usize, TokenLogprobs>>>,
}

#[async_trait]
impl Generator for KeepLogprobs {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        let inner = self.inner.sample(req).await?;
        // Shared with the inner stream, so a stop reaches the backend at once.
        let outer = inner.token();
        let state = (Some(inner), outer.clone(), self.kept.clone());
        let events = futures::stream::unfold(state, |(inner, outer, kept)| async move {
            let mut inner = inner?;
            if outer.is_cancelled() {
                inner.cancel();
            }
            match inner.next().await {
                Some(Ok(s)) => {
                    if let Ok(mut k) = kept.lock() {
                        k.insert(s.index, TokenLogprobs { logprobs: s.token_logprobs.clone(), bytes: s.token_bytes.clone(), top: s.top_logprobs.clone() });
                    }
                    Some((GenEvent::Sample(s), (Some(inner), outer, kept)))
                }
                Some(Err((index, error))) => Some((GenEvent::Failed { index, error }, (Some(inner), outer, kept))),
                None => inner.finish().await.ok().map(|u| (GenEvent::Done(u), (None, outer, kept))),
            }
        });
        Ok(SampleStream::new(events, outer))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        self.inner.open(messages, seed).await
    }
}
