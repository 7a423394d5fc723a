//! Abstention by confidence, for every voting strategy: when the winning answer holds less
//! than `abstain_below` of the vote (its share of votes, or of DeepConf's confidence
//! weight), answer nothing. A wrong answer often costs more than none (Inference Scaling
//! fLaws); the risk–coverage curve of `ponder report` shows what each threshold trades.

use async_trait::async_trait;

use super::spec::ConfigError;
use super::{Ctx, Outcome, Strategy, StrategyError};
use crate::{Message, Problem};

/// Checks a configuration's `abstain_below`: a share, in [0, 1].
pub(crate) fn check(t: Option<f64>) -> Result<(), ConfigError> {
    match t {
        Some(t) => ConfigError::check((0.0..=1.0).contains(&t), "abstain_below", || {
            format!("is a share of the vote, from 0 to 1, got {t}")
        }),
        None => Ok(()),
    }
}

/// A voting strategy that abstains under the threshold.
pub(crate) struct Abstaining {
    pub inner: Box<dyn Strategy>,
    pub below: f64,
}

#[async_trait]
impl Strategy for Abstaining {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn budget(&self) -> usize {
        self.inner.budget()
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut out = self.inner.solve(problem, messages, ctx).await?;
        if out.abstain_below(self.below) {
            tracing::debug!(confidence = out.confidence(), below = self.below, "abstained");
        }
        Ok(out)
    }
}
