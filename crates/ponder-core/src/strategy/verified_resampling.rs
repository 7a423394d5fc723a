//! Verified resampling with abstention ("Inference Scaling fLaws", Stroebl et al. 2024).
//! Budget unit: samples drawn (at most k) + one verifier run per sample.
//! 1 draw samples in rounds of `round_size` running together
//! 2 verify each as it finishes
//! 3 return the first that passes and cancel the rest
//! 4 if none of the k passes, abstain: no answer, reported apart from wrong answers.
//! Which k is worth it given the verifier's false-positive rate: `verifier::best_k`.

use async_trait::async_trait;

use super::{candidate, Candidate, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem, Usage};

#[derive(Debug, Clone)]
pub struct VerifiedResampling {
    pub max_samples: usize,
    pub sampling: SamplingParams,
    pub round_size: usize,
}

impl VerifiedResampling {
    pub fn new(max_samples: usize, sampling: SamplingParams) -> Self {
        Self { max_samples, sampling, round_size: 4 }
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
        let mut candidates: Vec<Candidate> = Vec::new();
        let (mut usage, mut n_failed, mut started) = (Usage::default(), 0, 0);
        let mut passed: Option<usize> = None;
        while started < self.max_samples && passed.is_none() {
            let n = self.round_size.max(1).min(self.max_samples - started);
            let req = SampleRequest { messages: messages.to_vec(), n, params: self.sampling.clone(), first_index: started };
            let mut stream = ctx.generator.sample(req).await?;
            started += n;
            while let Some(result) = stream.next().await {
                let Ok(sample) = result else {
                    n_failed += 1;
                    continue;
                };
                let mut c = candidate(sample, ctx);
                let v = verifier.verify(problem, &c).await?;
                usage += v.usage;
                usage.scorer_passes += 1;
                c.score = Some(if v.passed { 1.0 } else { 0.0 });
                candidates.push(c);
                if v.passed {
                    passed = Some(candidates.len() - 1);
                    stream.cancel();
                    break;
                }
            }
            usage += stream.finish().await?;
        }
        if candidates.is_empty() {
            return Err(StrategyError::InsufficientCandidates(started));
        }
        Ok(Outcome {
            strategy: self.name().into(),
            answer: passed.and_then(|i| candidates[i].answer.clone()),
            chosen: passed,
            stopped_early: passed.is_some() && candidates.len() + n_failed < self.max_samples,
            abstained: passed.is_none(),
            candidates,
            votes: Vec::new(),
            usage,
            n_failed,
        })
    }
}
