//! Single sample: the baseline every strategy is measured against.
//! Budget unit: 1 sample. Greedy when the temperature is 0, sampled otherwise.

use async_trait::async_trait;

use super::{draw, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone)]
pub struct Single {
    pub sampling: SamplingParams,
}

#[async_trait]
impl Strategy for Single {
    fn name(&self) -> &str {
        "single"
    }
    fn budget(&self) -> usize {
        1
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let (candidates, n_failed, usage) = draw(messages, 1, &self.sampling, ctx).await?;
        Ok(Outcome {
            strategy: self.name().into(),
            answer: candidates[0].answer.clone(),
            chosen: Some(0),
            candidates,
            votes: Vec::new(),
            usage,
            n_failed,
            stopped_early: false,
            abstained: false,
        })
    }
}
