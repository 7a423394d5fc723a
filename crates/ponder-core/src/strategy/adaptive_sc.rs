//! Adaptive self-consistency (Aggarwal et al. 2023, arXiv:2305.11860) with the Beta
//! stopping rule (as in its_hub's `BetaSelfConsistency`).
//! Budget unit: samples drawn, at most N; tokens of samples cancelled midway still count
//! in usage.
//! 1 draw samples in rounds of `round_size` running together
//! 2 after each finished sample, with v1 >= v2 the top two vote counts,
//!   P(leader stays) = 1 - I_0.5(v1 + 1, v2 + 1)
//! 3 once P >= `threshold`, cancel the samples still running and stop
//! 4 return the majority answer over the samples drawn.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use statrs::function::beta::beta_reg;

use super::rounds::{draw_in_rounds, Drawn, Settle};
use super::abstain;
use super::spec::{check_n, ConfigError, StrategyConfig};
use super::{majority, tally, Candidate, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveScConfig {
    /// Most samples N.
    pub n: usize,
    /// Stop once the leader stays leader with at least this probability.
    pub threshold: f64,
    /// Samples started together per round.
    pub round_size: usize,
    /// Answer nothing when the winner holds less than this share of the vote (0 to 1);
    /// left out, always answer.
    pub abstain_below: Option<f64>,
}

impl Default for AdaptiveScConfig {
    fn default() -> Self {
        Self { n: 8, threshold: 0.95, round_size: 4, abstain_below: None }
    }
}

impl StrategyConfig for AdaptiveScConfig {
    fn name(&self) -> &'static str {
        "adaptive-sc"
    }
    fn about(&self) -> &'static str {
        "adaptive self-consistency (Aggarwal et al. 2023): vote, stop once the leader is settled"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples (at most)"
    }
    fn reuses_probes(&self) -> bool {
        true
    }
    fn abstain_below(&self) -> Option<f64> {
        self.abstain_below
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        abstain::check(self.abstain_below)?;
        let t = self.threshold;
        ConfigError::check(t > 0.0 && t <= 1.0, "threshold", || format!("must be in (0, 1], got {t}"))?;
        ConfigError::check(self.round_size >= 1, "round_size", || "must be at least 1, got 0".into())
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(AdaptiveSelfConsistency {
            max_samples: self.n,
            sampling,
            threshold: self.threshold,
            round_size: self.round_size,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct AdaptiveSelfConsistency {
    pub max_samples: usize,
    pub sampling: SamplingParams,
    /// Stop once the leader stays leader with at least this probability.
    pub threshold: f64,
    /// Samples started together per round.
    pub round_size: usize,
}

impl AdaptiveSelfConsistency {
    pub fn new(max_samples: usize, sampling: SamplingParams) -> Self {
        let d = AdaptiveScConfig::default();
        Self { max_samples, sampling, threshold: d.threshold, round_size: d.round_size }
    }
}

/// P(the current leader stays leader) under the Beta rule: 1 - I_0.5(v1+1, v2+1).
pub fn leader_stays_probability(v1: usize, v2: usize) -> f64 {
    1.0 - beta_reg(v1 as f64 + 1.0, v2 as f64 + 1.0, 0.5)
}

/// The top two vote counts among candidates.
fn top_two(candidates: &[Candidate]) -> (usize, usize) {
    let votes = tally(candidates, false);
    let v1 = votes.first().map_or(0, |v| v.count);
    let v2 = votes.get(1).map_or(0, |v| v.count);
    (v1, v2)
}

/// Step 2-3: settled once P(leader stays) reaches the threshold.
struct BetaRule(f64);

#[async_trait]
impl Settle for BetaRule {
    async fn settle(&mut self, drawn: &mut Drawn, _fresh: bool) -> Result<bool, StrategyError> {
        let (v1, v2) = top_two(&drawn.candidates);
        Ok(v1 > 0 && leader_stays_probability(v1, v2) >= self.0)
    }
}

#[async_trait]
impl Strategy for AdaptiveSelfConsistency {
    fn name(&self) -> &str {
        "adaptive-sc"
    }
    fn budget(&self) -> usize {
        self.max_samples
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut rule = BetaRule(self.threshold);
        let mut d = draw_in_rounds(messages, self.max_samples, self.round_size, &self.sampling, ctx, &mut rule).await?;
        d.candidates.sort_by_key(|c| c.index);
        Ok(majority(self.name(), d.candidates, d.usage, d.n_failed, d.stopped_early))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_rule_matches_closed_form() {
        // With v2 = 0, I_0.5(v1+1, 1) = 0.5^(v1+1).
        for v1 in 1..10 {
            let expected = 1.0 - 0.5f64.powi(v1 as i32 + 1);
            assert!((leader_stays_probability(v1, 0) - expected).abs() < 1e-12, "v1={v1}");
        }
        // A tie is a coin flip.
        assert!((leader_stays_probability(3, 3) - 0.5).abs() < 1e-12);
        // Four unanimous votes pass 0.95, three do not.
        assert!(leader_stays_probability(4, 0) >= 0.95);
        assert!(leader_stays_probability(3, 0) < 0.95);
    }
}
