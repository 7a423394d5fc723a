//! Self-evaluation: the policy model judges its own last step, no second model needed.
//!
//! Each partial solution's branch is probed with a fixed question; the score is the
//! probability of the "yes" token against the "no" token, `p(yes) / (p(yes) + p(no))`.
//! On the engine a probe forks the branch (KV shared) and computes only the question.

use async_trait::async_trait;

use super::{Partial, ProcessScorer};
use crate::generator::StepSession;
use crate::scorer::{ScoreError, Scores};
use crate::Problem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfEval {
    /// Appended after the partial solution.
    pub question: String,
    pub yes: String,
    pub no: String,
}

impl Default for SelfEval {
    fn default() -> Self {
        Self {
            question: "\n\nQuestion: Is the last step above correct? Answer Yes or No.\nAnswer:".into(),
            yes: " Yes".into(),
            no: " No".into(),
        }
    }
}

/// `p(yes) / (p(yes) + p(no))` from the two log-probabilities, computed without overflow;
/// 0.5 when the model puts no mass on either.
pub fn yes_probability(yes: f32, no: f32) -> f64 {
    let (y, n) = (f64::from(yes), f64::from(no));
    if y == f64::NEG_INFINITY && n == f64::NEG_INFINITY {
        return 0.5;
    }
    1.0 / (1.0 + (n - y).exp())
}

#[async_trait]
impl ProcessScorer for SelfEval {
    fn name(&self) -> &str {
        "self-eval"
    }

    async fn score_steps(
        &self,
        _problem: &Problem,
        partials: &[Partial<'_>],
        session: Option<&mut dyn StepSession>,
    ) -> Result<Scores, ScoreError> {
        if partials.is_empty() {
            return Ok(Scores::default());
        }
        let Some(session) = session else {
            return Err(ScoreError::Failed {
                scorer: "self-eval".into(),
                reason: "it asks the policy model, and was given no session".into(),
            });
        };
        let branches: Vec<_> = partials.iter().map(|p| p.branch).collect();
        let candidates = [self.yes.clone(), self.no.clone()];
        let (lps, usage) = session
            .probe(&branches, &self.question, &candidates)
            .await
            .map_err(|e| ScoreError::Failed { scorer: "self-eval".into(), reason: e.to_string() })?;
        let values = lps
            .iter()
            .map(|lp| match lp.as_slice() {
                [y, n] => Ok(yes_probability(*y, *n)),
                _ => Err(ScoreError::Failed { scorer: "self-eval".into(), reason: "probe returned the wrong shape".into() }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Scores { values, usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_probability_is_a_two_way_softmax() {
        assert!((yes_probability(-1.0, -1.0) - 0.5).abs() < 1e-12);
        assert!(yes_probability(-0.1, -5.0) > 0.99);
        assert!(yes_probability(-500.0, -0.1) < 1e-6);
        assert_eq!(yes_probability(f32::NEG_INFINITY, f32::NEG_INFINITY), 0.5);
        assert_eq!(yes_probability(f32::NEG_INFINITY, -1.0), 0.0);
        assert_eq!(yes_probability(-1.0, f32::NEG_INFINITY), 1.0);
    }
}
