//! Particle Gibbs (Puri et al. 2025, arXiv:2502.01618, the iterated form of its particle
//! filtering; conditional SMC after Andrieu, Doucet & Holenstein 2010).
//!
//! Budget unit: N particles per sweep; `sweeps` sweeps, so N × sweeps particles in all.
//! 1 sweep 1 is particle filtering with N particles (an SMC sweep, `smc`)
//! 2 its final pick (`final_pick`: `Sample` is the Gibbs draw, `Argmax` the greedy one)
//!   becomes the reference trajectory; every other branch is released
//! 3 each later sweep runs N − 1 fresh particles beside the reference, which holds slot 0:
//!   at step t it stands as its first t steps with the scores it already has (never
//!   re-generated or re-scored), takes part in the weights, and is never resampled away;
//!   other particles that draw it become forks of its branch rolled back to that prefix,
//!   then go on sampling from there
//! 4 the last sweep's pick is the answer; its pool (finished particles, else all) is the
//!   candidates
//!
//! Finished particles are absorbing as in particle filtering; here their branches stay
//! held until the end of the sweep, since the pick's branch must outlive it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::particle_filter::PfConfig;
use super::search::{outcome, Searcher, StepConfig};
use super::smc::{pick, rng_for, sweep, FinalPick, PfStep, Resampling, Smc, Sweep};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{Ctx, Outcome, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgConfig {
    /// Particles per sweep N.
    pub n: usize,
    /// Sweeps; each after the first keeps the previous pick as reference.
    pub sweeps: usize,
    pub resampling: Resampling,
    pub ess_threshold: f64,
    pub temperature: f64,
    /// `sample` is the Gibbs draw of the reference, `argmax` the greedy one.
    pub final_pick: FinalPick,
    pub step: StepConfig,
}

impl Default for PgConfig {
    fn default() -> Self {
        let pf = PfConfig::default();
        Self {
            n: pf.n,
            sweeps: 2,
            resampling: pf.resampling,
            ess_threshold: pf.ess_threshold,
            temperature: pf.temperature,
            final_pick: pf.final_pick,
            step: pf.step,
        }
    }
}

impl PgConfig {
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

impl StrategyConfig for PgConfig {
    fn name(&self) -> &'static str {
        "pgibbs"
    }
    fn about(&self) -> &'static str {
        "particle Gibbs (Puri et al. 2025): particle filtering sweeps around a reference trajectory"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "particles per sweep (N x sweeps in all)"
    }
    fn needs(&self) -> Needs {
        Needs { process_scorer: true, session: true, ..Needs::default() }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        ConfigError::check(self.sweeps >= 1, "sweeps", || "must be at least 1, got 0".into())?;
        self.smc().validate()
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(ParticleGibbs { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct ParticleGibbs {
    pub config: PgConfig,
    pub sampling: SamplingParams,
}

impl ParticleGibbs {
    /// Sweeps to run (at least one).
    pub fn sweeps(&self) -> usize {
        self.config.sweeps.max(1)
    }

    /// Solves and returns every step's weights and ESS, sweep by sweep.
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
        s.keep_finished = true;
        let root = s.root().branch;
        let mut trace = Vec::new();
        let mut reference: Option<Track> = None;
        let mut result = (Vec::new(), None);
        for index in 0..self.sweeps() {
            let last = index + 1 == self.sweeps();
            let run = Sweep { n, index, reference: reference.as_ref(), consume_root: last };
            let (particles, w) = sweep(&mut s, &smc, self.sampling.seed, run, &mut trace).await?;
            let mut rng = rng_for(self.sampling.seed, index, 0, &smc);
            let (pool, chosen) = pick(particles, &w, smc.final_pick, &mut rng);
            reference = chosen.map(|i| pool[i].clone());
            if !last {
                // Only the root (for fresh particles) and the new reference's branch go on.
                let keep: Vec<_> = [Some(root), reference.as_ref().map(|t| t.branch)].into_iter().flatten().collect();
                s.release_all_except(&keep).await?;
            }
            result = (pool, chosen);
        }
        let (pool, chosen) = result;
        Ok((outcome(self.name(), &pool, chosen, smc.step.aggregate, ctx, s.usage(), false), trace))
    }
}

#[async_trait]
impl Strategy for ParticleGibbs {
    fn name(&self) -> &str {
        "pgibbs"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        Ok(self.solve_traced(problem, messages, ctx).await?.0)
    }
}
