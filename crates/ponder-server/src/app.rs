//! The routes and what each request goes through: key, body size and parsing here, then
//! admission and the strategy (`run.rs`), then the answer as one JSON body (`response.rs`)
//! or as a stream of progress events and chunks (`stream.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ponder_core::strategy::StrategySpec;
use ponder_http::RewardScorer;
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::request::{self, Kind};
use crate::response::response_body;
use crate::run::{admit, check_scorer, run};
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
                "backend": info.backend, "strategies": StrategySpec::names(), "prefix": "STRATEGY[-BUDGET]:MODEL",
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

/// The request header that picks an upstream server, when `allow_upstream_header` is set.
pub const UPSTREAM_HEADER: &str = "x-ponder-upstream";

async fn handle(st: &Arc<AppState>, kind: Kind, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let key = st.keys.authenticate(&headers)?;
    let bytes = read_body(&headers, body, st.config.limits.max_body_bytes).await?;
    let mut req = request::parse(kind, &bytes, &st.model, &st.config)?;
    if st.config.allow_upstream_header {
        if let Some(v) = headers.get(UPSTREAM_HEADER) {
            let name = v.to_str().map_err(|_| ApiError::invalid(format!("{UPSTREAM_HEADER} is not text")).param(UPSTREAM_HEADER))?;
            req.upstream = Some(st.backend.upstream_named(name).map_err(|e| ApiError::invalid(e).param(UPSTREAM_HEADER))?);
        }
    }
    // The spec was checked as the body was parsed; what it needs is checked here, before
    // any generation.
    check_scorer(st, &req)?;
    if req.strategy.needs().verifier {
        let name = req.strategy.name();
        return Err(ApiError::invalid(format!(
            "strategy {name} needs a verifier (tests a candidate must pass), and a request cannot give the gateway one"
        ))
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
