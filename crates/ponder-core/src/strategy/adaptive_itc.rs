//! Adaptive inference-time compute (Manvi et al. 2024, "Adaptive Inference-Time Compute:
//! LLMs Can Predict if They Can Do Better, Even Mid-Generation", arXiv:2410.02725).
//! Budget unit: samples, at most N. Scoring signal: generative self-evaluation. The policy
//! model, shown its own partial or complete answer and the fixed `question` ("Would you do
//! better if you started over?"), puts probability on " Yes" and " No"; a sample's score is
//! p(No) / (p(Yes) + p(No)). Each probe is one scorer pass in usage; on the engine it reuses
//! the sample's KV and computes only the question.
//!
//! `mode = "draw-more"` (adaptive sampling, §4.1):
//! 1 draw samples `round_size` at a time (the paper grows its batches for latency; 1 spends
//!   the least)
//! 2 probe each sample as it finishes (forced into a branch of one session)
//! 3 stop once one has p(No) >= `threshold`, cancelling those still running, or at N
//!
//! `mode = "prune"` (early pruning, §4.2):
//! 1 start N samples as branches of one session; generate `prune_after` tokens of each
//! 2 probe every partial; keep the `keep` fraction with the highest p(No) (ties: the
//!   earlier), free the rest at once; a pruned sample is reported with its partial text,
//!   no answer, no score and finish `step_end`
//! 3 finish the survivors, and probe them again when `select` is `best`
//!
//! Either way the answer is the sample with the highest p(No) (`select = "best"`, the paper's
//! best-of-N with the self-evaluation as its reward) or the majority (`select = "vote"`).
//! The models here were not trained for this question as the paper's were; the probe is
//! then only as good as the model's untrained answer.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::rounds::{draw_in_rounds, Drawn, Settle};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{best_scored, majority, Candidate, Ctx, Outcome, Strategy, StrategyError, Track};
use crate::generator::{BranchId, FinishReason, SamplingParams, StepParams, StepSession};
use crate::process::{Aggregate, Partial, ProcessScorer, SelfEval};
use crate::{Message, Problem, Usage};

/// When the probe is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItcMode {
    /// After each finished sample: draw another or stop.
    #[default]
    DrawMore,
    /// After the first `prune_after` tokens of every sample: finish only the promising.
    Prune,
}

/// How the final answer is picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItcSelect {
    /// The sample with the highest p(No).
    #[default]
    Best,
    /// The majority answer of the finished samples.
    Vote,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveItcConfig {
    /// Most samples N.
    pub n: usize,
    pub mode: ItcMode,
    /// Draw more: stop once a sample's p(No) reaches this.
    pub threshold: f64,
    /// Draw more: samples started together.
    pub round_size: usize,
    /// Prune: tokens of each sample generated before the probe (the paper prunes at 64 or 128).
    pub prune_after: u32,
    /// Prune: fraction of the samples finished (the paper prunes 50-75%).
    pub keep: f64,
    pub select: ItcSelect,
    /// Appended after the (partial) answer; answered by " Yes" or " No".
    pub question: String,
}

impl Default for AdaptiveItcConfig {
    fn default() -> Self {
        Self {
            n: 8,
            mode: ItcMode::DrawMore,
            threshold: 0.9,
            round_size: 1,
            prune_after: 64,
            keep: 0.5,
            select: ItcSelect::Best,
            question: "\n\nWould you do better if you started over? (\"Yes.\" or \"No.\")\nAnswer:".into(),
        }
    }
}

impl StrategyConfig for AdaptiveItcConfig {
    fn name(&self) -> &'static str {
        "adaptive-itc"
    }
    fn about(&self) -> &'static str {
        "adaptive inference-time compute (Manvi et al. 2024): the model asks itself whether to draw more, or prunes samples mid-generation"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples (at most)"
    }
    fn needs(&self) -> Needs {
        Needs { session: true, ..Needs::default() }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        let t = self.threshold;
        ConfigError::check(t > 0.0 && t <= 1.0, "threshold", || format!("must be in (0, 1], got {t}"))?;
        ConfigError::check(self.round_size >= 1, "round_size", || "must be at least 1, got 0".into())?;
        ConfigError::check(self.prune_after >= 1, "prune_after", || "must be at least 1, got 0".into())?;
        let k = self.keep;
        ConfigError::check(k > 0.0 && k <= 1.0, "keep", || format!("must be in (0, 1], got {k}"))?;
        ConfigError::check(!self.question.is_empty(), "question", || "must not be empty".into())
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(AdaptiveItc { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct AdaptiveItc {
    pub config: AdaptiveItcConfig,
    pub sampling: SamplingParams,
}

impl AdaptiveItc {
    /// p(No) of each branch, with the probes' usage. Self-evaluation's "good" token is here
    /// " No": "no, I would not do better".
    async fn no_better(
        &self,
        problem: &Problem,
        session: &mut dyn StepSession,
        branches: &[BranchId],
    ) -> Result<(Vec<f64>, Usage), StrategyError> {
        let judge = SelfEval { question: self.config.question.clone(), yes: " No".into(), no: " Yes".into() };
        let partials: Vec<Partial<'_>> = branches.iter().map(|&branch| Partial { branch, steps: &[], finished: false }).collect();
        let scores = judge.score_steps(problem, &partials, Some(session)).await?;
        Ok((scores.values, scores.usage))
    }

    fn decide(&self, candidates: Vec<Candidate>, usage: Usage, n_failed: usize, stopped_early: bool) -> Outcome {
        match self.config.select {
            ItcSelect::Best => best_scored(self.name(), candidates, usage, n_failed, stopped_early),
            ItcSelect::Vote => majority(self.name(), candidates, usage, n_failed, stopped_early),
        }
    }

    async fn draw_more(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let session = ctx.generator.open(messages, self.sampling.seed).await?;
        let mut rule = NoBetter { itc: self, problem, session };
        let (n, round) = (self.config.n, self.config.round_size);
        let mut d = draw_in_rounds(messages, n, round, &self.sampling, ctx, &mut rule).await?;
        d.usage += rule.session.usage();
        d.candidates.sort_by_key(|c| c.index);
        Ok(self.decide(d.candidates, d.usage, d.n_failed, d.stopped_early))
    }

    async fn prune(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let (n, max_tokens) = (self.config.n, self.sampling.max_tokens.max(1));
        let mut session = ctx.generator.open(messages, self.sampling.seed).await?;
        let root = session.root();
        let mut tracks: Vec<Track> = session.fork(root, n).await?.into_iter().map(Track::new).collect();
        // Step 1: the first `prune_after` tokens of each.
        let all: Vec<usize> = (0..n).collect();
        extend(session.as_mut(), &mut tracks, &all, &self.step(self.config.prune_after.min(max_tokens))).await?;
        // Step 2: probe every partial, keep the most promising.
        let branches: Vec<BranchId> = tracks.iter().map(|t| t.branch).collect();
        let (scores, mut usage) = self.no_better(problem, session.as_mut(), &branches).await?;
        let survivors = most_promising(&scores, self.config.keep);
        let pruned: Vec<BranchId> = all.iter().filter(|i| !survivors.contains(i)).map(|&i| tracks[i].branch).collect();
        session.release(&pruned).await?;
        for (t, s) in tracks.iter_mut().zip(scores) {
            t.scores.push(s);
        }
        // Step 3: finish the survivors (each branch ends at `max_tokens` in all).
        let live: Vec<usize> = survivors.iter().copied().filter(|&i| !tracks[i].is_finished()).collect();
        extend(session.as_mut(), &mut tracks, &live, &self.step(max_tokens)).await?;
        if self.config.select == ItcSelect::Best {
            let branches: Vec<BranchId> = survivors.iter().map(|&i| tracks[i].branch).collect();
            let (scores, probe_usage) = self.no_better(problem, session.as_mut(), &branches).await?;
            usage += probe_usage;
            for (&i, s) in survivors.iter().zip(scores) {
                tracks[i].scores.push(s);
            }
        }
        usage += session.usage();
        let candidates = tracks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let c = t.candidate(i, Aggregate::Last, ctx);
                let survived = survivors.contains(&i);
                if survived { c } else { Candidate { answer: None, key: None, score: None, finish: FinishReason::StepEnd, ..c } }
            })
            .collect();
        Ok(self.decide(candidates, usage, 0, survivors.len() < n))
    }

    /// One step of at most `tokens` tokens, no delimiter; a branch ends at `max_tokens`.
    fn step(&self, tokens: u32) -> StepParams {
        let max_total_tokens = self.sampling.max_tokens.max(1);
        StepParams { sampling: self.sampling.clone(), delimiter: None, max_step_tokens: tokens.max(1), max_total_tokens }
    }
}

/// Prune step 2: positions of the `keep` fraction (at least one) with the highest p(No),
/// the earlier first on ties; in position order.
pub fn most_promising(scores: &[f64], keep: f64) -> Vec<usize> {
    let n_keep = ((scores.len() as f64 * keep).ceil() as usize).clamp(1.min(scores.len()), scores.len());
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = order[..n_keep].to_vec();
    kept.sort_unstable();
    kept
}

/// Extends the tracks at `which` by one step, in one batch.
async fn extend(session: &mut dyn StepSession, tracks: &mut [Track], which: &[usize], params: &StepParams) -> Result<(), StrategyError> {
    if which.is_empty() {
        return Ok(());
    }
    let branches: Vec<BranchId> = which.iter().map(|&i| tracks[i].branch).collect();
    for (&i, step) in which.iter().zip(session.extend(&branches, params).await?) {
        tracks[i].push(step);
    }
    Ok(())
}

/// Draw-more steps 2-3: each finished sample is forced into a fresh branch and probed;
/// settled once one says p(No) >= `threshold`.
struct NoBetter<'a> {
    itc: &'a AdaptiveItc,
    problem: &'a Problem,
    session: Box<dyn StepSession>,
}

#[async_trait]
impl Settle for NoBetter<'_> {
    async fn settle(&mut self, drawn: &mut Drawn, fresh: bool) -> Result<bool, StrategyError> {
        let Some(c) = drawn.candidates.last_mut().filter(|_| fresh) else { return Ok(false) };
        let root = self.session.root();
        let branch = self.session.fork(root, 1).await?;
        self.session.append(branch[0], &c.text).await?;
        let (scores, usage) = self.itc.no_better(self.problem, self.session.as_mut(), &branch).await?;
        self.session.release(&branch).await?;
        drawn.usage += usage;
        c.score = scores.first().copied();
        Ok(c.score.is_some_and(|p| p >= self.itc.config.threshold))
    }
}

#[async_trait]
impl Strategy for AdaptiveItc {
    fn name(&self) -> &str {
        "adaptive-itc"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        match self.config.mode {
            ItcMode::DrawMore => self.draw_more(problem, messages, ctx).await,
            ItcMode::Prune => self.prune(problem, messages, ctx).await,
        }
    }
}

#[cfg(test)]
#[path = "adaptive_itc_tests.rs"]
mod tests;
