//! Strategies: how a budget of samples becomes one answer. One file per strategy, each
//! readable as its paper's algorithm; this module holds what they share.

mod abstain;
mod adaptive_itc;
mod adaptive_sc;
mod astar;
pub mod auto;
mod beam;
mod best_of_n;
mod critique;
mod deepconf;
mod dvts;
mod fuse;
mod layer;
mod particle_filter;
mod particle_gibbs;
mod rank;
mod replay;
mod revise;
mod rounds;
mod rpc;
pub mod search;
mod self_consistency;
mod single;
pub mod smc;
pub mod spec;
mod think_exit;
mod verified_resampling;
mod weighted_best_of_n;

use async_trait::async_trait;

pub use adaptive_itc::{most_promising, AdaptiveItc, AdaptiveItcConfig, ItcMode, ItcSelect};
pub use adaptive_sc::{leader_stays_probability, AdaptiveScConfig, AdaptiveSelfConsistency};
pub use astar::{AStar, AstarConfig};
pub use auto::{agreement, Auto, AutoConfig, Fitted, Policy, PolicyBin};
pub use beam::{BeamConfig, BeamSearch};
pub use best_of_n::{BestOfN, BonConfig};
pub use critique::{Critique, CritiqueConfig, CRITIC_PROMPT, CRITIC_SYSTEM, CRITIQUE_REVISE_PROMPT};
pub use deepconf::{DeepConf, DeepConfConfig, DeepConfMode};
pub use dvts::{Dvts, DvtsConfig};
pub use fuse::{Fuse, FuseConfig, FUSE_PROMPT};
pub use particle_filter::{ParticleFilter, PfConfig};
pub use particle_gibbs::{ParticleGibbs, PgConfig};
pub use rank::{Rank, RankConfig, RankMode, JUDGE_PROMPT};
pub use rpc::{low_paths, path_probability, Pruning, Rpc, RpcConfig};
pub use search::{StepConfig, Track};
pub use revise::{Keep, Revise, ReviseConfig, REVISE_PROMPT};
pub use self_consistency::{ScConfig, SelfConsistency};
pub use single::{Single, SingleConfig};
pub use smc::{FinalPick, PfStep, Resampling};
pub use spec::{Needs, StrategyConfig, StrategySpec};
pub use think_exit::{ThinkExit, ThinkExitConfig};
pub use verified_resampling::{VerifiedResampling, VerifyResampleConfig};
pub use weighted_best_of_n::{WeightedBestOfN, WeightedBonConfig};

pub use crate::outcome::{leader_share, tally, Candidate, Outcome, Vote};

use crate::answer::Equivalence;
use crate::generator::{GenError, Generator, Sample, SampleRequest, SamplingParams};
use crate::process::ProcessScorer;
use crate::reasoning::ThinkingMarkers;
use crate::scorer::{self, OutcomeScorer, ScoreError};
use crate::verifier::Verifier;
use crate::{Message, Problem, Usage};

/// What a strategy may use.
pub struct Ctx<'a> {
    pub generator: &'a dyn Generator,
    pub equivalence: &'a dyn Equivalence,
    /// The answer in a sample's text (the dataset's rule, or a user's `answer_pattern`).
    pub extract: &'a (dyn Fn(&str) -> Option<String> + Sync),
    pub scorer: Option<&'a dyn OutcomeScorer>,
    /// Scores partial solutions step by step (search strategies).
    pub process: Option<&'a dyn ProcessScorer>,
    pub verifier: Option<&'a dyn Verifier>,
    /// The model's reasoning markers: `extract` then reads only the text after the
    /// thinking span, so no strategy votes on an answer the model only considered.
    pub thinking: Option<&'a ThinkingMarkers>,
}

impl Ctx<'_> {
    /// The answer in a sample's text: `extract` on the part after its reasoning spans (no
    /// answer when the text ends inside a span); the text itself is kept whole.
    pub fn answer_of(&self, text: &str) -> Option<String> {
        match self.thinking {
            Some(m) => m.answer(text).and_then(|a| (self.extract)(a)),
            None => (self.extract)(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("unknown strategy {name:?} (known: {known})")]
    UnknownStrategy { name: String, known: String },
    #[error("budget must be at least 1, got {0}")]
    InvalidBudget(usize),
    /// A field of a spec fails its check.
    #[error("strategy {strategy}: {field} {message}")]
    InvalidConfig { strategy: String, field: String, message: String },
    /// A spec that does not parse (unknown field, wrong type, bad shorthand).
    #[error("bad strategy spec: {0}")]
    BadSpec(String),
    #[error("strategy {0} needs a scorer")]
    NeedsScorer(String),
    #[error("strategy {0} needs a process scorer (--scorer self-eval, step-check or prm)")]
    NeedsProcessScorer(String),
    #[error("strategy {0} needs a verifier")]
    NeedsVerifier(String),
    /// Nothing to decide from; `why`: the first failure's reason, where the strategy saw it
    /// (a dead server, a refused request), so the error says what to fix.
    #[error("every sample failed ({attempted} attempted): insufficient_candidates{}", because(why))]
    InsufficientCandidates { attempted: usize, why: Option<String> },
    #[error(transparent)]
    Generator(#[from] GenError),
    #[error(transparent)]
    Scorer(#[from] ScoreError),
}

impl StrategyError {
    /// `InsufficientCandidates` after `attempted` samples failed with `failures`.
    pub fn all_failed(attempted: usize, failures: &[(usize, GenError)]) -> StrategyError {
        StrategyError::InsufficientCandidates { attempted, why: failures.first().map(|(_, e)| e.to_string()) }
    }
}

fn because(why: &Option<String>) -> String {
    why.as_ref().map_or_else(String::new, |w| format!(" (the first: {w})"))
}

#[async_trait]
pub trait Strategy: Send + Sync {
    fn name(&self) -> &str;
    /// Most samples the strategy may draw.
    fn budget(&self) -> usize;
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError>;
}

/// A candidate from a sample: extracts and keys its answer.
pub fn candidate(sample: Sample, ctx: &Ctx<'_>) -> Candidate {
    let answer = ctx.answer_of(&sample.text);
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
        return Err(StrategyError::all_failed(n, &got.failures));
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
    decided(strategy, candidates, votes, chosen.or(Some(0)), (usage, n_failed, stopped_early))
}

/// The outcome of best-of-N: the highest-scoring candidate (the earliest on ties), no vote.
pub(crate) fn best_scored(
    strategy: &str,
    candidates: Vec<Candidate>,
    usage: Usage,
    n_failed: usize,
    stopped_early: bool,
) -> Outcome {
    let chosen = best_index(&candidates);
    decided(strategy, candidates, Vec::new(), chosen, (usage, n_failed, stopped_early))
}

/// Position of the highest-scoring candidate (unscored ones lowest; the earliest on ties).
pub(crate) fn best_index(candidates: &[Candidate]) -> Option<usize> {
    let mut best = 0;
    for (i, c) in candidates.iter().enumerate() {
        if c.score.unwrap_or(f64::NEG_INFINITY) > candidates[best].score.unwrap_or(f64::NEG_INFINITY) {
            best = i;
        }
    }
    (!candidates.is_empty()).then_some(best)
}

/// The vote over the `kept` candidates (by sample index) weighted by their scores; every
/// candidate stays in the outcome. The highest-scored member of the winning class speaks
/// for it (DeepConf, RPC).
pub(crate) fn weighted_vote(
    strategy: &str,
    candidates: Vec<Candidate>,
    kept: &[usize],
    usage: Usage,
    n_failed: usize,
    stopped_early: bool,
) -> Outcome {
    let voters: Vec<Candidate> = candidates.iter().filter(|c| kept.contains(&c.index)).cloned().collect();
    let votes = tally(&voters, true);
    let chosen = votes
        .first()
        .and_then(|v| {
            voters
                .iter()
                .filter(|c| c.key.as_deref() == Some(v.key.as_str()))
                .max_by(|a, b| a.score.unwrap_or(f64::MIN).total_cmp(&b.score.unwrap_or(f64::MIN)).then(b.index.cmp(&a.index)))
                .and_then(|c| position_of(&candidates, c.index))
        })
        .or(Some(0));
    decided(strategy, candidates, votes, chosen, (usage, n_failed, stopped_early))
}

/// The outcome answering with the leading vote, or without votes the chosen candidate's
/// answer; `spent` is (usage, failed samples, stopped early).
fn decided(strategy: &str, candidates: Vec<Candidate>, votes: Vec<Vote>, chosen: Option<usize>, spent: (Usage, usize, bool)) -> Outcome {
    let answer = match votes.first() {
        Some(v) => Some(v.answer.clone()),
        None => chosen.and_then(|i| candidates.get(i)).and_then(|c| c.answer.clone()),
    };
    let (usage, n_failed, stopped_early) = spent;
    Outcome { strategy: strategy.into(), answer, chosen, candidates, votes, usage, n_failed, stopped_early, abstained: false, counts: Default::default() }
}
