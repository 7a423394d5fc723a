//! A token-probability process reward model run in-process on any GGUF causal LM.
//!
//! The math-shepherd / RLHFlow convention: the question and the steps so far are laid out
//! with a step tag after each step; the model's next-token distribution at the last tag
//! gives the score `p(good) / (p(good) + p(bad))`. All partials of one call are scored in
//! one batched decode, and each scored text joins the PRM engine's prefix cache, so the
//! next call (the same partials one step longer) computes only the new step.

use async_trait::async_trait;
use ponder_core::process::{Partial, ProcessScorer};
use ponder_core::scorer::{ScoreError, Scores};
use ponder_core::{Problem, StepSession};

use crate::{Engine, LlamaToken};

/// How partial solutions are laid out for the reward model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrmFormat {
    /// Written after each step (math-shepherd: " ки").
    pub step_tag: String,
    /// Between steps, after the tag.
    pub separator: String,
    /// The token that means a correct step (math-shepherd: "+").
    pub good: String,
    /// The token that means a wrong step (math-shepherd: "-").
    pub bad: String,
}

impl Default for PrmFormat {
    fn default() -> Self {
        Self { step_tag: " ки".into(), separator: "\n".into(), good: "+".into(), bad: "-".into() }
    }
}

impl PrmFormat {
    /// The text the reward model reads for a partial: question, then each step and its tag.
    pub fn layout(&self, question: &str, steps: &[String]) -> String {
        let mut text = format!("{} ", question.trim());
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                text.push_str(&self.separator);
            }
            text.push_str(step.trim());
            text.push_str(&self.step_tag);
        }
        text
    }
}

/// A process reward model on its own engine.
pub struct TokenPrm {
    engine: Engine,
    format: PrmFormat,
    good: LlamaToken,
    bad: LlamaToken,
}

impl TokenPrm {
    /// Fails when the good or bad word has no token in the model's vocabulary.
    pub fn new(engine: Engine, format: PrmFormat) -> Result<Self, ponder_core::GenError> {
        let good = engine.first_token(&format.good)?;
        let bad = engine.first_token(&format.bad)?;
        if good == bad {
            return Err(ponder_core::GenError::InvalidRequest(format!(
                "the good ({:?}) and bad ({:?}) words start with the same token",
                format.good, format.bad
            )));
        }
        Ok(Self { engine, format, good, bad })
    }
}

#[async_trait]
impl ProcessScorer for TokenPrm {
    fn name(&self) -> &str {
        "prm"
    }

    fn needs_session(&self) -> bool {
        false
    }

    async fn score_steps(
        &self,
        problem: &Problem,
        partials: &[Partial<'_>],
        _session: Option<&mut dyn StepSession>,
    ) -> Result<Scores, ScoreError> {
        let sequences: Vec<Vec<LlamaToken>> =
            partials.iter().map(|p| self.engine.tokenize(&self.format.layout(&problem.question, p.steps))).collect();
        let (lps, usage) = self
            .engine
            .score_next(sequences, vec![self.good, self.bad])
            .await
            .map_err(|e| ScoreError::Failed { scorer: "prm".into(), reason: e.to_string() })?;
        let values = lps.iter().map(|lp| ponder_core::process::yes_probability(lp[0], lp[1])).collect();
        Ok(Scores { values, usage })
    }
}
