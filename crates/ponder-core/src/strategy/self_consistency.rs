//! Self-consistency (Wang et al. 2022, arXiv:2203.11171), maj@N.
//! Budget unit: N samples.
//! 1 sample N chains of thought  2 extract each final answer  3 group equivalent answers
//! 4 return the largest group (ties: the group whose first member has the lowest index).

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::abstain;
use super::spec::{check_n, ConfigError, StrategyConfig};
use super::{draw, majority, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScConfig {
    /// Samples N.
    pub n: usize,
    /// Answer nothing when the winner holds less than this share of the vote (0 to 1);
    /// left out, always answer.
    pub abstain_below: Option<f64>,
}

impl Default for ScConfig {
    fn default() -> Self {
        Self { n: 8, abstain_below: None }
    }
}

impl StrategyConfig for ScConfig {
    fn name(&self) -> &'static str {
        "sc"
    }
    fn about(&self) -> &'static str {
        "self-consistency (Wang et al. 2022): majority vote over N samples"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples"
    }
    fn reuses_probes(&self) -> bool {
        true
    }
    fn probe_source(&self) -> bool {
        true
    }
    fn abstain_below(&self) -> Option<f64> {
        self.abstain_below
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        abstain::check(self.abstain_below)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(SelfConsistency { n_samples: self.n, sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct SelfConsistency {
    pub n_samples: usize,
    pub sampling: SamplingParams,
}

#[async_trait]
impl Strategy for SelfConsistency {
    fn name(&self) -> &str {
        "sc"
    }
    fn budget(&self) -> usize {
        self.n_samples
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let (candidates, n_failed, usage) = draw(messages, self.n_samples, &self.sampling, ctx).await?;
        Ok(majority(self.name(), candidates, usage, n_failed, false))
    }
}
