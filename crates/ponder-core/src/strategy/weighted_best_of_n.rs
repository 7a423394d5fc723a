//! Weighted best-of-N (search-and-learn's `pred_weighted@n`).
//! Budget unit: N samples + N scorer passes.
//! 1 sample N  2 score each  3 sum scores over equivalent answers
//! 4 return the answer with the highest total (ties: more votes, then earliest).

use async_trait::async_trait;

use super::{draw, position_of, score, tally, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone)]
pub struct WeightedBestOfN {
    pub n_samples: usize,
    pub sampling: SamplingParams,
}

#[async_trait]
impl Strategy for WeightedBestOfN {
    fn name(&self) -> &str {
        "weighted-bon"
    }
    fn budget(&self) -> usize {
        self.n_samples
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        if ctx.scorer.is_none() {
            return Err(StrategyError::NeedsScorer(self.name().into()));
        }
        let (mut candidates, n_failed, usage) = draw(messages, self.n_samples, &self.sampling, ctx).await?;
        let scorer_usage = score(problem, &mut candidates, ctx, self.name()).await?;
        let votes = tally(&candidates, true);
        // Within the winning class, return the text of its best-scored member.
        let chosen = votes.first().and_then(|v| {
            candidates
                .iter()
                .enumerate()
                .filter(|(_, c)| c.key.as_deref() == Some(v.key.as_str()))
                .max_by(|(_, a), (_, b)| {
                    a.score.unwrap_or(0.0).total_cmp(&b.score.unwrap_or(0.0)).then(b.index.cmp(&a.index))
                })
                .map(|(i, _)| i)
        });
        Ok(Outcome {
            strategy: self.name().into(),
            answer: votes.first().map(|v| v.answer.clone()),
            chosen: chosen.or_else(|| position_of(&candidates, 0)).or(Some(0)),
            candidates,
            votes,
            usage: usage + scorer_usage,
            n_failed,
            stopped_early: false,
            abstained: false,
        })
    }
}
