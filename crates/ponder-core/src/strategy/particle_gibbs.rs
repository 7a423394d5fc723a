//! Particle Gibbs (Puri et al. 2025, arXiv:2502.01618, the iterated form of its particle
//! filtering; conditional SMC after Andrieu, Doucet & Holenstein 2010).
//!
//! Budget unit: N particles per sweep; `sweeps` sweeps, so N × sweeps particles in all.
//! 1 sweep 1 is particle filtering with N particles (see `particle_filter`)
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

use super::particle_filter::{check_temperature, pick, rng_for, sweep, PfStep, Sweep};
use super::search::{outcome, Searcher};
use super::{Ctx, Outcome, SearchConfig, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone)]
pub struct ParticleGibbs {
    /// Particles per sweep.
    pub budget: usize,
    pub sampling: SamplingParams,
    pub search: SearchConfig,
}

impl ParticleGibbs {
    pub fn new(budget: usize, sampling: SamplingParams, search: SearchConfig) -> Self {
        Self { budget, sampling, search }
    }

    /// Sweeps to run (at least one).
    pub fn sweeps(&self) -> usize {
        self.search.sweeps.max(1)
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
        check_temperature(&self.search)?;
        let mut s =
            Searcher::open(self.name(), self.budget, problem, messages, ctx, &self.sampling, &self.search).await?;
        s.keep_finished = true;
        let root = s.root().branch;
        let mut trace = Vec::new();
        let mut reference: Option<Track> = None;
        let mut result = (Vec::new(), None);
        for index in 0..self.sweeps() {
            let last = index + 1 == self.sweeps();
            let run = Sweep { n: self.budget, index, reference: reference.as_ref(), consume_root: last };
            let (particles, w) = sweep(&mut s, &self.search, self.sampling.seed, run, &mut trace).await?;
            let mut rng = rng_for(self.sampling.seed, index, 0, &self.search);
            let (pool, chosen) = pick(particles, &w, self.search.final_pick, &mut rng);
            reference = chosen.map(|i| pool[i].clone());
            if !last {
                // Only the root (for fresh particles) and the new reference's branch go on.
                let keep: Vec<_> = [Some(root), reference.as_ref().map(|t| t.branch)].into_iter().flatten().collect();
                s.release_all_except(&keep).await?;
            }
            result = (pool, chosen);
        }
        let (pool, chosen) = result;
        Ok((outcome(self.name(), &pool, chosen, self.search.aggregate, ctx, s.usage(), false), trace))
    }
}

#[async_trait]
impl Strategy for ParticleGibbs {
    fn name(&self) -> &str {
        "pgibbs"
    }
    fn budget(&self) -> usize {
        self.budget
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        Ok(self.solve_traced(problem, messages, ctx).await?.0)
    }
}
