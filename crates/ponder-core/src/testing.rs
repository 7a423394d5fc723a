//! A deterministic generator for tests: samples are drawn from a fixed menu of texts by a
//! seeded RNG. It exists so strategies can be tested without a model; it is never a stand-in
//! for the engine in integration tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::answer::Equivalence;
use crate::generator::*;
use crate::process::{Partial, ProcessScorer};
use crate::strategy::Ctx;
use crate::scorer::{ScoreError, Scores};
use crate::{Message, Problem, Usage};

/// One possible sample text with its relative weight, per-token logprob and per-token
/// confidence (reported when `token_stats_k > 0`).
#[derive(Debug, Clone)]
pub struct Choice {
    pub text: String,
    pub weight: f64,
    pub logprob: f32,
    pub confidence: f32,
}

impl Choice {
    /// A choice whose tokens' confidence is `-logprob` (more likely, more confident).
    pub fn new(text: impl Into<String>, weight: f64, logprob: f32) -> Self {
        Self { text: text.into(), weight, logprob, confidence: -logprob }
    }

    pub fn with_confidence(self, confidence: f32) -> Self {
        Self { confidence, ..self }
    }
}

/// The log-probability a scripted probe gives `candidate` after a branch holding `text`.
pub type ProbeRule = Arc<dyn Fn(&str, &str) -> f32 + Send + Sync>;

/// Draws each sample from `choices` with `derive_seed(seed, index)`; a token is a word.
#[derive(Clone)]
pub struct ScriptedGenerator {
    choices: Arc<Vec<Choice>>,
    /// Samples whose generation started (cancelled ones included).
    started: Arc<AtomicUsize>,
    /// Sample indices that fail (partial-failure tests).
    failing: Arc<Vec<usize>>,
    /// Answers `StepSession::probe`; without one, probes are unsupported.
    probe: Option<ProbeRule>,
    /// Replies to a conversation it recognises (revision, critique), in place of `choices`.
    reply: Option<ReplyRule>,
}

/// The text every sample of a request gets, when the rule knows the conversation.
pub type ReplyRule = Arc<dyn Fn(&[Message]) -> Option<String> + Send + Sync>;

impl ScriptedGenerator {
    pub fn new(choices: Vec<Choice>) -> Self {
        Self { choices: Arc::new(choices), started: Arc::default(), failing: Arc::default(), probe: None, reply: None }
    }

    /// Samples of a conversation `rule` recognises are its text, not a pick from `choices`.
    pub fn with_reply(mut self, rule: impl Fn(&[Message]) -> Option<String> + Send + Sync + 'static) -> Self {
        self.reply = Some(Arc::new(rule));
        self
    }

    /// Sessions answer probes by `rule(branch text, candidate)`, one scorer pass per branch.
    pub fn with_probe(mut self, rule: impl Fn(&str, &str) -> f32 + Send + Sync + 'static) -> Self {
        self.probe = Some(Arc::new(rule));
        self
    }

    /// Makes the samples with these indices fail.
    pub fn failing(mut self, indices: Vec<usize>) -> Self {
        self.failing = Arc::new(indices);
        self
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn pick(&self, seed: u64) -> &Choice {
        let total: f64 = self.choices.iter().map(|c| c.weight).sum();
        let mut x = ChaCha8Rng::seed_from_u64(seed).gen::<f64>() * total;
        for c in self.choices.iter() {
            if x < c.weight {
                return c;
            }
            x -= c.weight;
        }
        self.choices.last().expect("a scripted generator has at least one choice")
    }
}

fn n_words(s: &str) -> usize {
    s.split_whitespace().count()
}

fn prompt_tokens(messages: &[Message]) -> u64 {
    messages.iter().map(|m| n_words(&m.content) as u64).sum()
}

#[async_trait]
impl Generator for ScriptedGenerator {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo { backend: "scripted".into(), model: "scripted".into(), context_len: 1 << 20, n_params: 0 }
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        req.params.validate()?;
        if req.n == 0 {
            return Err(GenError::InvalidRequest("n must be at least 1, got 0".into()));
        }
        let cancel = CancelToken::default();
        let me = self.clone();
        let token = cancel.clone();
        let mut usage = Usage { prompt_computed: prompt_tokens(&req.messages), ..Usage::default() };
        let reply = self.reply.as_ref().and_then(|r| r(&req.messages)).map(|text| Choice::new(text, 1.0, -1.0));
        // Samples are produced lazily, one per poll, so cancellation is observable.
        let indices = req.first_index..req.first_index + req.n;
        let stream = futures::stream::iter(indices.map(Some).chain(std::iter::once(None))).filter_map(move |i| {
            let me = me.clone();
            let token = token.clone();
            let params = req.params.clone();
            let ev = match i {
                _ if token.is_cancelled() && i.is_some() => None,
                Some(index) => {
                    me.started.fetch_add(1, Ordering::SeqCst);
                    if me.failing.contains(&index) {
                        Some(GenEvent::Failed { index, error: GenError::Backend(format!("scripted failure of sample {index}")) })
                    } else {
                        let c = reply.clone().unwrap_or_else(|| me.pick(derive_seed(params.seed, index as u64)).clone());
                        let words: Vec<&str> = c.text.split_whitespace().collect();
                        let mut n = words.len().max(1);
                        let (mut text, mut finish) = (c.text.clone(), FinishReason::Eos);
                        // Every token of a choice is equally confident, so a confidence
                        // stop ends it after its first full window, as an engine would.
                        if let Some(stop) = params.confidence_stop {
                            let window = stop.window as usize;
                            if c.confidence < stop.threshold && n > window {
                                n = window;
                                text = words[..window].join(" ");
                                finish = FinishReason::LowConfidence;
                            }
                        }
                        usage.completion += n as u64;
                        // Words are the tokens here: those inside reasoning spans are thinking.
                        let n_thinking = params.thinking.as_ref().map(|t| {
                            let words = word_ranges(&text);
                            t.markers.thinking_tokens(text.as_bytes(), &words, false)
                        });
                        usage.thinking += n_thinking.unwrap_or(0) as u64;
                        let stats = TokenStats { confidence: c.confidence, entropy: 0.0 };
                        Some(GenEvent::Sample(Sample {
                            index,
                            text,
                            n_tokens: n,
                            token_logprobs: vec![c.logprob; n],
                            token_bytes: Vec::new(),
                            token_stats: if params.token_stats_k > 0 { vec![stats; n] } else { Vec::new() },
                            top_logprobs: Vec::new(),
                            finish,
                            n_thinking,
                        }))
                    }
                }
                None => Some(GenEvent::Done(usage)),
            };
            futures::future::ready(ev)
        });
        Ok(SampleStream::new(stream, cancel))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        let usage = Usage { prompt_computed: prompt_tokens(messages), ..Usage::default() };
        let mut branches = HashMap::new();
        branches.insert(0, ScriptedBranch { seed, done: String::new(), text: None });
        Ok(Box::new(ScriptedSession { generator: self.clone(), branches, next_id: 1, usage }))
    }
}

struct ScriptedBranch {
    seed: u64,
    /// Text generated so far.
    done: String,
    /// The full text this branch is heading for, picked at its first step.
    text: Option<String>,
}

/// Step-wise session over scripted texts: a branch commits to a text at its first step
/// among those that extend what it has so far, then reveals one step per `extend`.
pub struct ScriptedSession {
    generator: ScriptedGenerator,
    branches: HashMap<BranchId, ScriptedBranch>,
    next_id: BranchId,
    usage: Usage,
}

#[async_trait]
impl StepSession for ScriptedSession {
    fn root(&self) -> BranchId {
        0
    }

    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        let parent = self.branches.get(&branch).ok_or(GenError::UnknownBranch(branch))?;
        let (seed, done) = (parent.seed, parent.done.clone());
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            self.branches.insert(id, ScriptedBranch { seed: derive_seed(seed, id), done: done.clone(), text: None });
            ids.push(id);
        }
        Ok(ids)
    }

    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError> {
        let mut out = Vec::with_capacity(branches.len());
        for &id in branches {
            let gen = self.generator.clone();
            let b = self.branches.get_mut(&id).ok_or(GenError::UnknownBranch(id))?;
            if b.text.is_none() {
                let fitting: Vec<Choice> =
                    gen.choices.iter().filter(|c| c.text.starts_with(&b.done)).cloned().collect();
                let text = if fitting.is_empty() {
                    b.done.clone()
                } else {
                    ScriptedGenerator::new(fitting).pick(b.seed).text.clone()
                };
                b.text = Some(text);
            }
            let full = b.text.as_deref().unwrap_or_default();
            let rest = &full[b.done.len()..];
            let (mut step, mut finish) = match params.delimiter.as_deref().and_then(|d| rest.find(d).map(|p| (p, d))) {
                Some((p, d)) if p + d.len() < rest.len() => (&rest[..p + d.len()], FinishReason::StepEnd),
                _ => (rest, FinishReason::Eos),
            };
            // A step longer than `max_step_tokens` words is cut after its last whole word.
            let ends = word_ends(step);
            let max = (params.max_step_tokens as usize).max(1);
            if ends.len() > max {
                step = &step[..ends[max - 1]];
                finish = FinishReason::StepEnd;
            }
            let step = step.to_string();
            let n = n_words(&step).max(1);
            b.done.push_str(&step);
            self.usage.completion += n as u64;
            out.push(Step { branch: id, text: step, n_tokens: n, token_logprobs: vec![-0.5; n], token_bytes: Vec::new(), token_stats: Vec::new(), top_logprobs: Vec::new(), finish });
        }
        Ok(out)
    }

    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        let b = self.branches.get_mut(&branch).ok_or(GenError::UnknownBranch(branch))?;
        // A token is a word, as in `n_words`: cut where word `n_tokens + 1` starts, so runs of
        // whitespace such as the "\n\n" step delimiter do not count as tokens.
        let done = &b.done;
        let cut = done
            .char_indices()
            .filter(|&(i, c)| !c.is_whitespace() && done[..i].chars().next_back().is_none_or(char::is_whitespace))
            .nth(n_tokens)
            .map_or(done.len(), |(i, _)| i);
        b.done.truncate(cut);
        b.text = None;
        Ok(())
    }

    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError> {
        for id in branches {
            self.branches.remove(id).ok_or(GenError::UnknownBranch(*id))?;
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    async fn append(&mut self, branch: BranchId, text: &str) -> Result<(), GenError> {
        let b = self.branches.get_mut(&branch).ok_or(GenError::UnknownBranch(branch))?;
        b.done.push_str(text);
        b.text = None;
        self.usage.prompt_computed += n_words(text) as u64;
        Ok(())
    }

    async fn probe(
        &mut self,
        branches: &[BranchId],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        let Some(rule) = self.generator.probe.clone() else {
            return Err(GenError::Unsupported("next-token probes on this scripted generator".into()));
        };
        let mut out = Vec::with_capacity(branches.len());
        for id in branches {
            let b = self.branches.get(id).ok_or(GenError::UnknownBranch(*id))?;
            out.push(candidates.iter().map(|c| rule(&b.done, c)).collect());
        }
        let n = branches.len() as u64;
        Ok((out, Usage { prompt_computed: n * n_words(suffix) as u64, scorer_passes: n, ..Usage::default() }))
    }
}

/// Where each whitespace-separated word of `s` ends (byte offsets).
fn word_ends(s: &str) -> Vec<usize> {
    s.split_whitespace().map(|w| w.as_ptr() as usize - s.as_ptr() as usize + w.len()).collect()
}

/// A scripted generator whose samples pass through `map`: a backend that leaves out a
/// report (log-probabilities, token confidence), to test that strategies say so.
pub struct MapSamples(pub ScriptedGenerator, pub fn(Sample) -> Sample);

#[async_trait]
impl Generator for MapSamples {
    fn info(&self) -> GeneratorInfo {
        self.0.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        let (got, map) = (self.0.sample(req).await?.collect().await?, self.1);
        let samples = got.samples.into_iter().map(move |s| GenEvent::Sample(map(s)));
        let events = futures::stream::iter(samples.chain(std::iter::once(GenEvent::Done(got.usage))));
        Ok(SampleStream::new(events, CancelToken::default()))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        self.0.open(messages, seed).await
    }
}

/// A process scorer for tests: each partial's newest step is scored by a rule on its text,
/// one scorer pass per partial. It counts the partials it scored, and passes bad values
/// (NaN, out of range) through so that strategies' checks can be tested.
#[derive(Clone)]
pub struct ScriptedProcessScorer {
    rule: Arc<dyn Fn(&str) -> f64 + Send + Sync>,
    scored: Arc<AtomicUsize>,
}

impl ScriptedProcessScorer {
    pub fn new(rule: impl Fn(&str) -> f64 + Send + Sync + 'static) -> Self {
        Self { rule: Arc::new(rule), scored: Arc::default() }
    }

    /// Partials scored so far.
    pub fn scored(&self) -> usize {
        self.scored.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ProcessScorer for ScriptedProcessScorer {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn score_steps(
        &self,
        _problem: &Problem,
        partials: &[Partial<'_>],
        _session: Option<&mut dyn StepSession>,
    ) -> Result<Scores, ScoreError> {
        self.scored.fetch_add(partials.len(), Ordering::SeqCst);
        let values = partials.iter().map(|p| (self.rule)(p.steps.last().map_or("", String::as_str))).collect();
        Ok(Scores { values, usage: Usage { scorer_passes: partials.len() as u64, ..Usage::default() } })
    }
}

/// Answers compared as written (trimmed), for strategy tests on scripted menus.
pub struct ExactAnswers;

impl Equivalence for ExactAnswers {
    fn key(&self, answer: &str) -> String {
        answer.trim().to_string()
    }
}

/// The text after the last "answer: ", the scripted menus' answer format.
pub fn after_answer(text: &str) -> Option<String> {
    text.rsplit_once("answer: ").map(|(_, a)| a.trim().to_string()).filter(|a| !a.is_empty())
}

/// A context on `generator` that votes on [`after_answer`] by [`ExactAnswers`], with no
/// scorer or verifier.
pub fn answer_ctx(generator: &dyn Generator) -> Ctx<'_> {
    Ctx { generator, equivalence: &ExactAnswers, extract: &after_answer, scorer: None, process: None, verifier: None, thinking: None }
}

/// The problem the scripted strategy tests solve: "q", gold 42.
pub fn problem_42() -> Problem {
    Problem { id: "t/1".into(), question: "q".into(), gold: "42".into(), level: None, steps: Vec::new() }
}

/// Byte ranges of the whitespace-separated words of `text`.
fn word_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}
