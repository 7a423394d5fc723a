//! Strategies: how a budget of samples becomes one answer. One file per strategy, each
//! readable as its paper's algorithm; this module holds what they share.

mod adaptive_sc;
mod astar;
mod beam;
mod best_of_n;
mod deepconf;
mod dvts;
pub mod particle_filter;
mod particle_gibbs;
pub mod search;
mod self_consistency;
mod single;
mod verified_resampling;
mod voting;
mod weighted_best_of_n;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use adaptive_sc::{leader_stays_probability, AdaptiveSelfConsistency};
pub use astar::AStar;
pub use beam::BeamSearch;
pub use best_of_n::BestOfN;
pub use deepconf::{DeepConf, DeepConfMode};
pub use dvts::Dvts;
pub use particle_filter::{ParticleFilter, PfStep};
pub use particle_gibbs::ParticleGibbs;
pub use search::{FinalPick, Resampling, SearchConfig, Track};
pub use self_consistency::SelfConsistency;
pub use single::Single;
pub use verified_resampling::VerifiedResampling;
pub use voting::{tally, Vote};
pub use weighted_best_of_n::WeightedBestOfN;

use crate::answer::Equivalence;
use crate::generator::{FinishReason, GenError, Generator, Sample, SampleRequest, SamplingParams};
use crate::process::ProcessScorer;
use crate::scorer::{self, OutcomeScorer, ScoreError};
use crate::verifier::Verifier;
use crate::{Message, Problem, Usage};

/// One complete candidate solution with its extracted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub index: usize,
    pub text: String,
    pub answer: Option<String>,
    /// Equivalence-class key of `answer`.
    pub key: Option<String>,
    pub n_tokens: usize,
    pub mean_logprob: Option<f64>,
    pub finish: FinishReason,
    /// Set by strategies that score candidates.
    pub score: Option<f64>,
}

/// What a strategy decided, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub strategy: String,
    /// The chosen final answer; `None` when no candidate had one.
    pub answer: Option<String>,
    /// Index into `candidates` of the candidate whose text is returned.
    pub chosen: Option<usize>,
    pub candidates: Vec<Candidate>,
    /// Equivalence classes, best first (empty for strategies that do not vote).
    pub votes: Vec<Vote>,
    pub usage: Usage,
    /// Samples whose generation failed (partial-failure rule: the rest decide).
    pub n_failed: usize,
    /// Stopped before spending the whole budget.
    pub stopped_early: bool,
    /// Gave no answer on purpose (verified resampling found no passing sample); counted
    /// apart from wrong answers.
    #[serde(default)]
    pub abstained: bool,
}

impl Outcome {
    pub fn chosen_text(&self) -> Option<&str> {
        self.chosen.and_then(|i| self.candidates.get(i)).map(|c| c.text.as_str())
    }
}

/// What a strategy may use.
pub struct Ctx<'a> {
    pub generator: &'a dyn Generator,
    pub equivalence: &'a dyn Equivalence,
    pub extract: fn(&str) -> Option<String>,
    pub scorer: Option<&'a dyn OutcomeScorer>,
    /// Scores partial solutions step by step (search strategies).
    pub process: Option<&'a dyn ProcessScorer>,
    pub verifier: Option<&'a dyn Verifier>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("unknown strategy {name:?} (known: {known})")]
    UnknownStrategy { name: String, known: String },
    #[error("budget must be at least 1, got {0}")]
    InvalidBudget(usize),
    #[error("strategy {0} needs a scorer")]
    NeedsScorer(String),
    #[error("strategy {0} needs a process scorer (--scorer self-eval, step-check or prm)")]
    NeedsProcessScorer(String),
    #[error("strategy {0} needs a verifier")]
    NeedsVerifier(String),
    #[error("every sample failed ({0} attempted): insufficient_candidates")]
    InsufficientCandidates(usize),
    #[error(transparent)]
    Generator(#[from] GenError),
    #[error(transparent)]
    Scorer(#[from] ScoreError),
}

#[async_trait]
pub trait Strategy: Send + Sync {
    fn name(&self) -> &str;
    /// Most samples the strategy may draw.
    fn budget(&self) -> usize;
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError>;
}

/// The strategies `build` knows.
/// The step-level search strategies (they need a process scorer and a step session).
pub const SEARCH_STRATEGIES: &[&str] = &["beam", "dvts", "pf", "pgibbs", "astar"];

pub const STRATEGIES: &[&str] =
    &["single", "sc", "adaptive-sc", "deepconf", "deepconf-online", "bon", "weighted-bon", "verify-resample", "beam", "dvts", "pf", "pgibbs", "astar"];

/// Builds a strategy by name, search strategies with the default [`SearchConfig`].
pub fn build(name: &str, budget: usize, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
    build_with(name, budget, sampling, &SearchConfig::default())
}

/// Builds a strategy by name; `search` configures the step-level search strategies.
pub fn build_with(
    name: &str,
    budget: usize,
    sampling: SamplingParams,
    search: &SearchConfig,
) -> Result<Box<dyn Strategy>, StrategyError> {
    if budget == 0 {
        return Err(StrategyError::InvalidBudget(0));
    }
    Ok(match name {
        "single" => Box::new(Single { sampling }),
        "sc" => Box::new(SelfConsistency { n_samples: budget, sampling }),
        "adaptive-sc" => Box::new(AdaptiveSelfConsistency::new(budget, sampling)),
        "deepconf" => Box::new(DeepConf::new(budget, sampling, DeepConfMode::Offline)),
        "deepconf-online" => Box::new(DeepConf::new(budget, sampling, DeepConfMode::Online)),
        "bon" => Box::new(BestOfN { n_samples: budget, sampling }),
        "weighted-bon" => Box::new(WeightedBestOfN { n_samples: budget, sampling }),
        "verify-resample" => Box::new(VerifiedResampling::new(budget, sampling)),
        "beam" => Box::new(BeamSearch::new(budget, sampling, search.clone())),
        "dvts" => Box::new(Dvts::new(budget, sampling, search.clone())),
        "pf" => Box::new(ParticleFilter::new(budget, sampling, search.clone())),
        "pgibbs" => Box::new(ParticleGibbs::new(budget, sampling, search.clone())),
        "astar" => Box::new(AStar::new(budget, sampling, search.clone())),
        _ => {
            return Err(StrategyError::UnknownStrategy { name: name.into(), known: STRATEGIES.join(", ") });
        }
    })
}

/// A candidate from a sample: extracts and keys its answer.
pub fn candidate(sample: Sample, ctx: &Ctx<'_>) -> Candidate {
    let answer = (ctx.extract)(&sample.text);
    let key = answer.as_deref().map(|a| ctx.equivalence.key(a));
    Candidate {
        index: sample.index,
        mean_logprob: sample.mean_logprob(),
        n_tokens: sample.n_tokens,
        finish: sample.finish,
        text: sample.text,
        answer,
        key,
        score: None,
    }
}

/// Draws `n` samples and turns them into candidates (index order). Fails with
/// `insufficient_candidates` only when every sample failed.
pub async fn draw(
    messages: &[Message],
    n: usize,
    sampling: &SamplingParams,
    ctx: &Ctx<'_>,
) -> Result<(Vec<Candidate>, usize, Usage), StrategyError> {
    let req = SampleRequest { messages: messages.to_vec(), n, params: sampling.clone(), first_index: 0 };
    let got = ctx.generator.sample(req).await?.collect().await?;
    if got.samples.is_empty() {
        return Err(StrategyError::InsufficientCandidates(n));
    }
    let candidates = got.samples.into_iter().map(|s| candidate(s, ctx)).collect();
    Ok((candidates, got.failures.len(), got.usage))
}

/// Scores candidates with the context's scorer, checking the scorer's contract.
pub async fn score(problem: &Problem, candidates: &mut [Candidate], ctx: &Ctx<'_>, strategy: &str) -> Result<Usage, StrategyError> {
    let scorer = ctx.scorer.ok_or_else(|| StrategyError::NeedsScorer(strategy.into()))?;
    let scores = scorer.score(problem, candidates).await?;
    scorer::validate(scorer.name(), candidates.len(), &scores)?;
    for (c, s) in candidates.iter_mut().zip(&scores.values) {
        c.score = Some(*s);
    }
    Ok(scores.usage)
}

/// Position in `candidates` of the candidate with this sample index.
pub(crate) fn position_of(candidates: &[Candidate], index: usize) -> Option<usize> {
    candidates.iter().position(|c| c.index == index)
}

/// Candidates grouped by answer key (candidates without an answer are left out).
pub(crate) fn groups(candidates: &[Candidate]) -> BTreeMap<&str, Vec<&Candidate>> {
    let mut out: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        if let Some(k) = c.key.as_deref() {
            out.entry(k).or_default().push(c);
        }
    }
    out
}
#[cfg(test)] mod tests;
#[cfg(test)] mod search_tests;

/// The majority-vote outcome over `candidates` (in index order), as self-consistency and
/// its adaptive form return it.
pub(crate) fn majority(
    strategy: &str,
    candidates: Vec<Candidate>,
    usage: Usage,
    n_failed: usize,
    stopped_early: bool,
) -> Outcome {
    let votes = tally(&candidates, false);
    let chosen = votes.first().and_then(|v| position_of(&candidates, v.first_index));
    Outcome {
        strategy: strategy.into(),
        answer: votes.first().map(|v| v.answer.clone()),
        chosen: chosen.or(Some(0)),
        candidates,
        votes,
        usage,
        n_failed,
        stopped_early,
        abstained: false,
    }
}
