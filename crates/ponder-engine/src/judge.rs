//! An LLM judge as a process scorer: another instruct model, shown the problem and a
//! partial or complete solution through its own chat template and asked whether it is
//! correct so far, scores it `p(Yes) / (p(Yes) + p(No))` from its next token.
//!
//! Unlike a trained PRM it needs no special format, so any instruct GGUF (the 1.5B judging
//! the 0.5B's answers) can verify. Whole candidates are judged the same way through
//! `ProcessAsOutcome`, so best-of-N and search run under one judge. Each judged text joins
//! the judge engine's prefix cache: the next step of the same branch computes only the new
//! tokens before the question.

use async_trait::async_trait;
use ponder_core::process::{yes_probability, Partial, ProcessScorer};
use ponder_core::scorer::{ScoreError, Scores};
use ponder_core::{GenError, Message, Problem, StepSession};

use crate::{Engine, LlamaToken};

/// The question put after the solution.
pub const DEFAULT_QUESTION: &str =
    "Is this solution correct so far, with no mistake in any step? Answer with one word: Yes or No.";

const SYSTEM: &str = "You are a careful grader of math and programming solutions.";

/// A judge model on its own engine.
pub struct Judge {
    engine: Engine,
    question: String,
    yes: LlamaToken,
    no: LlamaToken,
}

impl Judge {
    /// Fails when the model has no chat template, or "Yes" and "No" share their first token.
    pub fn new(engine: Engine, question: impl Into<String>) -> Result<Self, GenError> {
        if !engine.format().has_template() {
            return Err(GenError::InvalidRequest(
                "a judge model needs a chat template (an instruct model); use --scorer prm for base models".into(),
            ));
        }
        let yes = engine.first_token("Yes")?;
        let no = engine.first_token("No")?;
        if yes == no {
            return Err(GenError::InvalidRequest("\"Yes\" and \"No\" start with the same token".into()));
        }
        Ok(Self { engine, question: question.into(), yes, no })
    }

    /// The judge's prompt for a solution: the problem, the steps so far, the question.
    pub fn layout(&self, question: &str, steps: &[String]) -> Result<String, GenError> {
        let solution = steps.iter().map(|s| s.trim()).collect::<Vec<_>>().join("\n\n");
        let user = format!("Problem:\n{}\n\nSolution:\n{solution}\n\n{}", question.trim(), self.question);
        self.engine.render(&[Message::system(SYSTEM), Message::user(user)])
    }
}

#[async_trait]
impl ProcessScorer for Judge {
    fn name(&self) -> &str {
        "judge"
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
        let failed = |e: GenError| ScoreError::Failed { scorer: "judge".into(), reason: e.to_string() };
        let sequences: Vec<Vec<LlamaToken>> = partials
            .iter()
            .map(|p| self.layout(&problem.question, p.steps).map(|text| self.engine.tokenize(&text)))
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        let (lps, usage) = self.engine.score_next(sequences, vec![self.yes, self.no]).await.map_err(failed)?;
        let values = lps.iter().map(|lp| yes_probability(lp[0], lp[1])).collect();
        Ok(Scores { values, usage })
    }
}
