//! Weighted best-of-N (search-and-learn's `pred_weighted@n`).
//! Budget unit: N samples + N scorer passes.
//! 1 sample N  2 score each  3 sum scores over equivalent answers
//! 4 return the answer with the highest total (ties: more votes, then earliest).

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::abstain;
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{draw, position_of, score, tally, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightedBonConfig {
    /// Samples N.
    pub n: usize,
    /// Answer nothing when the winner holds less than this share of the vote (0 to 1);
    /// left out, always answer.
    pub abstain_below: Option<f64>,
}

impl Default for WeightedBonConfig {
    fn default() -> Self {
        Self { n: 8, abstain_below: None }
    }
}

impl StrategyConfig for WeightedBonConfig {
    fn name(&self) -> &'static str {
        "weighted-bon"
    }
    fn about(&self) -> &'static str {
        "weighted best-of-N: the answer whose samples' scores sum highest"
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
    fn abstain_below(&self) -> Option<f64> {
        self.abstain_below
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        abstain::check(self.abstain_below)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(WeightedBestOfN { n_samples: self.n, sampling }))
    }
}

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
