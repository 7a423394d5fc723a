//! Vote tables shared by the voting strategies.

use serde::{Deserialize, Serialize};

use super::{groups, Candidate};

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
