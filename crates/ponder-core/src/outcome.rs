//! What a strategy produces, below every contract: a [`Candidate`] (one complete solution
//! with its answer), the [`Outcome`] (what was decided and what it cost) and the [`Vote`]
//! table. Scorers, verifiers and tool calls take candidates, and strategies take those
//! contracts, so these types sit under both (no import circle).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::generator::FinishReason;
use crate::Usage;

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

    /// How settled the answer is: the leading class's share of the vote ([`leader_share`]).
    /// `None` for a strategy that does not vote.
    pub fn confidence(&self) -> Option<f64> {
        leader_share(&self.votes)
    }

    /// Abstains (answers nothing) when the leader holds less than `threshold` of the vote;
    /// an outcome without votes is left as it is. Returns whether it abstained here.
    pub fn abstain_below(&mut self, threshold: f64) -> bool {
        match self.confidence() {
            Some(c) if c < threshold && self.answer.is_some() => {
                self.answer = None;
                self.chosen = None;
                self.abstained = true;
                true
            }
            _ => false,
        }
    }
}

/// The leading class's share of a vote table: its weight over all classes' (the vote share
/// for a plain vote, DeepConf's share of confidence). Weights that are not all positive
/// (a log-probability scorer's) have no share: the vote counts stand in. `None` when no
/// candidate had an answer.
pub fn leader_share(votes: &[Vote]) -> Option<f64> {
    let first = votes.first()?;
    let total: f64 = votes.iter().map(|v| v.weight).sum();
    if votes.iter().all(|v| v.weight >= 0.0) && total > 0.0 {
        Some(first.weight / total)
    } else {
        Some(first.count as f64 / votes.iter().map(|v| v.count).sum::<usize>() as f64)
    }
}

/// One equivalence class of answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The answer as first written by a candidate of the class.
    pub answer: String,
    pub key: String,
    pub count: usize,
    /// Sum of scores (equals `count` for unweighted votes).
    pub weight: f64,
    /// Lowest sample index in the class: the deterministic tie-breaker.
    pub first_index: usize,
}

/// Tallies candidates by answer class, best first: by weight, then count, then the
/// class whose first member came earliest (so ties never depend on scheduling).
/// `weight` of a candidate is its score when `weighted`, else 1.
pub fn tally(candidates: &[Candidate], weighted: bool) -> Vec<Vote> {
    let mut votes: Vec<Vote> = groups(candidates)
        .into_iter()
        .map(|(key, members)| {
            // Members keep candidate order, and candidates are in index order.
            let first = members.iter().min_by_key(|c| c.index).copied().expect("a group has at least one member");
            Vote {
                answer: first.answer.clone().unwrap_or_default(),
                key: key.to_string(),
                count: members.len(),
                weight: members.iter().map(|c| if weighted { c.score.unwrap_or(0.0) } else { 1.0 }).sum(),
                first_index: first.index,
            }
        })
        .collect();
    votes.sort_by(|a, b| {
        b.weight.total_cmp(&a.weight).then(b.count.cmp(&a.count)).then(a.first_index.cmp(&b.first_index))
    });
    votes
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
