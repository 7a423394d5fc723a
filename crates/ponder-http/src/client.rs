//! Endpoints, routing, retries with backoff, deadlines, cancellation, and the start-up
//! capability probes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ponder_core::{CancelToken, GenError};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::config::HttpConfig;
use crate::health::{self, EndpointStats, Health};
use crate::{wire, Error};

/// How next-token probes (self-evaluation) reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeMode {
    /// Not available: strategies that probe are refused.
    #[default]
    None,
    /// ponder's `POST /v1/ponder/probe`: exact log-probabilities of the candidates.
    Ponder,
    /// A 1-token completion with `logprobs: 20`; candidates outside the top 20 get -inf.
    TopLogprobs,
}

/// What the server was found to support at start-up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Caps {
    /// The model requests name.
    pub model: String,
    /// Every model the first endpoint lists.
    pub models: Vec<String>,
    /// Tokens per sequence when the server says (`max_model_len`), else 0.
    pub context_len: usize,
    pub chat: bool,
    pub completions: bool,
    /// `n` > 1 gives that many choices in one response, and its `usage` counts all of them.
    /// llama-server answers `n` but reports the first choice's usage only: there ponder
    /// sends parallel requests instead, each with its own exact usage (issue 15).
    pub n: bool,
    /// Chosen-token logprobs on `chat/completions`.
    pub chat_logprobs: bool,
    /// Chosen-token logprobs on `completions` (token strings too, where the server gives them).
    pub completion_logprobs: bool,
    /// `POST /apply-template` renders a conversation into prompt text (llama.cpp's server, ponder).
    pub template: bool,
    /// `continue_final_message` on `chat/completions` (vLLM).
    pub continue_final_message: bool,
    pub probe: ProbeMode,
    /// `top_k` and `min_p` are accepted: every request sends all sampling parameters.
    pub sampling_fields: bool,
    /// Requests the server runs at once, where it says (llama-server's `/props`
    /// `total_slots`), else 0.
    pub slots: usize,
    /// The server is another `ponder serve` (reports exact usage breakdowns).
    pub ponder: bool,
}

pub(crate) struct Endpoint {
    /// Base URL with the API prefix, no trailing slash.
    pub url: String,
    /// The server root (the base URL without a trailing `/v1`).
    pub root: String,
    api_key: Option<String>,
    sem: Arc<Semaphore>,
    pub health: Health,
}

/// The endpoints of one model and the rules for calling them.
pub(crate) struct Pool {
    http: reqwest::Client,
    pub endpoints: Vec<Endpoint>,
    pub cfg: HttpConfig,
}

/// One failed attempt.
enum Attempt {
    /// Worth retrying (429, 5xx, transport errors, broken bodies); `lost`: the server may
    /// have computed something for it that no usage will report; `refused`: no connection
    /// was made (the server is not there).
    Retry { msg: String, after: Option<Duration>, lost: bool, refused: bool },
    Fatal(GenError),
}

/// A call's answer, and how many of its attempts may have computed work that went
/// unreported (timed out, cut off, answered 5xx or garbage): added to `Usage::unreported`.
pub(crate) type Counted = (Result<Value, GenError>, u64);

impl Pool {
    pub fn new(cfg: HttpConfig) -> Result<Pool, Error> {
        cfg.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(10_000)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| {
                let url = e.url.trim_end_matches('/').to_string();
                let root = url.strip_suffix("/v1").unwrap_or(&url).to_string();
                Endpoint { url, root, api_key: e.api_key.clone(), sem: Arc::new(Semaphore::new(e.max_concurrency)), health: Health::default() }
            })
            .collect();
        Ok(Pool { http, endpoints, cfg })
    }

    /// Caps endpoint `i` at the `slots` requests its server runs at once. More would wait in
    /// the server's queue with the attempt's timeout running: under load they time out,
    /// are retried and computed twice (issue 15: 87 lost attempts in 64 requests).
    pub fn limit(&self, i: usize, slots: usize) {
        let ep = &self.endpoints[i];
        let configured = self.cfg.endpoints[i].max_concurrency;
        if slots > 0 && slots < configured {
            ep.sem.forget_permits(configured - slots);
        }
    }

    /// The endpoint for a prompt: the same prompt always goes to the same endpoint.
    pub fn route(&self, key: &impl Hash) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.endpoints.len() as u64) as usize
    }

    /// POSTs `body` to `path` under the routed endpoint's base URL, retrying on the next
    /// endpoints; gives up at the deadline or when `cancel` fires. Counted in the
    /// endpoints' stats.
    pub async fn post(&self, route: usize, path: &str, body: &Value, cancel: Option<&CancelToken>) -> Counted {
        let deadline = Instant::now() + Duration::from_millis(self.cfg.deadline_ms);
        self.request(route, path, Some(body), cancel, deadline, self.cfg.retries, Call::Counted).await
    }

    /// What each endpoint did so far.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.endpoints.iter().map(|e| e.health.snapshot(&e.url)).collect()
    }

    /// A single GET or POST against the server root of endpoint `i`, for probes and
    /// rendering (they compute no tokens).
    pub async fn probe(&self, i: usize, path: &str, body: Option<&Value>) -> Result<Value, GenError> {
        let deadline = Instant::now() + Duration::from_millis(self.cfg.probe_timeout_ms);
        self.request(i, path, body, None, deadline, 0, Call::Root).await.0
    }

    #[allow(clippy::too_many_arguments)]
    async fn request(
        &self,
        route: usize,
        path: &str,
        body: Option<&Value>,
        cancel: Option<&CancelToken>,
        deadline: Instant,
        retries: u32,
        call: Call,
    ) -> Counted {
        let work = async {
            let mut last = String::new();
            let mut lost = 0;
            // Probes ask the endpoint they name; calls go round the ring from their route,
            // past servers that just refused connections.
            let order = match call {
                Call::Counted => health::order(route, self.endpoints.len(), |i| self.endpoints[i].health.is_down()),
                _ => vec![route],
            };
            for attempt in 0..=retries {
                let ep = &self.endpoints[order[attempt as usize % order.len()]];
                let url = format!("{}{path}", if call == Call::Root { &ep.root } else { &ep.url });
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let outcome = match tokio::time::timeout(left, self.attempt(ep, &url, body, left)).await {
                    Ok(o) => o,
                    Err(_) => Err(Attempt::Retry { msg: format!("{url}: no answer before the deadline"), after: None, lost: true, refused: false }),
                };
                let counted = call == Call::Counted;
                let (retry_after, refused) = match outcome {
                    Ok(v) => {
                        if counted {
                            ep.health.answered(&wire::usage(&v));
                        }
                        return (Ok(v), lost);
                    }
                    Err(Attempt::Fatal(e)) => {
                        if counted {
                            ep.health.failed(false, false);
                        }
                        return (Err(e), lost);
                    }
                    Err(Attempt::Retry { msg, after, lost: l, refused }) => {
                        tracing::debug!(attempt, "upstream call failed: {msg}");
                        if counted {
                            ep.health.failed(l, refused);
                        }
                        last = msg;
                        lost += u64::from(l);
                        (after, refused)
                    }
                };
                // A server that is not there computed nothing and is not busy: the next
                // one is asked at once (backing off would only delay every call routed to it).
                let next_elsewhere = order.len() > 1 && order[(attempt as usize + 1) % order.len()] != order[attempt as usize % order.len()];
                if refused && next_elsewhere && attempt < retries {
                    continue;
                }
                if attempt < retries {
                    let base = self.cfg.backoff_ms.saturating_mul(1 << attempt.min(16));
                    let jitter = rand::thread_rng().gen_range(0..=base / 2 + 1);
                    let mut wait = Duration::from_millis(base + jitter);
                    if let Some(ra) = retry_after {
                        wait = wait.max(ra);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if wait >= left {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
            let e = GenError::Backend(if last.is_empty() { format!("{path}: deadline passed before any attempt") } else { last });
            (Err(e), lost)
        };
        match cancel {
            None => work.await,
            Some(token) => tokio::select! {
                r = work => r,
                // The caller counts the call cut off here as unreported.
                _ = cancelled(token) => (Err(GenError::Backend("cancelled".into())), 0),
            },
        }
    }

    async fn attempt(&self, ep: &Endpoint, url: &str, body: Option<&Value>, left: Duration) -> Result<Value, Attempt> {
        let _permit = ep.sem.acquire().await.map_err(|_| Attempt::Fatal(GenError::Backend("endpoint closed".into())))?;
        let timeout = Duration::from_millis(self.cfg.timeout_ms).min(left);
        let mut req = match body {
            Some(b) => self.http.post(url).json(b),
            None => self.http.get(url),
        }
        .timeout(timeout);
        if let Some(k) = &ep.api_key {
            req = req.bearer_auth(k);
        }
        // A connection never made computed nothing; one cut off later may have.
        let resp = req
            .send()
            .await
            .map_err(|e| Attempt::Retry { msg: format!("{url}: {}", describe(&e)), after: None, lost: !e.is_connect(), refused: e.is_connect() })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(60)));
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Attempt::Retry { msg: format!("{url}: reading the body: {}", describe(&e)), after: None, lost: true, refused: false })?;
        if !status.is_success() {
            let msg = error_message(&bytes);
            let text = format!("{url} answered {status}: {msg}");
            return Err(match status.as_u16() {
                // Refused before any work: busy, or the request took too long to arrive.
                429 | 408 | 503 => Attempt::Retry { msg: text, after: retry_after, lost: false, refused: false },
                _ if status.is_server_error() => Attempt::Retry { msg: text, after: retry_after, lost: true, refused: false },
                _ => Attempt::Fatal(GenError::InvalidRequest(text)),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Attempt::Retry { msg: format!("{url}: invalid JSON in the answer: {e}"), after: None, lost: true, refused: false })
    }
}

/// What a request is: a generation call (counted in the endpoints' stats, may move on to
/// the next endpoint), a start-up check under the base URL, or a call at the server root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Counted,
    Check,
    Root,
}

/// Resolves once `token` is cancelled.
pub(crate) async fn cancelled(token: &CancelToken) {
    while !token.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "broken body"
    } else {
        "request failed"
    };
    let mut s = format!("{kind} ({e}");
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s.push(')');
    s
}

/// The message of an OpenAI-style error body, else the body's start.
fn error_message(bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        if let Some(m) = v.pointer("/error/message").and_then(Value::as_str).or_else(|| v.get("message").and_then(Value::as_str)) {
            return m.to_string();
        }
        if let Some(m) = v.get("error").and_then(Value::as_str).or_else(|| v.get("detail").and_then(Value::as_str)) {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(300).collect()
}

/// Probes one endpoint; `want_model` picks the model.
pub(crate) async fn detect(pool: &Pool, i: usize, want_model: Option<&str>) -> Result<Caps, Error> {
    let ep = &pool.endpoints[i];
    let unreachable = |reason: String| Error::Unreachable { url: ep.url.clone(), reason };
    let deadline = Instant::now() + Duration::from_millis(pool.cfg.probe_timeout_ms);
    let models =
        pool.request(i, "/models", None, None, deadline, 0, Call::Check).await.0.map_err(|e| unreachable(e.to_string()))?;
    let entries = models.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
    let ids: Vec<String> = entries.iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string)).collect();
    let model = match want_model {
        Some(m) if ids.iter().any(|id| id == m) => m.to_string(),
        Some(m) if ids.is_empty() => m.to_string(),
        Some(m) => return Err(Error::UnknownModel { url: ep.url.clone(), model: m.into(), served: ids.join(", ") }),
        None => ids.first().cloned().ok_or_else(|| unreachable("GET /models listed no model".into()))?,
    };
    let context_len = entries
        .iter()
        .find(|m| m.get("id").and_then(Value::as_str) == Some(&model))
        .and_then(|m| m.get("max_model_len").and_then(Value::as_u64))
        .unwrap_or(0) as usize;
    let mut caps = Caps { model: model.clone(), models: ids, context_len, ..Caps::default() };
    let api = |path: &'static str, body: Value| {
        let deadline = Instant::now() + Duration::from_millis(pool.cfg.probe_timeout_ms);
        async move { pool.request(i, path, Some(&body), None, deadline, 0, Call::Check).await.0 }
    };
    if let Ok(h) = pool.probe(i, "/health", None).await {
        caps.ponder = h.get("server").and_then(Value::as_str) == Some("ponder");
    }
    if let Ok(p) = pool.probe(i, "/props", None).await {
        caps.slots = p.get("total_slots").and_then(Value::as_u64).unwrap_or(0) as usize;
    }
    let hi = json!([{ "role": "user", "content": "Say OK." }]);
    // A ponder upstream samples plainly when asked for `single`; others never see the field.
    let is_ponder = caps.ponder;
    let plain = move |mut body: Value| {
        if is_ponder {
            body["ponder"] = json!({ "strategy": "single" });
        }
        body
    };
    match api("/chat/completions", plain(json!({ "model": model, "messages": hi, "max_tokens": 1, "n": 2, "logprobs": true, "temperature": 1.0, "seed": 1 }))).await {
        Ok(v) => {
            let choices = v.get("choices").and_then(Value::as_array).cloned().unwrap_or_default();
            caps.chat = !choices.is_empty();
            // Each choice generated exactly one token: a usage that covers both says 2.
            caps.n = choices.len() == 2 && wire::usage(&v).completion == 2;
            caps.chat_logprobs = choices.first().and_then(|c| c.pointer("/logprobs/content")).is_some_and(Value::is_array);
        }
        Err(_) => {
            caps.chat = api("/chat/completions", plain(json!({ "model": model, "messages": hi, "max_tokens": 1 }))).await.is_ok();
        }
    }
    match api("/completions", plain(json!({ "model": model, "prompt": "Hello", "max_tokens": 1, "logprobs": 5, "temperature": 0.0 }))).await {
        Ok(v) => {
            caps.completions = true;
            let choice = v.pointer("/choices/0").cloned().unwrap_or(Value::Null);
            caps.completion_logprobs = !wire::completion_logprobs(&choice).0.is_empty();
            if !wire::first_top_logprobs(&choice).is_empty() {
                caps.probe = ProbeMode::TopLogprobs;
            }
        }
        Err(_) => {
            caps.completions = api("/completions", plain(json!({ "model": model, "prompt": "Hello", "max_tokens": 1 }))).await.is_ok();
        }
    }
    // The sampling fields OpenAI lacks, at their off values: a server that takes them
    // gets them on every request.
    let off = |mut body: Value| {
        body["top_k"] = json!(0);
        body["min_p"] = json!(0.0);
        body["top_p"] = json!(1.0);
        plain(body)
    };
    caps.sampling_fields = if caps.chat {
        api("/chat/completions", off(json!({ "model": model, "messages": hi, "max_tokens": 1 }))).await.is_ok()
    } else {
        api("/completions", off(json!({ "model": model, "prompt": "Hello", "max_tokens": 1 }))).await.is_ok()
    };
    caps.template = pool
        .probe(i, "/apply-template", Some(&json!({ "messages": hi })))
        .await
        .is_ok_and(|v| v.get("prompt").is_some_and(Value::is_string));
    if caps.ponder {
        caps.probe = ProbeMode::Ponder;
    } else {
        caps.continue_final_message =
            pool.probe(i, "/version", None).await.is_ok_and(|v| v.get("version").is_some_and(Value::is_string));
    }
    if !caps.chat && !caps.completions {
        return Err(unreachable("neither chat/completions nor completions answered a 1-token request".into()));
    }
    Ok(caps)
}
