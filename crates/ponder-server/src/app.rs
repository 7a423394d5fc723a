//! The routes and what each request goes through: key, body size, parsing, ceilings, the
//! key's token reservation (all before any generation), then the strategy, then the answer
//! as one JSON body or as a stream of progress events and chunks.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ponder_core::answer::{extract_answer, Equivalence, NumericEquivalence};
use ponder_core::process::SelfEval;
use ponder_core::scorer::{MeanLogprob, OutcomeScorer};
use ponder_core::strategy::{self, Candidate, Ctx, Outcome, SearchConfig, StrategyError};
use ponder_core::{FinishReason, Problem, SampleRequest, ToolCall, Usage};
use ponder_http::{tools, RewardScorer};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::observe::{Observed, Progress};
use crate::request::{self, Kind, ProgressMode, Request};

/// Everything the handlers share.
pub struct AppState {
    pub backend: Backend,
    /// The model id clients name.
    pub model: String,
    pub config: ServerConfig,
    pub keys: Arc<Keys>,
    pub metrics: Metrics,
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
        Ok(AppState { keys: Arc::new(Keys::new(&config.keys)), backend, model, config, metrics: Metrics::default(), reward })
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/v1/ponder/probe", post(probe))
        .route("/apply-template", post(apply_template))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
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

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn new_id(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{:x}{:06x}", now() ^ u64::from(nanos), COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff)
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
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

/// `POST /v1/ponder/probe {prompts, suffix, candidates}`: for each prompt, the
/// log-probabilities of each candidate's first token after `suffix` (self-evaluation over HTTP).
async fn probe(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    st.keys.authenticate(&headers)?;
    let bytes = read_body(&headers, body, st.config.limits.max_body_bytes).await?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")).code("invalid_json"))?;
    let strings = |key: &str| -> Result<Vec<String>, ApiError> {
        v.get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| ApiError::invalid(format!("{key} must be an array of strings")).param(key))
    };
    let (prompts, candidates) = (strings("prompts")?, strings("candidates")?);
    let suffix = v.get("suffix").and_then(Value::as_str).unwrap_or("");
    if prompts.is_empty() || prompts.len() > st.config.limits.max_budget * 4 || candidates.is_empty() || candidates.len() > 16 {
        return Err(ApiError::invalid("1..=4*max_budget prompts and 1..=16 candidates"));
    }
    let (lps, usage) =
        st.backend.probe(&prompts, suffix, &candidates).await.map_err(|e| ApiError::from_gen(&e, st.backend.is_upstream()))?;
    let lps: Vec<Vec<Value>> = lps.iter().map(|r| r.iter().map(|x| if x.is_finite() { json!(x) } else { json!(-1e30) }).collect()).collect();
    Ok(Json(json!({ "logprobs": lps, "usage": openai_usage(&usage), "ponder": { "usage": usage } })))
}

/// Answers are numbers (the v1 rules) unless a candidate calls tools: then its answer is
/// `tool:NAMES` and strategies vote on the tool name first.
fn extract(text: &str) -> Option<String> {
    let (_, calls) = tools::parse(text);
    if calls.is_empty() {
        extract_answer(text)
    } else {
        Some(format!("tool:{}", calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")))
    }
}

struct GatewayEquivalence;

impl Equivalence for GatewayEquivalence {
    fn key(&self, answer: &str) -> String {
        if answer.starts_with("tool:") {
            answer.to_string()
        } else {
            NumericEquivalence.key(answer)
        }
    }
}

fn openai_usage(u: &Usage) -> Value {
    let prompt = u.prompt_computed + u.prompt_reused;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.completion,
        "total_tokens": prompt + u.completion,
        "prompt_tokens_details": { "cached_tokens": u.prompt_reused },
    })
}

/// Checks the ceilings and reserves the key's worst case: nothing is generated before this.
fn admit(st: &Arc<AppState>, req: &Request, key: Option<&str>) -> Result<crate::keys::Reservation, ApiError> {
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
        Kind::Chat => st.backend.prompt_tokens(&req.messages, req.tools.as_ref()),
        Kind::Completion => Ok(None),
    }
    .map_err(|e| ApiError::from_gen(&e, false))?;
    let reserve = samples.saturating_mul(u64::from(req.sampling.max_tokens) + prompt.unwrap_or(0) as u64);
    st.keys.reserve(key, reserve)
}

fn known_scorer(st: &AppState, name: &str) -> Result<(), ApiError> {
    match name {
        "mean-logprob" | "self-eval" => Ok(()),
        "reward" if st.reward.is_some() => Ok(()),
        "reward" => Err(ApiError::invalid("scorer reward needs a [reward] model in the server config").param("ponder.scorer")),
        other => Err(ApiError::invalid(format!("unknown scorer {other:?} (known: mean-logprob, self-eval, reward)")).param("ponder.scorer")),
    }
}

/// Each candidate's chosen-token logprobs and token bytes (plain sampling).
#[derive(Debug, Clone, Default)]
struct TokenLogprobs {
    logprobs: Vec<f32>,
    /// Empty when the backend reports no tokens.
    bytes: Vec<Vec<u8>>,
}

/// The outcome, and each candidate's token logprobs where known (plain sampling).
type Ran = (Outcome, Vec<TokenLogprobs>);

/// Runs the request within the server's request timeout.
async fn run(st: Arc<AppState>, req: Arc<Request>, progress: Option<mpsc::UnboundedSender<Progress>>) -> Result<Ran, ApiError> {
    let timeout = Duration::from_secs(st.config.limits.request_timeout_s);
    match tokio::time::timeout(timeout, run_inner(st, req, progress)).await {
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
/// token logprobs.
async fn run_inner(st: Arc<AppState>, req: Arc<Request>, progress: Option<mpsc::UnboundedSender<Progress>>) -> Result<Ran, ApiError> {
    let upstream = st.backend.is_upstream();
    let mut generator = match req.kind {
        Kind::Chat => st.backend.chat(req.tools.as_ref(), req.tool_choice.as_ref()),
        Kind::Completion => st.backend.raw().map_err(|e| ApiError::from_gen(&e, upstream))?,
    };
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

/// What the response says: the chosen candidate, its tool calls, and the argument vote.
struct Decision {
    pos: Option<usize>,
    content: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: &'static str,
    stop_reason: Option<String>,
    tool_vote: Option<Value>,
}

/// When a voting strategy picked a tool name, the arguments are voted on among the
/// candidates that called that tool (ignoring non-semantic arguments); ties go to the
/// earliest sample.
fn decide(o: &Outcome, ignore: &[String], id: &str) -> Decision {
    let mut pos = o.chosen.filter(|&p| p < o.candidates.len());
    let mut tool_vote = None;
    let chosen_answer = pos.and_then(|p| o.candidates[p].answer.clone());
    if let Some(names) = chosen_answer.filter(|a| a.starts_with("tool:") && !o.votes.is_empty()) {
        let mut groups: Vec<(String, usize, usize)> = Vec::new(); // (arguments key, count, first position)
        for (p, c) in o.candidates.iter().enumerate() {
            if c.answer.as_deref() != Some(names.as_str()) {
                continue;
            }
            let (_, calls) = tools::parse(&c.text);
            let key = calls.iter().map(|k| tools::canonical_arguments(&k.arguments, ignore)).collect::<Vec<_>>().join("|");
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => g.1 += 1,
                None => groups.push((key, 1, p)),
            }
        }
        groups.sort_by(|a, b| b.1.cmp(&a.1).then(o.candidates[a.2].index.cmp(&o.candidates[b.2].index)));
        if let Some(best) = groups.first() {
            pos = Some(best.2);
        }
        tool_vote = Some(json!({
            "tool": names.trim_start_matches("tool:"),
            "arguments": groups.iter().map(|g| json!({ "arguments": g.0, "count": g.1 })).collect::<Vec<_>>(),
            "ignored": ignore,
        }));
    }
    let Some(p) = pos else {
        return Decision { pos: None, content: String::new(), tool_calls: Vec::new(), finish_reason: "stop", stop_reason: None, tool_vote };
    };
    let c = &o.candidates[p];
    let (prose, mut calls) = tools::parse(&c.text);
    for (i, call) in calls.iter_mut().enumerate() {
        call.id = format!("call_{}_{i}", id.rsplit('-').next().unwrap_or("0"));
    }
    let (content, finish_reason) = if calls.is_empty() {
        (c.text.clone(), if c.finish == FinishReason::Length { "length" } else { "stop" })
    } else {
        (prose, "tool_calls")
    };
    let stop_reason = match &c.finish {
        FinishReason::Stop(s) => Some(s.clone()),
        _ => None,
    };
    Decision { pos: Some(p), content, tool_calls: calls, finish_reason, stop_reason, tool_vote }
}

fn ponder_field(o: &Outcome, req: &Request, d: &Decision) -> Value {
    let mut v = json!({
        "strategy": o.strategy,
        "budget": req.samples(),
        "answer": o.answer,
        "chosen": d.pos.map(|p| o.candidates[p].index),
        "votes": o.votes,
        "n_samples": o.candidates.len() + o.n_failed,
        "n_candidates": o.candidates.len(),
        "n_failed": o.n_failed,
        "stopped_early": o.stopped_early,
        "abstained": o.abstained,
        "usage": o.usage,
        "scores": o.candidates.iter().map(|c| c.score).collect::<Vec<_>>(),
    });
    if req.return_candidates {
        v["candidates"] = json!(o.candidates);
    }
    if let Some(t) = &d.tool_vote {
        v["tool_vote"] = t.clone();
    }
    v
}

fn tool_calls_json(calls: &[ToolCall], with_index: bool) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } });
                if with_index {
                    v["index"] = json!(i);
                }
                v
            })
            .collect(),
    )
}

/// OpenAI's logprobs object. A token split inside a UTF-8 character shows as U+FFFD in
/// `token`; `bytes` (chat) holds its exact bytes.
fn logprobs_json(kind: Kind, t: &TokenLogprobs) -> Value {
    let known = t.bytes.len() == t.logprobs.len();
    let token = |i: usize| known.then(|| String::from_utf8_lossy(&t.bytes[i]).into_owned());
    match kind {
        Kind::Chat => json!({ "content": t.logprobs.iter().enumerate().map(|(i, x)| json!({
            "token": token(i).unwrap_or_default(),
            "logprob": x,
            "bytes": known.then(|| &t.bytes[i]),
            "top_logprobs": [],
        })).collect::<Vec<_>>() }),
        Kind::Completion => {
            let tokens: Option<Vec<String>> = (0..t.logprobs.len()).map(token).collect();
            let offsets = tokens.as_ref().map(|ts| {
                ts.iter()
                    .scan(0usize, |at, s| {
                        let start = *at;
                        *at += s.len();
                        Some(start)
                    })
                    .collect::<Vec<_>>()
            });
            json!({ "tokens": tokens, "token_logprobs": t.logprobs, "top_logprobs": null, "text_offset": offsets })
        }
    }
}

/// The full (non-streaming) response body.
fn response_body(o: &Outcome, req: &Request, id: &str, logprobs: &[TokenLogprobs]) -> Value {
    let d = decide(o, &req.ignore_arguments, id);
    let lp = |i: usize| {
        if req.logprobs {
            logprobs.get(i).map_or(Value::Null, |l| logprobs_json(req.kind, l))
        } else {
            Value::Null
        }
    };
    let choices: Vec<Value> = if req.n > 1 {
        o.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let finish = if c.finish == FinishReason::Length { "length" } else { "stop" };
                let stop_reason = match &c.finish {
                    FinishReason::Stop(s) => json!(s),
                    _ => Value::Null,
                };
                match req.kind {
                    Kind::Chat => json!({ "index": i, "message": { "role": "assistant", "content": c.text }, "logprobs": lp(i), "finish_reason": finish, "stop_reason": stop_reason }),
                    Kind::Completion => json!({ "index": i, "text": c.text, "logprobs": lp(i), "finish_reason": finish, "stop_reason": stop_reason }),
                }
            })
            .collect()
    } else {
        let l = d.pos.map_or(Value::Null, lp);
        match req.kind {
            Kind::Chat => {
                let mut message = json!({ "role": "assistant", "content": d.content });
                if !d.tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls_json(&d.tool_calls, false);
                    if d.content.is_empty() {
                        message["content"] = Value::Null;
                    }
                }
                vec![json!({ "index": 0, "message": message, "logprobs": l, "finish_reason": d.finish_reason, "stop_reason": d.stop_reason })]
            }
            Kind::Completion => {
                vec![json!({ "index": 0, "text": d.content, "logprobs": l, "finish_reason": d.finish_reason, "stop_reason": d.stop_reason })]
            }
        }
    };
    json!({
        "id": id,
        "object": if req.kind == Kind::Chat { "chat.completion" } else { "text_completion" },
        "created": now(),
        "model": req.model,
        "choices": choices,
        "usage": openai_usage(&o.usage),
        "ponder": ponder_field(o, req, &d),
    })
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
    let reservation = admit(st, &req, key.as_deref())?;
    let id = new_id(if kind == Kind::Chat { "chatcmpl" } else { "cmpl" });
    let req = Arc::new(req);
    if req.stream {
        return stream(st.clone(), req, id, reservation).await;
    }
    let started = Instant::now();
    let (outcome, logprobs) = run(st.clone(), req.clone(), None).await?;
    let strategy_ms = started.elapsed().as_secs_f64() * 1000.0;
    let spent = outcome.usage.prompt_computed + outcome.usage.prompt_reused + outcome.usage.completion;
    reservation.settle(spent);
    st.metrics.outcome(&outcome.usage, outcome.candidates.len(), outcome.n_failed, outcome.stopped_early);
    let mut body = response_body(&outcome, &req, &id, &logprobs);
    // Time inside the strategy; a client's latency minus this is what the gateway added.
    body["ponder"]["timing"] = json!({ "strategy_ms": strategy_ms });
    Ok(Json(body).into_response())
}

/// Votes so far, for progress events.
#[derive(Default)]
struct Tally {
    counts: Vec<(String, String, usize)>, // (key, answer, count)
    done: usize,
    failed: usize,
    steps: usize,
}

impl Tally {
    fn leader(&self) -> Value {
        let mut sorted: Vec<&(String, String, usize)> = self.counts.iter().collect();
        sorted.sort_by_key(|x| std::cmp::Reverse(x.2));
        json!({
            "leader": sorted.first().map(|x| &x.1),
            "leader_votes": sorted.first().map_or(0, |x| x.2),
            "runner_up_votes": sorted.get(1).map_or(0, |x| x.2),
        })
    }

    fn on(&mut self, p: Progress, budget: usize) -> Value {
        let mut ev = match p {
            Progress::Started { n } => json!({ "event": "started", "n": n }),
            Progress::Sample(s) => {
                self.done += 1;
                let answer = extract(&s.text);
                if let Some(a) = &answer {
                    let k = GatewayEquivalence.key(a);
                    match self.counts.iter_mut().find(|c| c.0 == k) {
                        Some(c) => c.2 += 1,
                        None => self.counts.push((k, a.clone(), 1)),
                    }
                }
                json!({ "event": "sample", "index": s.index, "tokens": s.n_tokens, "answer": answer })
            }
            Progress::Failed { index, error } => {
                self.failed += 1;
                json!({ "event": "failed", "index": index, "error": error })
            }
            Progress::EarlyStop { outstanding } => json!({ "event": "early_stop", "cancelled": outstanding }),
            Progress::Steps { extended, finished, tokens } => {
                self.steps += 1;
                json!({ "event": "step", "step": self.steps, "extended": extended, "finished": finished, "tokens": tokens })
            }
        };
        ev["done"] = json!(self.done);
        ev["failed"] = json!(self.failed);
        ev["budget"] = json!(budget);
        if let (Some(o), Value::Object(l)) = (ev.as_object_mut(), self.leader()) {
            o.extend(l);
        }
        ev
    }
}

fn chunk(req: &Request, id: &str, created: u64, choices: Value) -> Value {
    json!({
        "id": id,
        "object": if req.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" },
        "created": created,
        "model": req.model,
        "choices": choices,
    })
}

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// Pieces of a few words each, so the answer arrives as ordinary deltas.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut words = 0;
    for part in text.split_inclusive(char::is_whitespace) {
        cur.push_str(part);
        words += 1;
        if words == 4 {
            out.push(std::mem::take(&mut cur));
            words = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The answer as chunks after the decision: content deltas, tool-call deltas, the finishing
/// chunk with the strategy's details, then usage.
fn answer_events(o: &Outcome, req: &Request, id: &str, created: u64) -> Vec<Event> {
    let d = decide(o, &req.ignore_arguments, id);
    let mut out = Vec::new();
    let choice = |delta_or_text: Value, finish: Value| match req.kind {
        Kind::Chat => json!([{ "index": 0, "delta": delta_or_text, "logprobs": null, "finish_reason": finish }]),
        Kind::Completion => json!([{ "index": 0, "text": delta_or_text, "logprobs": null, "finish_reason": finish }]),
    };
    for p in pieces(&d.content) {
        let delta = if req.kind == Kind::Chat { json!({ "content": p }) } else { json!(p) };
        out.push(data(&chunk(req, id, created, choice(delta, Value::Null))));
    }
    if !d.tool_calls.is_empty() && req.kind == Kind::Chat {
        out.push(data(&chunk(req, id, created, choice(json!({ "tool_calls": tool_calls_json(&d.tool_calls, true) }), Value::Null))));
    }
    let empty = if req.kind == Kind::Chat { json!({}) } else { json!("") };
    let mut last = chunk(req, id, created, choice(empty, json!(d.finish_reason)));
    last["ponder"] = ponder_field(o, req, &d);
    out.push(data(&last));
    let mut usage = chunk(req, id, created, json!([]));
    usage["usage"] = openai_usage(&o.usage);
    out.push(data(&usage));
    out
}

fn progress_event(req: &Request, id: &str, created: u64, ev: &Value) -> Option<Event> {
    match req.progress {
        ProgressMode::None => None,
        ProgressMode::Comments => Some(Event::default().comment(format!("ponder {ev}"))),
        ProgressMode::Chunks => {
            let mut c = chunk(req, id, created, json!([]));
            c["ponder"] = ev.clone();
            Some(data(&c))
        }
    }
}

/// Streams: progress while the strategy runs, then the answer. The response starts only
/// once the backend accepted the first sample request, so that request errors are still
/// plain 4xx answers.
async fn stream(st: Arc<AppState>, req: Arc<Request>, id: String, reservation: crate::keys::Reservation) -> Result<Response, ApiError> {
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let (etx, erx) = mpsc::channel::<Result<Event, Infallible>>(256);
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), ApiError>>();
    let created = now();
    let task_req = req.clone();
    tokio::spawn(async move {
        let req = task_req;
        let budget = req.samples();
        let mut ready = Some(ready_tx);
        let mut tally = Tally::default();
        let mut role_sent = false;
        let open = |ready: &mut Option<oneshot::Sender<Result<(), ApiError>>>, role_sent: &mut bool| -> Vec<Event> {
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            if *role_sent || req.kind != Kind::Chat {
                return Vec::new();
            }
            *role_sent = true;
            vec![data(&chunk(&req, &id, created, json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null }])))]
        };
        let work = run(st.clone(), req.clone(), Some(ptx));
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                Some(p) = prx.recv() => {
                    let mut evs = open(&mut ready, &mut role_sent);
                    let ev = tally.on(p, budget);
                    evs.extend(progress_event(&req, &id, created, &ev));
                    for e in evs {
                        if etx.send(Ok(e)).await.is_err() {
                            return; // the client left: dropping `work` cancels the samples
                        }
                    }
                }
                _ = etx.closed() => return,
            }
        };
        let mut evs = Vec::new();
        while let Ok(p) = prx.try_recv() {
            let ev = tally.on(p, budget);
            evs.extend(progress_event(&req, &id, created, &ev));
        }
        match result {
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e));
                    return;
                }
                if e.status.is_server_error() {
                    tracing::error!(status = e.status.as_u16(), code = ?e.code, "{}", e.message);
                }
                evs.push(data(&e.public().body()));
            }
            Ok((o, _)) => {
                let mut head = open(&mut ready, &mut role_sent);
                head.append(&mut evs);
                evs = head;
                let spent = o.usage.prompt_computed + o.usage.prompt_reused + o.usage.completion;
                st.metrics.outcome(&o.usage, o.candidates.len(), o.n_failed, o.stopped_early);
                let decided = json!({
                    "event": "decided", "answer": o.answer, "stopped_early": o.stopped_early,
                    "samples": o.candidates.len() + o.n_failed, "budget": budget,
                });
                evs.extend(progress_event(&req, &id, created, &decided));
                evs.extend(answer_events(&o, &req, &id, created));
                reservation.settle(spent);
            }
        }
        evs.push(Event::default().data("[DONE]"));
        for e in evs {
            if etx.send(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ApiError::internal("the request's task ended without an answer")),
    }
    let events = futures::stream::unfold(erx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(index: usize, text: &str) -> Candidate {
        let answer = extract(text);
        let key = answer.as_deref().map(|a| GatewayEquivalence.key(a));
        Candidate { index, text: text.into(), answer, key, n_tokens: 1, mean_logprob: None, finish: FinishReason::Eos, score: None }
    }

    fn call(name: &str, args: &str) -> String {
        format!("<tool_call>{{\"name\": \"{name}\", \"arguments\": {args}}}</tool_call>")
    }

    fn vote(candidates: Vec<Candidate>) -> Outcome {
        let votes = strategy::tally(&candidates, false);
        let chosen = votes.first().and_then(|v| candidates.iter().position(|c| c.index == v.first_index));
        Outcome {
            strategy: "sc".into(),
            answer: votes.first().map(|v| v.answer.clone()),
            chosen,
            candidates,
            votes,
            usage: Usage::default(),
            n_failed: 0,
            stopped_early: false,
            abstained: false,
        }
    }

    #[test]
    fn tool_name_first_then_arguments() {
        let o = vote(vec![
            cand(0, &call("search", r#"{"q": "a", "id": 1}"#)),
            cand(1, &call("calc", r#"{"x": 1}"#)),
            cand(2, &call("search", r#"{"q": "b", "id": 2}"#)),
            cand(3, &call("search", r#"{"id": 3, "q": "b"}"#)),
            cand(4, &call("calc", r#"{"x": 1}"#)),
        ]);
        assert_eq!(o.answer.as_deref(), Some("tool:search"));
        // "id" is non-semantic: q=b wins 2 to 1, and its earliest member is returned.
        let d = decide(&o, &["id".into()], "chatcmpl-x-1");
        assert_eq!(d.pos, Some(2));
        assert_eq!(d.finish_reason, "tool_calls");
        assert_eq!(d.tool_calls[0].name, "search");
        assert_eq!(d.tool_vote.as_ref().unwrap()["arguments"][0]["count"], 2);
        // Counting "id", every argument set is different: the earliest wins.
        let d = decide(&o, &[], "chatcmpl-x-1");
        assert_eq!(d.pos, Some(0));
    }

    #[test]
    fn text_answers_keep_the_strategys_choice() {
        let o = vote(vec![cand(0, "The answer is 5."), cand(1, &call("f", "{}")), cand(2, "It is 5")]);
        let d = decide(&o, &[], "id");
        assert_eq!(d.pos, Some(0));
        assert!(d.tool_calls.is_empty() && d.tool_vote.is_none());
        assert_eq!(d.content, "The answer is 5.");
    }

    #[test]
    fn usage_maps_to_openai_fields() {
        let u = Usage { prompt_computed: 10, prompt_reused: 30, completion: 7, ..Usage::default() };
        let v = openai_usage(&u);
        assert_eq!(v["prompt_tokens"], 40);
        assert_eq!(v["completion_tokens"], 7);
        assert_eq!(v["total_tokens"], 47);
        assert_eq!(v["prompt_tokens_details"]["cached_tokens"], 30);
    }

    #[test]
    fn pieces_rebuild_the_text() {
        for t in ["", "one", "a b c d e f g h i", "line\nbreak  double  spaces "] {
            assert_eq!(pieces(t).concat(), t);
        }
    }
}
