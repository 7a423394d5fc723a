//! Outcome scorers: one score per complete candidate, higher is better.
//!
//! Scores must be finite; a scorer that produces NaN or infinity is reported as an error
//! naming the candidate rather than silently ranking it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::outcome::Candidate;
use crate::{Checker, Problem, Usage};

/// Scores and what computing them cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub values: Vec<f64>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("scorer {scorer} returned a non-finite score ({value}) for candidate {index}")]
    NonFinite { scorer: String, index: usize, value: f64 },
    #[error("scorer {scorer} returned {got} scores for {expected} candidates")]
    WrongCount { scorer: String, expected: usize, got: usize },
    #[error("scorer {scorer} cannot score {problem}: {reason}")]
    Unavailable { scorer: String, problem: String, reason: String },
    #[error("scorer {scorer} failed: {reason}")]
    Failed { scorer: String, reason: String },
}

#[async_trait]
pub trait OutcomeScorer: Send + Sync {
    fn name(&self) -> &str;
    async fn score(&self, problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError>;
}

/// Checks that a scorer kept its side of the contract.
pub fn validate(scorer: &str, n_candidates: usize, scores: &Scores) -> Result<(), ScoreError> {
    if scores.values.len() != n_candidates {
        return Err(ScoreError::WrongCount { scorer: scorer.into(), expected: n_candidates, got: scores.values.len() });
    }
    match scores.values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ScoreError::NonFinite { scorer: scorer.into(), index, value: scores.values[index] }),
        None => Ok(()),
    }
}

/// Geometric-mean token probability, `exp(mean chosen-token logprob)`, in (0, 1].
///
/// The exponent keeps the ranking of mean logprob (for best-of-N) while giving the
/// non-negative weights that weighted voting needs. Candidates without logprobs get 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeanLogprob;

#[async_trait]
impl OutcomeScorer for MeanLogprob {
    fn name(&self) -> &str {
        "mean-logprob"
    }
    async fn score(&self, _problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        let values = candidates.iter().map(|c| c.mean_logprob.map_or(0.0, f64::exp)).collect();
        Ok(Scores { values, usage: Usage::default() })
    }
}

/// The task's own checker as a scorer: 1 when the candidate's answer is correct, else 0.
/// A perfect verifier, for separating search quality from scorer quality.
#[derive(Clone)]
pub struct CheckerScorer(pub Arc<dyn Checker>);

#[async_trait]
impl OutcomeScorer for CheckerScorer {
    fn name(&self) -> &str {
        "checker"
    }
    async fn score(&self, problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        if problem.gold.trim().is_empty() {
            return Err(ScoreError::Unavailable {
                scorer: "checker".into(),
                problem: problem.id.clone(),
                reason: "it has no gold answer (the checker scorer needs a dataset problem)".into(),
            });
        }
        let values = candidates
            .iter()
            .map(|c| if self.0.is_correct(problem, c.answer.as_deref()) { 1.0 } else { 0.0 })
            .collect();
        Ok(Scores { values, usage: Usage::default() })
    }
}
