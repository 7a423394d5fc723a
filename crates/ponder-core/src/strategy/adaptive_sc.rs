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
use statrs::function::beta::beta_reg;

use super::{candidate, majority, tally, Candidate, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem, Usage};

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
        Self { max_samples, sampling, threshold: 0.95, round_size: 4 }
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

#[async_trait]
impl Strategy for AdaptiveSelfConsistency {
    fn name(&self) -> &str {
        "adaptive-sc"
    }
    fn budget(&self) -> usize {
        self.max_samples
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut candidates: Vec<Candidate> = Vec::new();
        let (mut usage, mut n_failed, mut started) = (Usage::default(), 0, 0);
        let mut stopped_early = false;
        while started < self.max_samples && !stopped_early {
            let n = self.round_size.max(1).min(self.max_samples - started);
            let req = SampleRequest { messages: messages.to_vec(), n, params: self.sampling.clone(), first_index: started };
            let mut stream = ctx.generator.sample(req).await?;
            started += n;
            while let Some(result) = stream.next().await {
                match result {
                    Ok(sample) => candidates.push(candidate(sample, ctx)),
                    Err(_) => n_failed += 1,
                }
                let (v1, v2) = top_two(&candidates);
                if v1 > 0 && leader_stays_probability(v1, v2) >= self.threshold {
                    // Failed samples were drawn too: counting only candidates would call a
                    // stop on the budget's last sample early.
                    stopped_early = candidates.len() + n_failed < self.max_samples;
                    stream.cancel();
                    break;
                }
            }
            usage += stream.finish().await?;
        }
        if candidates.is_empty() {
            return Err(StrategyError::InsufficientCandidates(started));
        }
        candidates.sort_by_key(|c| c.index);
        Ok(majority(self.name(), candidates, usage, n_failed, stopped_early))
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
