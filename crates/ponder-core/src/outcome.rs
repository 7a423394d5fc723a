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
