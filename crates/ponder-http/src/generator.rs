//! [`HttpGenerator`]: `Generator` over an OpenAI-compatible server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use ponder_core::{
    CancelToken, GenError, GenEvent, Generator, GeneratorInfo, Message, Sample, SampleRequest, SampleStream, StepSession,
    Usage,
};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::client::{detect, Caps, Pool, ProbeMode};
use crate::config::{Api, HttpConfig, StepMode};
use crate::session::HttpSession;
use crate::{wire, Error};

pub(crate) struct Shared {
    pub pool: Pool,
    pub caps: Caps,
    pub step_mode: StepMode,
    /// Probe candidates' first tokens as the server's `/tokenize` splits them (`None`: the
    /// server has no tokenizer endpoint).
    pub first_tokens: tokio::sync::Mutex<HashMap<String, Option<String>>>,
}

/// A backend on one model served over HTTP. Cheap to clone; clones share endpoints,
/// connection pools and concurrency limits.
#[derive(Clone)]
pub struct HttpGenerator {
    pub(crate) shared: Arc<Shared>,
    api: Api,
    /// Extra body fields for `chat/completions` (tools, tool_choice, response_format, …).
    extra: Arc<Map<String, Value>>,
}

impl HttpGenerator {
    /// Probes every endpoint (they must all serve the model) and resolves the step mode.
    pub async fn connect(cfg: HttpConfig) -> Result<HttpGenerator, Error> {
        let pool = Pool::new(cfg.clone())?;
        let mut found = Vec::new();
        for i in 0..pool.endpoints.len() {
            let caps = detect(&pool, i, cfg.model.as_deref()).await?;
            pool.limit(i, caps.slots);
            found.push(caps);
        }
        // Several endpoints: what all of them support.
        let mut caps = found[0].clone();
        for c in &found[1..] {
            caps.chat &= c.chat;
            caps.completions &= c.completions;
            caps.n &= c.n;
            caps.chat_logprobs &= c.chat_logprobs;
            caps.completion_logprobs &= c.completion_logprobs;
            caps.sampling_fields &= c.sampling_fields;
            caps.template &= c.template;
            caps.continue_final_message &= c.continue_final_message;
            caps.ponder &= c.ponder;
            if c.probe != caps.probe {
                caps.probe = if c.probe == ProbeMode::None || caps.probe == ProbeMode::None { ProbeMode::None } else { ProbeMode::TopLogprobs };
            }
        }
        let step_mode = match cfg.step_mode {
            StepMode::Auto if caps.template && caps.completions => StepMode::Completions,
            StepMode::Auto if caps.continue_final_message && caps.chat => StepMode::ContinueFinalMessage,
            StepMode::Auto => StepMode::None,
            StepMode::Completions if !caps.completions => {
                return Err(Error::Config("step_mode completions, but the server has no completions endpoint".into()))
            }
            m => m,
        };
        let api = cfg.api;
        if api == Api::Chat && !caps.chat {
            return Err(Error::Config("api chat, but the server's chat/completions did not answer".into()));
        }
        if api == Api::Completions && !caps.completions {
            return Err(Error::Config("api completions, but the server's completions did not answer".into()));
        }
        tracing::info!(?caps, ?step_mode, "HTTP backend ready");
        Ok(HttpGenerator { shared: Arc::new(Shared { pool, caps, step_mode, first_tokens: Default::default() }), api, extra: Arc::new(Map::new()) })
    }

    pub fn caps(&self) -> &Caps {
        &self.shared.caps
    }

    /// How step-wise sessions continue branches (`None`: they are refused).
    pub fn step_mode(&self) -> StepMode {
        self.shared.step_mode
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The same backend sampling through another endpoint.
    pub fn with_api(&self, api: Api) -> Result<HttpGenerator, GenError> {
        let ok = match api {
            Api::Chat => self.shared.caps.chat,
            Api::Completions => self.shared.caps.completions,
        };
        if !ok {
            return Err(GenError::Unsupported(format!("the {api:?} endpoint on {}", self.shared.pool.endpoints[0].url)));
        }
        Ok(HttpGenerator { api, ..self.clone() })
    }

    /// The same backend adding `extra` fields (e.g. `tools`) to every chat request.
    pub fn with_extra(&self, extra: Map<String, Value>) -> HttpGenerator {
        HttpGenerator { extra: Arc::new(extra), ..self.clone() }
    }

    /// The conversation as prompt text, rendered by the server (`/apply-template`).
    pub async fn render(&self, messages: &[Message]) -> Result<String, GenError> {
        if !self.shared.caps.template {
            return Err(GenError::Unsupported(format!(
                "prompt rendering (the server at {} has no /apply-template)",
                self.shared.pool.endpoints[0].url
            )));
        }
        let pool = &self.shared.pool;
        let route = pool.route(&wire::messages(messages).to_string());
        let ep = &pool.endpoints[route];
        let v = pool.probe(route, "/apply-template", Some(&json!({ "messages": wire::messages(messages) }))).await.map_err(
            |e| GenError::Backend(format!("rendering the prompt at {}: {e}", ep.root)),
        )?;
        v.get("prompt")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GenError::Backend("/apply-template answered without a prompt".into()))
    }

    /// For each prompt, the log-probabilities of each candidate's first token after
    /// `suffix`: exact through a ponder upstream, from the top 20 logprobs elsewhere
    /// (candidates outside them get -inf). The first token is the one the server's
    /// `/tokenize` gives (llama-server); a server without it leaves only the candidate's
    /// text to match, which a shorter token that begins it would stand in for.
    pub async fn probe_prompts(&self, prompts: &[String], suffix: &str, candidates: &[String]) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        let route = self.shared.pool.route(&prompts.first().cloned().unwrap_or_default());
        self.probe_at(route, prompts, suffix, candidates).await
    }

    pub(crate) async fn probe_at(
        &self,
        route: usize,
        prompts: &[String],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        let caps = self.caps();
        let pool = &self.shared.pool;
        match caps.probe {
            ProbeMode::Ponder => {
                let body = json!({ "model": caps.model, "prompts": prompts, "suffix": suffix, "candidates": candidates });
                let (v, lost) = pool.post(route, "/ponder/probe", &body, None).await;
                let v = v?;
                let lps: Vec<Vec<f32>> = serde_json::from_value(v.get("logprobs").cloned().unwrap_or(Value::Null))
                    .map_err(|e| GenError::Backend(format!("/ponder/probe answered without logprobs: {e}")))?;
                if lps.len() != prompts.len() || lps.iter().any(|r| r.len() != candidates.len()) {
                    return Err(GenError::Backend("/ponder/probe answered with the wrong shape".into()));
                }
                Ok((lps, Usage { unreported: lost, ..wire::usage(&v) }))
            }
            ProbeMode::TopLogprobs => {
                let firsts = self.first_tokens(route, candidates).await;
                let calls = prompts.iter().map(|p| {
                    let body = json!({
                        "model": caps.model, "prompt": format!("{p}{suffix}"), "max_tokens": 1, "logprobs": 20, "temperature": 0.0,
                    });
                    async move { pool.post(route, "/completions", &body, None).await }
                });
                let mut out = Vec::new();
                let mut usage = Usage::default();
                for (r, lost) in futures::future::join_all(calls).await {
                    let v = r?;
                    usage += Usage { unreported: lost, ..wire::usage(&v) };
                    let top = wire::first_top_logprobs(v.pointer("/choices/0").unwrap_or(&Value::Null));
                    out.push(
                        candidates
                            .iter()
                            .zip(&firsts)
                            .map(|(c, first)| match first {
                                Some(t) => top.iter().find(|(tok, _)| tok == t).map_or(f32::NEG_INFINITY, |(_, lp)| *lp),
                                None => top_logprob(&top, c),
                            })
                            .collect(),
                    );
                }
                usage.scorer_passes += prompts.len() as u64;
                Ok((out, usage))
            }
            ProbeMode::None => Err(GenError::Unsupported(format!(
                "next-token probes (self-evaluation): the server at {} returns no top logprobs",
                pool.endpoints[0].url
            ))),
        }
    }

    /// Each candidate's first token as the server tokenizes it, asked once per candidate;
    /// `None` where the server cannot say.
    async fn first_tokens(&self, route: usize, candidates: &[String]) -> Vec<Option<String>> {
        let mut known = self.shared.first_tokens.lock().await;
        for c in candidates {
            if known.contains_key(c) {
                continue;
            }
            let got = self.shared.pool.probe(route, "/tokenize", Some(&json!({ "content": c, "with_pieces": true }))).await;
            let first = got.ok().and_then(|v| v.pointer("/tokens/0/piece").and_then(Value::as_str).map(str::to_string));
            if first.is_none() {
                tracing::debug!(candidate = c.as_str(), "no /tokenize: probe candidates are matched by their text");
            }
            known.insert(c.clone(), first);
        }
        candidates.iter().map(|c| known[c].clone()).collect()
    }

    /// One request for the samples `indices` (consecutive) of `req`, and its attempts whose
    /// work went unreported.
    async fn request(&self, req: &SampleRequest, indices: &[usize], route: usize, cancel: &CancelToken) -> (Result<(Vec<Sample>, Usage), GenError>, u64) {
        let p = &req.params;
        let n = indices.len();
        let mut body = Map::new();
        body.insert("model".into(), json!(self.shared.caps.model));
        wire::sampling(&mut body, p, p.max_tokens, &p.stop, wire::seed(p.seed, indices[0] as u64), self.shared.caps.sampling_fields);
        if n > 1 {
            body.insert("n".into(), json!(n));
        }
        let (path, chat) = match self.api {
            Api::Chat => {
                body.insert("messages".into(), wire::messages(&req.messages));
                if self.shared.caps.chat_logprobs {
                    body.insert("logprobs".into(), json!(true));
                }
                for (k, v) in self.extra.iter() {
                    body.insert(k.clone(), v.clone());
                }
                ("/chat/completions", true)
            }
            Api::Completions => {
                body.insert("prompt".into(), json!(wire::raw_prompt(&req.messages)));
                if self.shared.caps.completion_logprobs {
                    body.insert("logprobs".into(), json!(1));
                }
                ("/completions", false)
            }
        };
        if self.shared.caps.ponder {
            body.insert("ponder".into(), json!({ "strategy": "single", "progress": "none" }));
        }
        let (v, lost) = self.shared.pool.post(route, path, &Value::Object(body), Some(cancel)).await;
        (v.and_then(|v| samples(&v, path, chat, indices, &p.stop)), lost)
    }

    fn per_request(&self) -> usize {
        let caps = &self.shared.caps;
        let logprobs = match self.api {
            Api::Chat => caps.chat_logprobs,
            Api::Completions => caps.completion_logprobs,
        };
        if self.shared.pool.cfg.use_n && caps.n && logprobs {
            self.shared.pool.cfg.max_n
        } else {
            1
        }
    }
}

#[async_trait]
impl Generator for HttpGenerator {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            backend: format!("http ({})", self.shared.pool.endpoints.iter().map(|e| e.url.as_str()).collect::<Vec<_>>().join(", ")),
            model: self.shared.caps.model.clone(),
            context_len: self.shared.caps.context_len,
            n_params: 0,
        }
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        req.params.validate()?;
        if req.n == 0 {
            return Err(GenError::InvalidRequest("n must be at least 1, got 0".into()));
        }
        if req.messages.is_empty() {
            return Err(GenError::InvalidRequest("messages must not be empty".into()));
        }
        let route = self.shared.pool.route(&wire::messages(&req.messages).to_string());
        let per = self.per_request();
        let indices: Vec<usize> = (req.first_index..req.first_index + req.n).collect();
        let chunks: Vec<Vec<usize>> = indices.chunks(per).map(<[usize]>::to_vec).collect();
        let cancel = CancelToken::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let this = self.clone();
        let token = cancel.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let req = Arc::new(req);
            let mut running: FuturesUnordered<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (this, req, token) = (this.clone(), req.clone(), token.clone());
                    async move {
                        let (r, lost) = this.request(&req, &chunk, route, &token).await;
                        (chunk, r, lost)
                    }
                })
                .collect();
            let mut usage = Usage::default();
            while let Some((chunk, result, lost)) = running.next().await {
                usage.unreported += lost;
                match result {
                    Ok((samples, u)) => {
                        usage += u;
                        for s in samples {
                            let _ = tx.send(GenEvent::Sample(s));
                        }
                    }
                    // Cancelled samples are not failures: they are not reported. The aborted
                    // request's usage never comes, so what it computed is unknown, not zero.
                    Err(_) if token.is_cancelled() => usage.unreported += 1,
                    Err(error) => {
                        for index in chunk {
                            let _ = tx.send(GenEvent::Failed { index, error: error.clone() });
                        }
                    }
                }
                if tx.is_closed() {
                    // The stream was dropped: stop the rest.
                    token.cancel();
                }
            }
            usage.wall_ms = start.elapsed().as_millis() as u64;
            let _ = tx.send(GenEvent::Done(usage));
        });
        Ok(SampleStream::new(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }), cancel))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        Ok(Box::new(HttpSession::open(self.clone(), messages, seed).await?))
    }
}

/// The samples `indices` from one response, with its usage.
fn samples(v: &Value, path: &str, chat: bool, indices: &[usize], stop: &[String]) -> Result<(Vec<Sample>, Usage), GenError> {
    let n = indices.len();
    let choices = wire::choices(v);
    if choices.len() != n {
        return Err(GenError::Backend(format!("{path} returned {} choices for n = {n}", choices.len())));
    }
    let usage = wire::usage(v);
    let samples = choices
        .iter()
        .zip(indices)
        .map(|(c, &index)| {
            let (text, token_logprobs) = if chat {
                (wire::chat_text(c), wire::chat_logprobs(c))
            } else {
                (c.get("text").and_then(Value::as_str).unwrap_or("").to_string(), wire::completion_logprobs(c).0)
            };
            // One choice: the server's count. Several: each choice's logprobs count (n
            // is only used when the server returns logprobs).
            let n_tokens = if n == 1 { usage.completion as usize } else { token_logprobs.len() };
            let token_bytes = wire::token_bytes(c, chat);
            Sample { index, text, n_tokens, token_logprobs, token_bytes, token_stats: Vec::new(), finish: wire::finish(c, stop) }
        })
        .collect();
    Ok((samples, usage))
}

/// The logprob of the top-k token that `candidate` starts with (the longest such; the
/// likeliest of equal texts), or -inf.
fn top_logprob(top: &[(String, f32)], candidate: &str) -> f32 {
    top.iter()
        .filter(|(tok, _)| !tok.is_empty() && candidate.starts_with(tok.as_str()))
        .max_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.1.total_cmp(&b.1)))
        .map_or(f32::NEG_INFINITY, |(_, lp)| *lp)
}
