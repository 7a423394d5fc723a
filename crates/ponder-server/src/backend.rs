//! What the gateway generates with: the in-process engine (one loaded model shared by all
//! requests, whose sequences join the same batches), an OpenAI-compatible upstream, or any
//! other generator a program hands it (`ponder bench serve --instant` measures the
//! gateway's own cost on one that answers at once).

use std::sync::Arc;

use async_trait::async_trait;
use ponder_core::{
    derive_seed, FinishReason, GenError, GenEvent, Generator, GeneratorInfo, Message, Role, Sample, SampleRequest,
    SampleStream, StepParams, StepSession, CancelToken, Usage,
};
use ponder_engine::Engine;
use ponder_core::answer::tools;
use ponder_http::{Api, HttpGenerator, StepMode};
use serde_json::{Map, Value};

use crate::settle::Meter;

#[derive(Clone)]
pub enum Backend {
    Engine(Engine),
    Http(HttpGenerator),
    /// A generator that renders and counts its own prompts (like an upstream, nothing is
    /// tokenized here): chat and raw requests both reach it as messages.
    Generator(Arc<dyn Generator>),
}

impl Backend {
    pub fn is_upstream(&self) -> bool {
        matches!(self, Backend::Http(_))
    }

    pub fn info(&self) -> GeneratorInfo {
        match self {
            Backend::Engine(e) => e.info(),
            Backend::Http(h) => h.info(),
            Backend::Generator(g) => g.info(),
        }
    }

    /// The reasoning markers the engine's chat template writes; an upstream renders its
    /// own template, unseen here, so a request names its markers.
    pub fn thinking_markers(&self) -> Option<ponder_core::reasoning::ThinkingMarkers> {
        match self {
            Backend::Engine(e) => e.thinking_markers(),
            Backend::Http(_) | Backend::Generator(_) => None,
        }
    }

    /// Whether step-wise sessions (search strategies) work on this backend.
    pub fn step_sessions(&self) -> bool {
        match self {
            Backend::Engine(_) | Backend::Generator(_) => true,
            Backend::Http(h) => h.step_mode() != StepMode::None,
        }
    }

    /// The generator for a chat request. `tools` are the request's tool definitions: an
    /// upstream gets them as they are; the engine gets them described in the system prompt.
    pub fn chat(&self, tools: Option<&Value>, tool_choice: Option<&Value>, pin: Option<usize>) -> Arc<dyn Generator> {
        match self {
            Backend::Engine(e) => Arc::new(EngineChat { engine: e.clone(), tools: tools.cloned() }),
            Backend::Http(h) => {
                let h = &pinned(h, pin);
                let mut extra = Map::new();
                if let Some(t) = tools {
                    extra.insert("tools".into(), t.clone());
                }
                if let Some(c) = tool_choice {
                    extra.insert("tool_choice".into(), c.clone());
                }
                if extra.is_empty() {
                    Arc::new(h.clone())
                } else {
                    Arc::new(h.with_extra(extra))
                }
            }
            Backend::Generator(g) => g.clone(),
        }
    }

    /// The generator for `/v1/completions`: a message's content is the raw prompt.
    pub fn raw(&self, pin: Option<usize>) -> Result<Arc<dyn Generator>, GenError> {
        Ok(match self {
            Backend::Engine(e) => Arc::new(EngineRaw(e.clone())),
            Backend::Http(h) => Arc::new(pinned(h, pin).with_api(Api::Completions)?),
            Backend::Generator(g) => g.clone(),
        })
    }

    /// The upstream a request's `x-ponder-upstream` header names: an index, or an
    /// endpoint's URL. An error says which exist.
    pub fn upstream_named(&self, name: &str) -> Result<usize, String> {
        let Backend::Http(h) = self else { return Err("this gateway runs on its own engine, not on upstream servers".into()) };
        let found = match name.trim().parse::<usize>() {
            Ok(i) => h.pinned(i).ok().map(|_| i),
            Err(_) => h.endpoint_of(name.trim()),
        };
        found.ok_or_else(|| format!("no upstream {name:?} (give an index from 0, or an endpoint URL this gateway was started with)"))
    }

    /// The conversation as prompt text.
    pub async fn render(&self, messages: &[Message]) -> Result<String, GenError> {
        match self {
            Backend::Engine(e) => e.render(&fold_tools(messages, None)),
            Backend::Http(h) => h.render(messages).await,
            Backend::Generator(_) => Err(GenError::Unsupported("this backend renders its prompts itself".into())),
        }
    }

    /// Prompt tokens of a chat request when the backend can count them locally.
    pub fn prompt_tokens(&self, messages: &[Message], tools: Option<&Value>) -> Result<Option<usize>, GenError> {
        match self {
            Backend::Engine(e) => {
                let n = e.tokenize(&e.render(&fold_tools(messages, tools))?).len();
                let ctx = e.info().context_len;
                if n >= ctx {
                    return Err(GenError::PromptTooLong { prompt_tokens: n, context: ctx });
                }
                Ok(Some(n))
            }
            Backend::Http(_) | Backend::Generator(_) => Ok(None),
        }
    }

    /// Tokens of a raw prompt when the backend can count them locally.
    pub fn raw_tokens(&self, text: &str) -> Option<usize> {
        match self {
            Backend::Engine(e) => Some(e.tokenize(text).len()),
            Backend::Http(_) | Backend::Generator(_) => None,
        }
    }

    /// For each prompt, the log-probabilities of each candidate's first token after
    /// `suffix`; each prompt's work goes through `meter` as it finishes, failed or not.
    pub async fn probe(
        &self,
        prompts: &[String],
        suffix: &str,
        candidates: &[String],
        meter: &Meter,
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        match self {
            Backend::Engine(e) => {
                let mut out = Vec::new();
                let mut usage = Usage::default();
                // At most 16 probe sessions at once: each holds engine sequences.
                for chunk in prompts.chunks(16) {
                    let calls = chunk.iter().map(|p| probe_one(e, p, suffix, candidates, meter));
                    for r in futures::future::join_all(calls).await {
                        let (lp, u) = r?;
                        out.push(lp);
                        usage += u;
                    }
                }
                Ok((out, usage))
            }
            Backend::Http(h) => {
                let (lps, usage) = h.probe_prompts(prompts, suffix, candidates).await?;
                meter.add(usage);
                Ok((lps, usage))
            }
            Backend::Generator(_) => Err(GenError::Unsupported("next-token probes of raw prompts on this backend".into())),
        }
    }
}

async fn probe_one(e: &Engine, prompt: &str, suffix: &str, candidates: &[String], meter: &Meter) -> Result<(Vec<f32>, Usage), GenError> {
    let mut s = e.open_tokens(e.tokenize(prompt), 0).await?;
    let root = s.root();
    let probed = s.probe(&[root], suffix, candidates).await;
    let usage = s.usage() + probed.as_ref().map(|(_, u)| *u).unwrap_or_default();
    meter.add(usage);
    let (mut lps, _) = probed?;
    Ok((lps.pop().unwrap_or_default(), usage))
}

/// Tool definitions described for a model without native tool support (Hermes style).
fn tools_prompt(tools: &Value) -> String {
    let list = tools.as_array().map(|a| a.iter().map(|t| t.get("function").unwrap_or(t).to_string()).collect::<Vec<_>>().join("\n"));
    format!(
        "You can call these tools:\n<tools>\n{}\n</tools>\nTo call a tool, answer with <tool_call>{{\"name\": NAME, \"arguments\": {{...}}}}</tool_call>.",
        list.unwrap_or_default()
    )
}

/// Messages for a backend that renders text itself: assistant tool calls written into the
/// content as `<tool_call>` blocks, tool definitions added to the system prompt.
pub fn fold_tools(messages: &[Message], tools: Option<&Value>) -> Vec<Message> {
    let mut out: Vec<Message> = messages
        .iter()
        .map(|m| {
            if m.tool_calls.is_empty() {
                return Message::new(m.role, m.content.clone());
            }
            let calls = tools::encode(&m.tool_calls);
            let content = if m.content.is_empty() { calls } else { format!("{}\n{calls}", m.content) };
            Message::new(m.role, content)
        })
        .collect();
    if let Some(t) = tools.filter(|t| t.as_array().is_some_and(|a| !a.is_empty())) {
        let text = tools_prompt(t);
        match out.first_mut() {
            Some(first) if first.role == Role::System => first.content = format!("{}\n\n{text}", first.content),
            _ => out.insert(0, Message::system(text)),
        }
    }
    out
}

/// The engine for chat requests, with tool definitions folded into the prompt.
struct EngineChat {
    engine: Engine,
    tools: Option<Value>,
}

#[async_trait]
impl Generator for EngineChat {
    fn info(&self) -> GeneratorInfo {
        self.engine.info()
    }
    async fn sample(&self, mut req: SampleRequest) -> Result<SampleStream, GenError> {
        req.messages = fold_tools(&req.messages, self.tools.as_ref());
        self.engine.sample(req).await
    }
    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        self.engine.open(&fold_tools(messages, self.tools.as_ref()), seed).await
    }
}

/// The engine on raw prompt text (no chat template): a step session whose root holds the
/// prompt, forked `n` times and extended once to the end.
struct EngineRaw(Engine);

impl EngineRaw {
    fn prompt(&self, messages: &[Message]) -> Result<Vec<ponder_engine::LlamaToken>, GenError> {
        let text: String = messages.iter().map(|m| m.content.as_str()).collect();
        if text.is_empty() {
            return Err(GenError::InvalidRequest("the prompt is empty".into()));
        }
        Ok(self.0.tokenize(&text))
    }
}

#[async_trait]
impl Generator for EngineRaw {
    fn info(&self) -> GeneratorInfo {
        self.0.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        req.params.validate()?;
        if req.n == 0 {
            return Err(GenError::InvalidRequest("n must be at least 1, got 0".into()));
        }
        ponder_core::reasoning::refuse_budget(&req.params, "raw completions")?;
        let tokens = self.prompt(&req.messages)?;
        let mut session = self.0.open_tokens(tokens, derive_seed(req.params.seed, req.first_index as u64)).await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut thinking = Usage::default();
            let run = async {
                let root = session.root();
                let branches = session.fork(root, req.n).await?;
                let params = StepParams {
                    sampling: req.params.clone(),
                    delimiter: None,
                    max_step_tokens: req.params.max_tokens,
                    max_total_tokens: req.params.max_tokens,
                };
                let steps = session.extend(&branches, &params).await?;
                Ok::<_, GenError>(steps)
            };
            match run.await {
                Ok(steps) => {
                    for (i, s) in steps.into_iter().enumerate() {
                        let finish = if s.finish == FinishReason::StepEnd {
                            FinishReason::Length
                        } else {
                            s.finish
                        };
                        let mut sample = Sample {
                            index: req.first_index + i,
                            text: s.text,
                            n_tokens: s.n_tokens,
                            token_logprobs: s.token_logprobs,
                            token_bytes: s.token_bytes,
                            token_stats: s.token_stats,
                            top_logprobs: s.top_logprobs,
                            finish,
                            n_thinking: None,
                        };
                        ponder_core::reasoning::count_reported(&req.params, &mut sample, &mut thinking);
                        let _ = tx.send(GenEvent::Sample(sample));
                    }
                }
                Err(error) => {
                    for index in req.first_index..req.first_index + req.n {
                        let _ = tx.send(GenEvent::Failed { index, error: error.clone() });
                    }
                }
            }
            let _ = tx.send(GenEvent::Done(session.usage() + thinking));
        });
        let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        Ok(SampleStream::new(events, CancelToken::default()))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        Ok(Box::new(self.0.open_tokens(self.prompt(messages)?, seed).await?))
    }
}

/// `h` sending every call to endpoint `pin` first (checked when the request was parsed).
fn pinned(h: &HttpGenerator, pin: Option<usize>) -> HttpGenerator {
    pin.and_then(|i| h.pinned(i).ok()).unwrap_or_else(|| h.clone())
}
