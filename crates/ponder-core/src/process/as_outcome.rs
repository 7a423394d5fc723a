//! A process scorer used as an outcome scorer, so best-of-N and weighted best-of-N can be
//! compared with the search strategies under the same judge.
//!
//! Each complete candidate is one "step": a session is opened on the prompt, one branch is
//! forked per candidate, the candidate's text is appended (forced) and the scorer judges
//! it. The candidates' tokens are computed again for this (counted as prompt work).

use std::sync::Arc;

use async_trait::async_trait;

use super::{validate, Partial, ProcessScorer};
use crate::generator::Generator;
use crate::scorer::{OutcomeScorer, ScoreError, Scores};
use crate::strategy::Candidate;
use crate::{Message, Problem};

/// Puts a problem to the model (the same prompt the candidates were drawn with).
pub type PromptFn = Arc<dyn Fn(&Problem) -> Vec<Message> + Send + Sync>;

pub struct ProcessAsOutcome {
    pub scorer: Arc<dyn ProcessScorer>,
    pub generator: Arc<dyn Generator>,
    pub prompt: PromptFn,
}

#[async_trait]
impl OutcomeScorer for ProcessAsOutcome {
    fn name(&self) -> &str {
        self.scorer.name()
    }

    async fn score(&self, problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        let name = self.scorer.name().to_string();
        let fail = |e: crate::GenError| ScoreError::Failed { scorer: name.clone(), reason: e.to_string() };
        if candidates.is_empty() {
            return Ok(Scores::default());
        }
        let mut session = self.generator.open(&(self.prompt)(problem), 0).await.map_err(fail)?;
        let branches = session.fork(session.root(), candidates.len()).await.map_err(fail)?;
        let texts: Vec<Vec<String>> = candidates.iter().map(|c| vec![c.text.clone()]).collect();
        for (&b, c) in branches.iter().zip(candidates) {
            session.append(b, &c.text).await.map_err(fail)?;
        }
        let partials: Vec<Partial<'_>> =
            branches.iter().zip(&texts).map(|(&branch, steps)| Partial { branch, steps, finished: true }).collect();
        let mut scores = self.scorer.score_steps(problem, &partials, session.as_mut()).await?;
        validate(&name, candidates.len(), &scores)?;
        let _ = session.release(&branches).await;
        scores.usage += session.usage();
        Ok(scores)
    }
}
