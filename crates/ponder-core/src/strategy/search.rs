//! What the step-level search strategies (beam, DVTS, particle filtering, particle Gibbs,
//! A*) share: their step configuration and the bookkeeping of branches in a step session.
//!
//! [`Searcher`] is the one place where a search touches its session: it extends every
//! unfinished branch it is given in one `extend` call (one batch on the engine), scores
//! exactly the branches it just extended, and keeps the set of branches it holds so that
//! dropped branches are released at once and never twice.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::generator::{BranchId, FinishReason, GenError, SamplingParams, Step, StepParams, StepSession};
use crate::process::{self, Aggregate, Partial, ProcessScorer};
use crate::{Message, Problem, Usage};

use super::spec::ConfigError;
use super::{Candidate, Ctx, Outcome, StrategyError};

/// How a search cuts solutions into steps and scores branches: the part of the
/// configuration every search strategy shares. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepConfig {
    /// Ends a step (kept in its text); empty: steps end only at `max_step_tokens`.
    pub delimiter: String,
    /// Most tokens in one step; a longer step is cut there (and may go on next step).
    pub max_step_tokens: u32,
    /// Most steps before every live branch is stopped.
    pub max_steps: usize,
    /// How a branch's step scores become one score.
    pub aggregate: Aggregate,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self { delimiter: "\n\n".into(), max_step_tokens: 128, max_steps: 40, aggregate: Aggregate::Last }
    }
}

impl StepConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check(self.max_step_tokens >= 1, "step.max_step_tokens", || "must be at least 1, got 0".into())?;
        ConfigError::check(self.max_steps >= 1, "step.max_steps", || "must be at least 1, got 0".into())
    }

    /// Step parameters for a solution capped at `sampling.max_tokens` tokens in total.
    pub fn step_params(&self, sampling: &SamplingParams) -> StepParams {
        StepParams {
            sampling: sampling.clone(),
            delimiter: (!self.delimiter.is_empty()).then(|| self.delimiter.clone()),
            max_step_tokens: self.max_step_tokens.min(sampling.max_tokens).max(1),
            max_total_tokens: sampling.max_tokens.max(1),
        }
    }

    /// `max_steps`, at least one step.
    pub fn steps(&self) -> usize {
        self.max_steps.max(1)
    }
}

/// Children per expanded branch (M) for a budget, within `1..=budget`.
pub fn clamp_width(width: usize, budget: usize) -> usize {
    width.clamp(1, budget.max(1))
}

/// One branch of a search: its steps, their scores and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub branch: BranchId,
    pub steps: Vec<String>,
    pub scores: Vec<f64>,
    pub n_tokens: usize,
    /// Sum of chosen-token logprobs, for the candidate's mean logprob.
    pub logprob_sum: f64,
    /// `Some` once the branch ended (anything but a step end).
    pub finish: Option<FinishReason>,
    /// Tokens of each step, so a prefix of the track can be rebuilt (particle Gibbs).
    pub step_tokens: Vec<usize>,
    /// Sum of chosen-token logprobs of each step.
    pub step_logprobs: Vec<f64>,
}

impl Track {
    pub fn new(branch: BranchId) -> Self {
        Self {
            branch,
            steps: Vec::new(),
            scores: Vec::new(),
            n_tokens: 0,
            logprob_sum: 0.0,
            finish: None,
            step_tokens: Vec::new(),
            step_logprobs: Vec::new(),
        }
    }

    /// A copy for a forked branch.
    pub fn fork_as(&self, branch: BranchId) -> Self {
        Self { branch, ..self.clone() }
    }

    pub fn push(&mut self, step: Step) {
        let logprob = step.token_logprobs.iter().map(|&x| f64::from(x)).sum::<f64>();
        self.n_tokens += step.n_tokens;
        self.logprob_sum += logprob;
        self.step_tokens.push(step.n_tokens);
        self.step_logprobs.push(logprob);
        if step.is_final() {
            self.finish = Some(step.finish);
        }
        self.steps.push(step.text);
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// Its first `n` steps (all of it when it has fewer), with their scores; finished only
    /// when that is the whole finished track. The branch is this track's own, not rolled back.
    pub fn prefix(&self, n: usize) -> Track {
        let n = n.min(self.steps.len());
        let whole = n == self.steps.len();
        let step_tokens = self.step_tokens[..n.min(self.step_tokens.len())].to_vec();
        let step_logprobs = self.step_logprobs[..n.min(self.step_logprobs.len())].to_vec();
        Track {
            branch: self.branch,
            steps: self.steps[..n].to_vec(),
            scores: self.scores[..n.min(self.scores.len())].to_vec(),
            n_tokens: if whole { self.n_tokens } else { step_tokens.iter().sum() },
            logprob_sum: if whole { self.logprob_sum } else { step_logprobs.iter().sum() },
            finish: if whole { self.finish.clone() } else { None },
            step_tokens,
            step_logprobs,
        }
    }

    pub fn text(&self) -> String {
        self.steps.concat()
    }

    pub fn partial(&self) -> Partial<'_> {
        Partial { branch: self.branch, steps: &self.steps, finished: self.is_finished() }
    }

    /// The aggregate of its step scores.
    pub fn score(&self, aggregate: Aggregate) -> f64 {
        aggregate.apply(&self.scores)
    }

    /// The candidate this track is, at position `index` of the outcome.
    pub fn candidate(&self, index: usize, aggregate: Aggregate, ctx: &Ctx<'_>) -> Candidate {
        let text = self.text();
        let answer = ctx.answer_of(&text);
        let key = answer.as_deref().map(|a| ctx.equivalence.key(a));
        Candidate {
            index,
            text,
            answer,
            key,
            n_tokens: self.n_tokens,
            mean_logprob: (self.n_tokens > 0).then(|| self.logprob_sum / self.n_tokens as f64),
            finish: self.finish.clone().unwrap_or(FinishReason::Length),
            score: Some(self.score(aggregate)),
        }
    }
}

/// The first of the best-scoring tracks.
pub(crate) fn best(tracks: &[Track], aggregate: Aggregate) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, t) in tracks.iter().enumerate() {
        let s = t.score(aggregate);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// What a search returns: the finished tracks, or every survivor when none finished.
pub(crate) fn pool(tracks: Vec<Track>) -> Vec<Track> {
    if tracks.iter().any(Track::is_finished) {
        tracks.into_iter().filter(Track::is_finished).collect()
    } else {
        tracks
    }
}

/// The outcome: `tracks` become the candidates, `chosen` indexes them.
pub(crate) fn outcome(
    strategy: &str,
    tracks: &[Track],
    chosen: Option<usize>,
    aggregate: Aggregate,
    ctx: &Ctx<'_>,
    usage: Usage,
    stopped_early: bool,
) -> Outcome {
    let candidates: Vec<Candidate> = tracks.iter().enumerate().map(|(i, t)| t.candidate(i, aggregate, ctx)).collect();
    Outcome {
        strategy: strategy.into(),
        answer: chosen.and_then(|i| candidates.get(i)).and_then(|c| c.answer.clone()),
        chosen,
        candidates,
        votes: Vec::new(),
        usage,
        n_failed: 0,
        stopped_early,
        abstained: false,
        counts: Default::default(),
    }
}

/// A search's hold on its step session and its process scorer.
pub(crate) struct Searcher<'a> {
    session: Box<dyn StepSession>,
    scorer: &'a dyn ProcessScorer,
    problem: &'a Problem,
    params: StepParams,
    scorer_usage: Usage,
    /// Step scorings so far, one per partial scored (A*'s budget unit).
    pub scored: usize,
    /// Branches this search holds in the session: released ones are never released again.
    alive: BTreeSet<BranchId>,
    /// Keep finished branches in the session (particle Gibbs forks its reference from one);
    /// otherwise they are released as soon as they are scored.
    pub keep_finished: bool,
}

impl<'a> Searcher<'a> {
    /// Checks for a process scorer and a budget, then opens the session.
    pub async fn open(
        strategy: &str,
        budget: usize,
        problem: &'a Problem,
        messages: &[Message],
        ctx: &Ctx<'a>,
        sampling: &SamplingParams,
        step: &StepConfig,
    ) -> Result<Self, StrategyError> {
        let scorer = ctx.process.ok_or_else(|| StrategyError::NeedsProcessScorer(strategy.into()))?;
        if budget == 0 {
            return Err(StrategyError::InvalidBudget(0));
        }
        let session = ctx.generator.open(messages, sampling.seed).await?;
        let alive = BTreeSet::from([session.root()]);
        Ok(Self {
            session,
            scorer,
            problem,
            params: step.step_params(sampling),
            scorer_usage: Usage::default(),
            scored: 0,
            alive,
            keep_finished: false,
        })
    }

    /// The track of the root branch (just the prompt).
    pub fn root(&self) -> Track {
        Track::new(self.session.root())
    }

    /// Generation and scoring so far.
    pub fn usage(&self) -> Usage {
        self.session.usage() + self.scorer_usage
    }

    /// `n` new tracks continuing `track` (KV shared on the engine).
    pub async fn fork(&mut self, track: &Track, n: usize) -> Result<Vec<Track>, StrategyError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let ids = self.session.fork(track.branch, n).await?;
        if ids.len() != n {
            return Err(GenError::Backend(format!("fork returned {} branches for {n}", ids.len())).into());
        }
        self.alive.extend(ids.iter().copied());
        Ok(ids.into_iter().map(|id| track.fork_as(id)).collect())
    }

    /// `n` children of `track`: the track itself goes on as the first (no copy needed).
    pub async fn expand(&mut self, track: Track, n: usize) -> Result<Vec<Track>, StrategyError> {
        let mut out = self.fork(&track, n.saturating_sub(1)).await?;
        out.insert(0, track);
        Ok(out)
    }

    /// Keeps the first `n_tokens` generated tokens of a branch.
    pub async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), StrategyError> {
        Ok(self.session.rollback(branch, n_tokens).await?)
    }

    /// Frees the branches still held among `ids` (each once).
    pub async fn release(&mut self, ids: impl IntoIterator<Item = BranchId>) -> Result<(), StrategyError> {
        let mut gone = Vec::new();
        for id in ids {
            if self.alive.remove(&id) {
                gone.push(id);
            }
        }
        if !gone.is_empty() {
            self.session.release(&gone).await?;
        }
        Ok(())
    }

    /// Frees every branch held except `keep`.
    pub async fn release_all_except(&mut self, keep: &[BranchId]) -> Result<(), StrategyError> {
        let gone: Vec<BranchId> = self.alive.iter().copied().filter(|b| !keep.contains(b)).collect();
        self.release(gone).await
    }

    /// Extends every unfinished track among `tracks` by one step, all in one `extend`, and
    /// scores exactly those. Returns how many were extended (0: nothing was left to do).
    pub async fn advance(&mut self, tracks: &mut [Track]) -> Result<usize, StrategyError> {
        let live: Vec<usize> = (0..tracks.len()).filter(|&i| !tracks[i].is_finished()).collect();
        if live.is_empty() {
            return Ok(0);
        }
        let ids: Vec<BranchId> = live.iter().map(|&i| tracks[i].branch).collect();
        let steps = self.session.extend(&ids, &self.params).await?;
        if steps.len() != ids.len() || steps.iter().zip(&ids).any(|(s, &id)| s.branch != id) {
            return Err(
                GenError::Backend(format!("extend of {} branches answered with other branches", ids.len())).into()
            );
        }
        for (&i, step) in live.iter().zip(steps) {
            tracks[i].push(step);
        }
        let scorer = self.scorer;
        let partials: Vec<Partial<'_>> = live.iter().map(|&i| tracks[i].partial()).collect();
        let scores = scorer.score_steps(self.problem, &partials, Some(self.session.as_mut())).await?;
        process::validate(scorer.name(), partials.len(), &scores)?;
        drop(partials);
        self.scored += live.len();
        self.scorer_usage += scores.usage;
        for (&i, &v) in live.iter().zip(&scores.values) {
            tracks[i].scores.push(v);
        }
        if !self.keep_finished {
            let done: Vec<BranchId> =
                live.iter().filter(|&&i| tracks[i].is_finished()).map(|&i| tracks[i].branch).collect();
            self.release(done).await?;
        }
        Ok(live.len())
    }
}
