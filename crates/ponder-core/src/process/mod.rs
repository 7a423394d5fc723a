//! Process scorers: a score for the newest step of each partial solution, for step-level
//! search (beam, DVTS, particle filtering, A*).
//!
//! A scorer returns, per partial, a probability in [0, 1] that its last step is correct.
//! Search strategies keep each branch's history of step scores and fold it with an
//! [`Aggregate`] (last, min, product or mean), as the PRM literature does.

mod as_outcome;
mod self_eval;
mod step_check;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use as_outcome::{ProcessAsOutcome, PromptFn};
pub use self_eval::{yes_probability, SelfEval};
pub use step_check::{check_chain, StepCheck};

use crate::generator::{BranchId, StepSession};
use crate::scorer::{ScoreError, Scores};
use crate::Problem;

/// A partial (or finished) solution held by a search strategy as a branch of its session.
#[derive(Debug, Clone, Copy)]
pub struct Partial<'a> {
    pub branch: BranchId,
    /// The steps so far, in order; the last is the one to score. Each step's text includes
    /// its trailing delimiter, so concatenating them gives the solution text.
    pub steps: &'a [String],
    /// The branch ended (end of generation, stop string or length): no more steps.
    pub finished: bool,
}

impl Partial<'_> {
    pub fn text(&self) -> String {
        self.steps.concat()
    }
}

#[async_trait]
pub trait ProcessScorer: Send + Sync {
    fn name(&self) -> &str;
    /// Whether `score_steps` reads the policy model's session. Scorers that judge the text
    /// alone (their own model, an exact checker) say no, so a caller scoring finished
    /// candidates need not open a session and fork a branch per candidate for them.
    fn needs_session(&self) -> bool {
        true
    }
    /// Scores the last step of each partial, one value in [0, 1] per partial, in order.
    /// `session` is the policy model's session that holds the partials as branches
    /// (self-evaluation asks the policy model itself); scorers with their own model ignore
    /// it, and callers pass `None` (with meaningless branch ids) when `needs_session` is false.
    async fn score_steps(
        &self,
        problem: &Problem,
        partials: &[Partial<'_>],
        session: Option<&mut dyn StepSession>,
    ) -> Result<Scores, ScoreError>;
}

/// Checks a process scorer's output: one finite value in [0, 1] per partial.
pub fn validate(scorer: &str, n: usize, scores: &Scores) -> Result<(), ScoreError> {
    crate::scorer::validate(scorer, n, scores)?;
    match scores.values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(index) => Err(ScoreError::Failed {
            scorer: scorer.into(),
            reason: format!("step score {} for partial {index} is outside [0, 1]", scores.values[index]),
        }),
        None => Ok(()),
    }
}

/// How a branch's step scores become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The newest step's score (search-and-learn's default for PRMs trained on last-step labels).
    #[default]
    Last,
    /// The weakest step.
    Min,
    /// All steps correct, as independent events.
    #[serde(alias = "prod")]
    Product,
    Mean,
}

impl Aggregate {
    pub const NAMES: &'static [&'static str] = &["last", "min", "product", "mean"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "last" => Aggregate::Last,
            "min" => Aggregate::Min,
            "product" | "prod" => Aggregate::Product,
            "mean" => Aggregate::Mean,
            _ => return None,
        })
    }

    /// The aggregate of `history` (oldest first); 1.0 for an empty history (no evidence yet).
    pub fn apply(self, history: &[f64]) -> f64 {
        if history.is_empty() {
            return 1.0;
        }
        match self {
            Aggregate::Last => history[history.len() - 1],
            Aggregate::Min => history.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Product => history.iter().product(),
            Aggregate::Mean => history.iter().sum::<f64>() / history.len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates() {
        let h = [0.9, 0.5, 0.8];
        assert_eq!(Aggregate::Last.apply(&h), 0.8);
        assert_eq!(Aggregate::Min.apply(&h), 0.5);
        assert!((Aggregate::Product.apply(&h) - 0.36).abs() < 1e-12);
        assert!((Aggregate::Mean.apply(&h) - 2.2 / 3.0).abs() < 1e-12);
        assert_eq!(Aggregate::Min.apply(&[]), 1.0);
        for n in Aggregate::NAMES {
            assert!(Aggregate::parse(n).is_some());
        }
        assert_eq!(Aggregate::parse("max"), None);
    }

    #[test]
    fn validate_rejects_out_of_range() {
        let s = Scores { values: vec![0.5, 1.5], ..Scores::default() };
        assert!(validate("x", 2, &s).unwrap_err().to_string().contains("outside [0, 1]"));
        let s = Scores { values: vec![0.5, f64::NAN], ..Scores::default() };
        assert!(matches!(validate("x", 2, &s), Err(ScoreError::NonFinite { .. })));
        assert!(validate("x", 2, &Scores { values: vec![0.0, 1.0], ..Scores::default() }).is_ok());
    }
}
