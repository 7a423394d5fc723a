//! The routes and what each request goes through: key, body size, parsing, ceilings, the
//! key's token reservation (all before any generation), then the strategy, then the answer
//! as one JSON body or as a stream of progress events and chunks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ponder_core::process::SelfEval;
use ponder_core::scorer::{MeanLogprob, OutcomeScorer};
use ponder_core::strategy::{self, Candidate, Ctx, Outcome, SearchConfig, StrategyError};
use ponder_core::{Generator, Problem, SampleRequest};
use ponder_http::RewardScorer;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::observe::{Observed, Progress};
use crate::request::{self, Kind, Request};
use crate::response::{extract, response_body, GatewayEquivalence, Ran, TokenLogprobs};
use crate::settle::{Meter, Metered};
use crate::stream::stream;

/// Everything the handlers share.
pub struct AppState {
    pub backend: Backend,
    /// The model id clients name.
    pub model: String,
    pub config: ServerConfig,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
    pub reward: Option<RewardScorer>,
}

impl AppState {
    pub fn new(backend: Backend, model: String, config: ServerConfig) -> Result<AppState, String> {
        config.validate()?;
        let reward = match &config.reward {
            Some(r) => {
                let mut s = RewardScorer::new(&r.url, &r.model, r.api, Duration::from_secs(r.timeout_s))?;
                s.api_key = r.api_key.clone();
                Some(s)
            }
            None => None,
        };
        Ok(AppState { keys: Arc::new(Keys::new(&config.keys)), backend, model, config, metrics: Arc::default(), reward })
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/v1/ponder/probe", post(crate::probe::probe))
        .route("/apply-template", post(apply_template))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        // After the routes: it applies to those already added.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // Bodies are read with our own limit, so that oversize is an OpenAI-style 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", "Unknown endpoint.").code("unknown_url")
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", format!("method {method} is not allowed on {}", uri.path()))
        .code("method_not_allowed")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn new_id(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{:x}{:06x}", now() ^ u64::from(nanos), COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff)
}

pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", format!("request body is larger than {limit} bytes"))
            .code("request_too_large")
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = format!("{e:#}");
        if text.contains("length limit") || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit")) {
            too_large()
        } else {
            ApiError::invalid(format!("could not read the request body: {text}"))
        }
    })
}

async fn chat(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    timed(&st, "chat", handle(&st, Kind::Chat, headers, body)).await
}

async fn completions(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    timed(&st, "completions", handle(&st, Kind::Completion, headers, body)).await
}

async fn timed(st: &AppState, endpoint: &str, work: impl std::future::Future<Output = Result<Response, ApiError>>) -> Response {
    let t = Instant::now();
    let _in_flight = st.metrics.start();
    let resp = work.await.unwrap_or_else(IntoResponse::into_response);
    st.metrics.request(endpoint, resp.status().as_u16(), t.elapsed().as_secs_f64());
    resp
}

async fn models(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    st.keys.authenticate(&headers)?;
    let info = st.backend.info();
    Ok(Json(json!({
        "object": "list",
        "data": [{
            "id": st.model, "object": "model", "created": 0, "owned_by": "ponder",
            "max_model_len": info.context_len,
            "ponder": {
                "backend": info.backend, "strategies": strategy::STRATEGIES, "prefix": "STRATEGY[-BUDGET]:MODEL",
                "step_sessions": st.backend.step_sessions(),
            },
        }],
    })))
}

async fn health(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "server": "ponder", "model": st.model, "backend": st.backend.info().backend }))
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render()).into_response()
}

/// `POST /apply-template {messages}` → `{prompt}` (llama.cpp server's shape): lets an HTTP
/// backend render prompts for step-wise continuation through `completions`.
async fn apply_template(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    st.keys.authenticate(&headers)?;
    let bytes = read_body(&headers, body, st.config.limits.max_body_bytes).await?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")).code("invalid_json"))?;
    let messages = request::messages(v.get("messages"), st.config.limits.max_messages)?;
    let prompt = st.backend.render(&messages).await.map_err(|e| ApiError::from_gen(&e, st.backend.is_upstream()))?;
    Ok(Json(json!({ "prompt": prompt })))
}

/// Checks the ceilings and reserves the key's worst case: nothing is generated before this.
fn admit(st: &Arc<AppState>, req: &Request, key: Option<&str>) -> Result<Arc<Meter>, ApiError> {
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

fn known_scorer(st: &AppState, name: &str) -> Result<(), ApiError> {
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
    let equivalence = GatewayEquivalence;
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

async fn handle(st: &Arc<AppState>, kind: Kind, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let key = st.keys.authenticate(&headers)?;
    let bytes = read_body(&headers, body, st.config.limits.max_body_bytes).await?;
    let req = request::parse(kind, &bytes, &st.model, &st.config)?;
    known_scorer(st, &req.scorer)?;
    // Unknown strategies and bad budgets fail here, before any generation.
    strategy::build_with(&req.strategy, req.budget, req.sampling.clone(), &SearchConfig::default())
        .map_err(|e| ApiError::from_strategy(&e, false))?;
    if req.strategy == "verify-resample" {
        return Err(ApiError::invalid("strategy verify-resample needs a verifier, which the gateway does not have")
            .param("ponder.strategy")
            .code("unsupported_strategy"));
    }
    let meter = admit(st, &req, key.as_deref())?;
    let id = new_id(if kind == Kind::Chat { "chatcmpl" } else { "cmpl" });
    let req = Arc::new(req);
    if req.stream {
        return stream(st.clone(), req, id, meter).await;
    }
    let started = Instant::now();
    let (outcome, logprobs) = run(st.clone(), req.clone(), meter.clone(), None).await?;
    let strategy_ms = started.elapsed().as_secs_f64() * 1000.0;
    meter.reconcile(&outcome.usage);
    st.metrics.outcome(outcome.candidates.len(), outcome.n_failed, outcome.stopped_early);
    let mut body = response_body(&outcome, &req, &id, &logprobs);
    // Time inside the strategy; a client's latency minus this is what the gateway added.
    body["ponder"]["timing"] = json!({ "strategy_ms": strategy_ms });
    Ok(Json(body).into_response())
}
