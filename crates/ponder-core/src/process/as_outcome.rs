//! A process scorer used as an outcome scorer, so best-of-N and weighted best-of-N can be
//! compared with the search strategies under the same judge.
//!
//! Each complete candidate is one "step". For a scorer that asks the policy model
//! (self-evaluation) a session is opened on the prompt, one branch is forked per candidate,
//! the candidate's text is appended (forced) and the scorer judges it; the candidates'
//! tokens are computed again for this (counted as prompt work). A scorer that reads only the
//! text (`needs_session` false) is called without a session.

use std::sync::Arc;

use async_trait::async_trait;

use super::{validate, Partial, ProcessScorer};
use crate::generator::Generator;
use crate::scorer::{OutcomeScorer, ScoreError, Scores};
use crate::outcome::Candidate;
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
        let texts: Vec<Vec<String>> = candidates.iter().map(|c| vec![c.text.clone()]).collect();
        if !self.scorer.needs_session() {
            // A scorer that reads only the text gets no session: the branch ids are unused.
            let partials: Vec<Partial<'_>> =
                texts.iter().map(|steps| Partial { branch: 0, steps, finished: true }).collect();
            let scores = self.scorer.score_steps(problem, &partials, None).await?;
            validate(&name, candidates.len(), &scores)?;
            return Ok(scores);
        }
        let mut session = self.generator.open(&(self.prompt)(problem), 0).await.map_err(fail)?;
        let branches = session.fork(session.root(), candidates.len()).await.map_err(fail)?;
        for (&b, c) in branches.iter().zip(candidates) {
            session.append(b, &c.text).await.map_err(fail)?;
        }
        let partials: Vec<Partial<'_>> =
            branches.iter().zip(&texts).map(|(&branch, steps)| Partial { branch, steps, finished: true }).collect();
        let mut scores = self.scorer.score_steps(problem, &partials, Some(session.as_mut())).await?;
        validate(&name, candidates.len(), &scores)?;
        let _ = session.release(&branches).await;
        scores.usage += session.usage();
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::process::{SelfEval, StepCheck};
    use crate::testing::{Choice, ScriptedGenerator};
    use crate::FinishReason;

    fn candidate(index: usize, text: &str) -> Candidate {
        Candidate {
            index,
            text: text.into(),
            answer: None,
            key: None,
            n_tokens: text.split_whitespace().count(),
            mean_logprob: None,
            finish: FinishReason::Eos,
            score: None,
        }
    }

    fn problem() -> Problem {
        Problem {
            id: "t".into(),
            question: "Tom has 3 apples. He buys 4 more.".into(),
            gold: "7".into(),
            level: Some(1),
            steps: vec!["7".into()],
        }
    }

    fn judge(scorer: Arc<dyn ProcessScorer>) -> ProcessAsOutcome {
        let prompt: PromptFn = Arc::new(|p: &Problem| vec![Message::user(p.question.clone())]);
        ProcessAsOutcome { scorer, generator: Arc::new(ScriptedGenerator::new(vec![Choice::new("x", 1.0, -1.0)])), prompt }
    }

    #[test]
    fn a_text_only_scorer_opens_no_session() {
        let cands = [candidate(0, "3 + 4 = 7. The answer is 7."), candidate(1, "3 + 4 = 8. The answer is 8.")];
        let scores = block_on(judge(Arc::new(StepCheck)).score(&problem(), &cands)).unwrap();
        assert_eq!(scores.values, vec![1.0, 0.0]);
        // An opened session would have computed the prompt and reused it for each fork.
        assert_eq!((scores.usage.prompt_computed, scores.usage.prompt_reused), (0, 0), "{:?}", scores.usage);
        assert_eq!(scores.usage.scorer_passes, 2);
    }

    #[test]
    fn self_evaluation_without_a_session_is_an_error_not_a_panic() {
        let partials = [Partial { branch: 0, steps: &["3 + 4 = 7.".to_string()], finished: true }];
        let err = block_on(SelfEval::default().score_steps(&problem(), &partials, None)).unwrap_err();
        assert!(err.to_string().contains("no session"), "{err}");
    }
}
