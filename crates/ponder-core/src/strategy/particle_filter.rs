//! Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to
//! Inference-Time Scaling of LLMs using Particle-Based Monte Carlo", arXiv:2502.01618).
//!
//! Budget unit: N particles, constant through the run; a step costs one step generation
//! and one process-scorer pass per running particle.
//! Scoring signal: the process reward of each particle's steps, read as a likelihood.
//! 1 fork the prompt into N particles
//! 2 extend the unfinished ones by a step and weight every particle by its reward
//! 3 resample when the effective sample size is low; finished particles stay finished
//! 4 answer: the best (or a weight-drawn) finished particle.
//! The steps are one SMC sweep ([`super::smc`]); [`ParticleFilter::solve_traced`] also
//! returns every step's weights and ESS.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::search::{outcome, Searcher, StepConfig};
use super::smc::{pick, rng_for, sweep, FinalPick, PfStep, Resampling, Smc, Sweep};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{Ctx, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PfConfig {
    /// Particles N.
    pub n: usize,
    pub resampling: Resampling,
    /// Resample only when the effective sample size falls below this fraction of N.
    pub ess_threshold: f64,
    /// Softmax temperature on the particles' log-weights.
    pub temperature: f64,
    pub final_pick: FinalPick,
    pub step: StepConfig,
}

impl Default for PfConfig {
    fn default() -> Self {
        let smc = Smc::standard();
        Self {
            n: 8,
            resampling: smc.resampling,
            ess_threshold: smc.ess_threshold,
            temperature: smc.temperature,
            final_pick: smc.final_pick,
            step: smc.step,
        }
    }
}

impl PfConfig {
    pub fn smc(&self) -> Smc {
        Smc {
            resampling: self.resampling,
            ess_threshold: self.ess_threshold,
            temperature: self.temperature,
            final_pick: self.final_pick,
            step: self.step.clone(),
        }
    }
}

impl StrategyConfig for PfConfig {
    fn name(&self) -> &'static str {
        "pf"
    }
    fn about(&self) -> &'static str {
        "particle filtering (Puri et al. 2025): N particles resampled by process reward"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "particles"
    }
    fn needs(&self) -> Needs {
        Needs { process_scorer: true, session: true, ..Needs::default() }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        self.smc().validate()
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(ParticleFilter { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct ParticleFilter {
    pub config: PfConfig,
    pub sampling: SamplingParams,
}

impl ParticleFilter {
    /// Solves and returns every step's weights and ESS.
    pub async fn solve_traced(
        &self,
        problem: &Problem,
        messages: &[Message],
        ctx: &Ctx<'_>,
    ) -> Result<(Outcome, Vec<PfStep>), StrategyError> {
        if ctx.process.is_none() {
            return Err(StrategyError::NeedsProcessScorer(self.name().into()));
        }
        let smc = self.config.smc();
        smc.check()?;
        let n = self.config.n;
        let mut s = Searcher::open(self.name(), n, problem, messages, ctx, &self.sampling, &smc.step).await?;
        let mut trace = Vec::new();
        let run = Sweep { n, index: 0, reference: None, consume_root: true };
        let (particles, w) = sweep(&mut s, &smc, self.sampling.seed, run, &mut trace).await?;
        let mut rng = rng_for(self.sampling.seed, 0, 0, &smc);
        let (pool, chosen) = pick(particles, &w, smc.final_pick, &mut rng);
        Ok((outcome(self.name(), &pool, chosen, smc.step.aggregate, ctx, s.usage(), false), trace))
    }
}

#[async_trait]
impl Strategy for ParticleFilter {
    fn name(&self) -> &str {
        "pf"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        Ok(self.solve_traced(problem, messages, ctx).await?.0)
    }
}
