//! [`HttpGenerator`]: `Generator` over an OpenAI-compatible server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use ponder_core::{
    CancelToken, GenError, GenEvent, Generator, GeneratorInfo, Message, Sample, SampleRequest, SampleStream,
    SamplingParams, StepSession, Usage,
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
    /// The endpoint every call goes to first, in place of the prompt's (a request that
    /// names its server; a failed call is still retried on the next).
    pin: Option<usize>,
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
        Ok(HttpGenerator { shared: Arc::new(Shared { pool, caps, step_mode, first_tokens: Default::default() }), api, extra: Arc::new(Map::new()), pin: None })
    }

    pub fn caps(&self) -> &Caps {
        &self.shared.caps
    }

    /// What each endpoint answered and the tokens it reported, failed attempts included
    /// (generation calls only), in the order of the configuration.
    pub fn endpoint_stats(&self) -> Vec<crate::EndpointStats> {
        self.shared.pool.stats()
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

    /// The same backend sending every call to endpoint `i` first.
    pub fn pinned(&self, i: usize) -> Result<HttpGenerator, GenError> {
        let n = self.shared.pool.endpoints.len();
        if i >= n {
            return Err(GenError::InvalidRequest(format!("upstream {i} does not exist: there are {n} (0..{n})")));
        }
        Ok(HttpGenerator { pin: Some(i), ..self.clone() })
    }

    /// The endpoint index whose root or base URL is `url` (trailing slashes ignored).
    pub fn endpoint_of(&self, url: &str) -> Option<usize> {
        let url = url.trim_end_matches('/');
        self.shared.pool.endpoints.iter().position(|e| e.url.trim_end_matches('/') == url || e.root.trim_end_matches('/') == url)
    }

    /// Where a call keyed by `key` (its prompt) goes first: the pin, else the prompt's
    /// endpoint, so repeats of a prompt find it cached.
    pub(crate) fn route_for(&self, key: &str) -> usize {
        self.pin.unwrap_or_else(|| self.shared.pool.route(&key.to_string()))
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
        let route = self.route_for(&wire::messages(messages).to_string());
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
        let route = self.route_for(prompts.first().map_or("", String::as_str));
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
        // The lock is not held across `/tokenize`: probes of other requests go on meanwhile
        // (two asking for the same new candidate both ask the server; the answers agree).
        let missing: Vec<String> = {
            let known = self.shared.first_tokens.lock().await;
            candidates.iter().filter(|c| !known.contains_key(*c)).cloned().collect()
        };
        let mut found = Vec::with_capacity(missing.len());
        for c in missing {
            let got = self.shared.pool.probe(route, "/tokenize", Some(&json!({ "content": c, "with_pieces": true }))).await;
            let first = got.ok().and_then(|v| v.pointer("/tokens/0/piece").and_then(Value::as_str).map(str::to_string));
            if first.is_none() {
                tracing::debug!(candidate = c.as_str(), "no /tokenize: probe candidates are matched by their text");
            }
            found.push((c, first));
        }
        let mut known = self.shared.first_tokens.lock().await;
        known.extend(found);
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
                if p.token_stats_k.max(p.top_logprobs) > 0 {
                    body.insert("top_logprobs".into(), json!(p.token_stats_k.max(p.top_logprobs)));
                }
                for (k, v) in self.extra.iter() {
                    body.insert(k.clone(), v.clone());
                }
                ("/chat/completions", true)
            }
            Api::Completions => {
                body.insert("prompt".into(), json!(wire::raw_prompt(&req.messages)));
                if self.shared.caps.completion_logprobs {
                    body.insert("logprobs".into(), json!(p.token_stats_k.max(p.top_logprobs).max(1)));
                }
                ("/completions", false)
            }
        };
        if self.shared.caps.ponder {
            body.insert("ponder".into(), json!({ "strategy": "single", "progress": "none" }));
        }
        let (v, lost) = self.shared.pool.post(route, path, &Value::Object(body), Some(cancel)).await;
        let url = &self.shared.pool.endpoints[route % self.shared.pool.endpoints.len()].url;
        (v.and_then(|v| samples(&v, path, chat, indices, p)).map_err(|e| at_server(e, url)), lost)
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
        // Forcing the close marker needs the sequence in hand: over HTTP each budgeted
        // sample is a step-wise session continued after the forced text (issue 14).
        if let Some(t) = req.params.thinking.clone().filter(|t| t.budget.is_some()) {
            if self.api == Api::Completions {
                ponder_core::reasoning::refuse_budget(&req.params, "raw completions over HTTP")?;
            }
            crate::thinking::check(self, &req.params)?;
            return Ok(crate::thinking::sample(self, req, t));
        }
        let caps = &self.shared.caps;
        let logprobs = match self.api {
            Api::Chat => caps.chat_logprobs,
            Api::Completions => caps.completion_logprobs,
        };
        if req.params.token_stats_k > 0 && !logprobs {
            return Err(GenError::Unsupported(format!(
                "token statistics (token_stats_k = {}, DeepConf's confidence): the server at {} returns no logprobs on its {:?} endpoint",
                req.params.token_stats_k, self.shared.pool.endpoints[0].url, self.api
            )));
        }
        let route = self.route_for(&wire::messages(&req.messages).to_string());
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
                        // A request all of whose samples were stopped is aborted like a
                        // cancelled one; a request only some of them were stopped in runs on.
                        let (r, lost) = tokio::select! {
                            r = this.request(&req, &chunk, route, &token) => r,
                            () = all_stopped(&token, &chunk) => (Err(GenError::Backend("stopped".into())), 0),
                        };
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
                        for mut s in samples {
                            ponder_core::reasoning::count_reported(&req.params, &mut s, &mut usage);
                            let _ = tx.send(GenEvent::Sample(s));
                        }
                    }
                    // Cancelled samples are not failures: they are not reported. The aborted
                    // request's usage never comes, so what it computed is unknown, not zero.
                    Err(_) if token.is_cancelled() || chunk.iter().all(|&i| token.is_stopped(i)) => usage.unreported += 1,
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

/// Resolves once every sample of `chunk` has been stopped one by one.
async fn all_stopped(token: &CancelToken, chunk: &[usize]) {
    while !chunk.iter().all(|&i| token.is_stopped(i)) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// An `Unsupported` error from reading a response, with the server named.
fn at_server(e: GenError, url: &str) -> GenError {
    match e {
        GenError::Unsupported(what) => GenError::Unsupported(format!("{what} (server {url})")),
        e => e,
    }
}

/// The samples `indices` from one response, with its usage.
fn samples(v: &Value, path: &str, chat: bool, indices: &[usize], p: &SamplingParams) -> Result<(Vec<Sample>, Usage), GenError> {
    let n = indices.len();
    let choices = wire::choices(v);
    if choices.len() != n {
        return Err(GenError::Backend(format!("{path} returned {} choices for n = {n}", choices.len())));
    }
    let mut usage = wire::usage(v);
    let generated: Vec<(Sample, usize)> = choices
        .iter()
        .zip(indices)
        .map(|(c, &index)| -> Result<(Sample, usize), GenError> {
            let (text, token_logprobs) = if chat {
                (wire::chat_text(c), wire::chat_logprobs(c))
            } else {
                (c.get("text").and_then(Value::as_str).unwrap_or("").to_string(), wire::completion_logprobs(c).0)
            };
            // One choice: the server's count. Several: each choice's logprobs count (n
            // is only used when the server returns logprobs).
            let n_tokens = if n == 1 { usage.completion as usize } else { token_logprobs.len() };
            let token_bytes = wire::token_bytes(c, chat);
            let sample = Sample {
                index,
                text,
                n_tokens,
                token_logprobs,
                token_bytes,
                token_stats: Vec::new(),
                top_logprobs: Vec::new(),
                finish: wire::finish(c, &p.stop),
                n_thinking: None,
            };
            Ok((wire::with_tops(sample, c, p)?, n_tokens))
        })
        .collect::<Result<_, _>>()?;
    // A trace cut at its confidence stop: the server generated all of it (the count the
    // choice had before the cut), none of it answers.
    let dropped: usize = generated.iter().filter(|(s, _)| s.finish.is_dropped()).map(|(_, n)| n).sum();
    usage.dropped += dropped as u64;
    Ok((generated.into_iter().map(|(s, _)| s).collect(), usage))
}

/// The logprob of the top-k token that `candidate` starts with (the longest such; the
/// likeliest of equal texts), or -inf.
fn top_logprob(top: &[(String, f32)], candidate: &str) -> f32 {
    top.iter()
        .filter(|(tok, _)| !tok.is_empty() && candidate.starts_with(tok.as_str()))
        .max_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.1.total_cmp(&b.1)))
        .map_or(f32::NEG_INFINITY, |(_, lp)| *lp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_core::{ConfidenceStop, FinishReason};

    fn choice(tops: &[&[f32]]) -> Value {
        let content: Vec<Value> = tops
            .iter()
            .enumerate()
            .map(|(i, t)| json!({ "token": format!("t{i} "), "logprob": t[0], "top_logprobs": t.iter().map(|x| json!({ "token": "?", "logprob": x })).collect::<Vec<_>>() }))
            .collect();
        json!({ "index": 0, "message": { "content": "t0 t1 t2 t3 " }, "logprobs": { "content": content }, "finish_reason": "stop" })
    }

    fn sample_of(c: &Value, p: &SamplingParams) -> Result<Sample, GenError> {
        let v = json!({ "choices": [c], "usage": { "prompt_tokens": 3, "completion_tokens": 4 } });
        samples(&v, "/chat/completions", true, &[0], p).map(|(mut s, _)| s.remove(0))
    }

    #[test]
    fn top_logprobs_become_token_stats_and_a_low_group_cuts_the_trace() {
        let peaked: &[f32] = &[-0.01, -5.0];
        let flat: &[f32] = &[-0.7, -0.7];
        let c = choice(&[peaked, peaked, flat, flat]);
        let mut p = SamplingParams { token_stats_k: 2, ..SamplingParams::default() };
        let s = sample_of(&c, &p).unwrap();
        assert_eq!(s.token_stats.len(), 4);
        assert!(s.token_stats[0].confidence > s.token_stats[3].confidence);
        assert_eq!(s.finish, FinishReason::Eos);
        // Both asked: one read of the lists gives the statistics and the shorter lists.
        let both = sample_of(&c, &SamplingParams { top_logprobs: 1, ..p.clone() }).unwrap();
        assert_eq!((both.token_stats.len(), both.top_logprobs.iter().map(Vec::len).collect::<Vec<_>>()), (4, vec![1; 4]));

        // Groups of 2: 2.5, 1.6, 0.7. Under 1.0 first at token 3 (the fourth).
        p.confidence_stop = Some(ConfidenceStop { window: 2, threshold: 1.0 });
        let s = sample_of(&c, &p).unwrap();
        assert_eq!((s.text.as_str(), s.n_tokens, s.finish.clone()), ("t0 t1 t2 t3 ", 4, FinishReason::LowConfidence));
        let v = json!({ "choices": [&c], "usage": { "prompt_tokens": 3, "completion_tokens": 4 } });
        assert_eq!(samples(&v, "/chat/completions", true, &[0], &p).unwrap().1.dropped, 4, "the server generated all 4");
        p.confidence_stop = Some(ConfidenceStop { window: 2, threshold: 2.0 });
        let s = sample_of(&c, &p).unwrap();
        assert_eq!((s.text.as_str(), s.n_tokens, s.token_stats.len()), ("t0 t1 t2 ", 3, 3));
        let v = json!({ "choices": [&c], "usage": { "prompt_tokens": 3, "completion_tokens": 4 } });
        assert_eq!(samples(&v, "/chat/completions", true, &[0], &p).unwrap().1.dropped, 4, "cut at 3 of the 4 generated");
        p.confidence_stop = None;
        assert_eq!(samples(&v, "/chat/completions", true, &[0], &p).unwrap().1.dropped, 0);
    }

    #[test]
    fn a_server_without_top_logprobs_is_said_plainly() {
        let c = json!({ "index": 0, "message": { "content": "x" }, "logprobs": { "content": [{ "token": "x", "logprob": -0.5 }] } });
        let p = SamplingParams { token_stats_k: 5, ..SamplingParams::default() };
        let e = sample_of(&c, &p).unwrap_err();
        assert!(matches!(&e, GenError::Unsupported(m) if m.contains("top_logprobs")), "{e}");
        assert!(sample_of(&c, &SamplingParams::default()).is_ok(), "not asked, not needed");
    }
}
