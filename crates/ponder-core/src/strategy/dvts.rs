//! Diverse verifier tree search (Beeching, Tunstall & Rush 2024, "Scaling test-time compute
//! with open models"; Hugging Face search-and-learn `dvts`).
//!
//! Budget unit: N = branches extended per step. Width M = `beam_width` clamped to `1..=N`;
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

use super::search::{best, outcome, pool, Searcher};
use super::{Ctx, Outcome, SearchConfig, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone)]
pub struct Dvts {
    pub budget: usize,
    pub sampling: SamplingParams,
    pub search: SearchConfig,
}

impl Dvts {
    pub fn new(budget: usize, sampling: SamplingParams, search: SearchConfig) -> Self {
        Self { budget, sampling, search }
    }

    /// (M, T): children per step and subtrees.
    pub fn shape(&self) -> (usize, usize) {
        let m = self.search.width(self.budget);
        (m, (self.budget / m).max(1))
    }
}

#[async_trait]
impl Strategy for Dvts {
    fn name(&self) -> &str {
        "dvts"
    }
    fn budget(&self) -> usize {
        self.budget
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut s =
            Searcher::open(self.name(), self.budget, problem, messages, ctx, &self.sampling, &self.search).await?;
        let (m, subtrees) = self.shape();
        let aggregate = self.search.aggregate;
        let root = s.root();
        // The frontier holds each subtree's children; `owner[i]` is the subtree of frontier[i].
        let mut frontier = s.expand(root, subtrees * m).await?;
        let mut owner: Vec<usize> = (0..frontier.len()).map(|i| i / m).collect();
        let mut results: Vec<Option<Track>> = vec![None; subtrees];
        for step in 1..=self.search.steps() {
            s.advance(&mut frontier).await?;
            let mut children: Vec<Vec<Track>> = vec![Vec::new(); subtrees];
            for (t, o) in frontier.drain(..).zip(owner.drain(..)) {
                children[o].push(t);
            }
            for (tree, mut kids) in children.into_iter().enumerate() {
                let Some(b) = best(&kids, aggregate) else { continue };
                let chosen = kids.swap_remove(b);
                s.release(kids.iter().map(|t| t.branch)).await?;
                if chosen.is_finished() || step == self.search.steps() {
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
