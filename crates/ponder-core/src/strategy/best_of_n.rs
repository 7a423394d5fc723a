//! Best-of-N: score each of N samples with an outcome scorer, return the best.
//! Budget unit: N samples + N scorer passes. Ties go to the lowest sample index.

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{best_scored, draw, score, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BonConfig {
    /// Samples N.
    pub n: usize,
}

impl Default for BonConfig {
    fn default() -> Self {
        Self { n: 8 }
    }
}

impl StrategyConfig for BonConfig {
    fn name(&self) -> &'static str {
        "bon"
    }
    fn about(&self) -> &'static str {
        "best-of-N: the highest-scoring of N samples (outcome scorer)"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples (+ one scorer pass each)"
    }
    fn needs(&self) -> Needs {
        Needs { scorer: true, ..Needs::default() }
    }
    fn reuses_probes(&self) -> bool {
        true
    }
    fn probe_source(&self) -> bool {
        true
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(BestOfN { n_samples: self.n, sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct BestOfN {
    pub n_samples: usize,
    pub sampling: SamplingParams,
}

#[async_trait]
impl Strategy for BestOfN {
    fn name(&self) -> &str {
        "bon"
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
        Ok(best_scored(self.name(), candidates, usage + scorer_usage, n_failed, false))
    }
}

