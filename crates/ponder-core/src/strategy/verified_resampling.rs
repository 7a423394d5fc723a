//! Verified resampling with abstention ("Inference Scaling fLaws", Stroebl et al. 2024).
//! Budget unit: samples drawn (at most k) + one verifier run per sample.
//! 1 draw samples in rounds of `round_size` running together
//! 2 verify each as it finishes
//! 3 return the first that passes and cancel the rest
//! 4 if none of the k passes, abstain: no answer, reported apart from wrong answers.
//! Which k is worth it given the verifier's false-positive rate: `verifier::best_k`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::rounds::{draw_in_rounds, Drawn, Settle};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::verifier::Verifier;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyResampleConfig {
    /// Most samples k.
    pub n: usize,
    /// Samples started together per round.
    pub round_size: usize,
}

impl Default for VerifyResampleConfig {
    fn default() -> Self {
        Self { n: 8, round_size: 4 }
    }
}

impl StrategyConfig for VerifyResampleConfig {
    fn name(&self) -> &'static str {
        "verify-resample"
    }
    fn about(&self) -> &'static str {
        "verified resampling (Stroebl et al. 2024): the first sample the verifier passes, else abstain"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples (at most; + one verifier run each)"
    }
    fn needs(&self) -> Needs {
        Needs { verifier: true, ..Needs::default() }
    }
    fn reuses_probes(&self) -> bool {
        true
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        ConfigError::check(self.round_size >= 1, "round_size", || "must be at least 1, got 0".into())
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(VerifiedResampling { max_samples: self.n, sampling, round_size: self.round_size }))
    }
}

#[derive(Debug, Clone)]
pub struct VerifiedResampling {
    pub max_samples: usize,
    pub sampling: SamplingParams,
    pub round_size: usize,
}

impl VerifiedResampling {
    pub fn new(max_samples: usize, sampling: SamplingParams) -> Self {
        Self { max_samples, sampling, round_size: VerifyResampleConfig::default().round_size }
    }
}

/// Step 2-3: verify each sample as it finishes; settled by the first that passes.
struct FirstPass<'a> {
    problem: &'a Problem,
    verifier: &'a dyn Verifier,
    passed: Option<usize>,
}

#[async_trait]
impl Settle for FirstPass<'_> {
    async fn settle(&mut self, drawn: &mut Drawn, fresh: bool) -> Result<bool, StrategyError> {
        let at = drawn.candidates.len().wrapping_sub(1);
        let Some(c) = drawn.candidates.last_mut().filter(|_| fresh) else { return Ok(false) };
        let v = self.verifier.verify(self.problem, c).await?;
        drawn.usage += v.usage;
        drawn.usage.scorer_passes += 1;
        c.score = Some(if v.passed { 1.0 } else { 0.0 });
        if v.passed {
            self.passed = Some(at);
        }
        Ok(v.passed)
    }
}

#[async_trait]
impl Strategy for VerifiedResampling {
    fn name(&self) -> &str {
        "verify-resample"
    }
    fn budget(&self) -> usize {
        self.max_samples
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let verifier = ctx.verifier.ok_or_else(|| StrategyError::NeedsVerifier(self.name().into()))?;
        let mut rule = FirstPass { problem, verifier, passed: None };
        let d = draw_in_rounds(messages, self.max_samples, self.round_size, &self.sampling, ctx, &mut rule).await?;
        let passed = rule.passed;
        Ok(Outcome {
            strategy: self.name().into(),
            answer: passed.and_then(|i| d.candidates[i].answer.clone()),
            chosen: passed,
            stopped_early: d.stopped_early,
            abstained: passed.is_none(),
            candidates: d.candidates,
            votes: Vec::new(),
            usage: d.usage,
            n_failed: d.n_failed,
        })
    }
}
