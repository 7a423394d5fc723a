//! Single sample: the baseline every strategy is measured against.
//! Budget unit: 1 sample. Greedy when the temperature is 0, sampled otherwise.

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::spec::{check_n, ConfigError, StrategyConfig};
use super::{draw, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

/// `n` is OpenAI's `n`: independent samples, all returned as candidates (the gateway's
/// choices); the first is the answer. `--budget` does not change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SingleConfig {
    pub n: usize,
}

impl Default for SingleConfig {
    fn default() -> Self {
        Self { n: 1 }
    }
}

impl StrategyConfig for SingleConfig {
    fn name(&self) -> &'static str {
        "single"
    }
    fn about(&self) -> &'static str {
        "one sample, the baseline (n > 1: n independent samples, the first is the answer)"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples"
    }
    fn takes_budget(&self) -> bool {
        false
    }
    fn reuses_probes(&self) -> bool {
        true
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(Single { n: self.n, sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct Single {
    pub n: usize,
    pub sampling: SamplingParams,
}

#[async_trait]
impl Strategy for Single {
    fn name(&self) -> &str {
        "single"
    }
    fn budget(&self) -> usize {
        self.n
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let (candidates, n_failed, usage) = draw(messages, self.n, &self.sampling, ctx).await?;
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
