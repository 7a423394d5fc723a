//! Diverse verifier tree search (Beeching, Tunstall & Rush 2024, "Scaling test-time compute
//! with open models"; Hugging Face search-and-learn `dvts`).
//!
//! Budget unit: N = branches extended per step. Width M = `width` clamped to `1..=N`;
//! T = max(1, N / M) independent subtrees, so at most T·M ≤ N branches are live.
//! 1 fork the prompt into M children per subtree and extend all T·M in one batch
//! 2 score the new steps; each subtree keeps only its best child by aggregated score
//!   (ties: the first) and releases the others at once
//! 3 a subtree whose best child finished is done; otherwise that child is expanded into M
//!   children (fork; KV shared), all subtrees' children are extended in one batch, go to 2
//! 4 after `max_steps` steps every subtree stops where it stands
//!
//! Subtrees never exchange branches, which keeps them diverse (unlike one beam of width N).
//! The answer is the subtree result with the best aggregated score, finished ones first.
//! Candidates: one result per subtree (the finished ones, or all when none finished).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::search::{best, clamp_width, outcome, pool, Searcher, StepConfig};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{Ctx, Outcome, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvtsConfig {
    /// Branches N at every step.
    pub n: usize,
    /// Children per subtree step (M): N/M subtrees.
    pub width: usize,
    pub step: StepConfig,
}

impl Default for DvtsConfig {
    fn default() -> Self {
        Self { n: 8, width: 4, step: StepConfig::default() }
    }
}

impl StrategyConfig for DvtsConfig {
    fn name(&self) -> &'static str {
        "dvts"
    }
    fn about(&self) -> &'static str {
        "diverse verifier tree search (Beeching et al. 2024): N/M independent greedy subtrees"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "branches (N at every step)"
    }
    fn needs(&self) -> Needs {
        Needs { process_scorer: true, session: true, ..Needs::default() }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        ConfigError::check(self.width >= 1, "width", || "must be at least 1, got 0".into())?;
        self.step.validate()
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(Dvts { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct Dvts {
    pub config: DvtsConfig,
    pub sampling: SamplingParams,
}

impl Dvts {
    /// (M, T): children per step and subtrees.
    pub fn shape(&self) -> (usize, usize) {
        let m = clamp_width(self.config.width, self.config.n);
        (m, (self.config.n / m).max(1))
    }
}

#[async_trait]
impl Strategy for Dvts {
    fn name(&self) -> &str {
        "dvts"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut s =
            Searcher::open(self.name(), self.config.n, problem, messages, ctx, &self.sampling, &self.config.step).await?;
        let (m, subtrees) = self.shape();
        let aggregate = self.config.step.aggregate;
        let root = s.root();
        // The frontier holds each subtree's children; `owner[i]` is the subtree of frontier[i].
        let mut frontier = s.expand(root, subtrees * m).await?;
        let mut owner: Vec<usize> = (0..frontier.len()).map(|i| i / m).collect();
        let mut results: Vec<Option<Track>> = vec![None; subtrees];
        for step in 1..=self.config.step.steps() {
            s.advance(&mut frontier).await?;
            let mut children: Vec<Vec<Track>> = vec![Vec::new(); subtrees];
            for (t, o) in frontier.drain(..).zip(owner.drain(..)) {
                children[o].push(t);
            }
            for (tree, mut kids) in children.into_iter().enumerate() {
                let Some(b) = best(&kids, aggregate) else { continue };
                let chosen = kids.swap_remove(b);
                s.release(kids.iter().map(|t| t.branch)).await?;
                if chosen.is_finished() || step == self.config.step.steps() {
                    results[tree] = Some(chosen);
                } else {
                    let next = s.expand(chosen, m).await?;
                    owner.extend(std::iter::repeat_n(tree, next.len()));
                    frontier.extend(next);
                }
            }
            if frontier.is_empty() {
                break;
            }
        }
        let tracks = pool(results.into_iter().flatten().collect());
        let chosen = best(&tracks, aggregate);
        Ok(outcome(self.name(), &tracks, chosen, aggregate, ctx, s.usage(), false))
    }
}
