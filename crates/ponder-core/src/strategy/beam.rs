//! Beam search with a process reward model (Snell et al. 2024, "Scaling LLM Test-Time
//! Compute Optimally", arXiv:2408.03314; Hugging Face search-and-learn `beam_search`).
//!
//! Budget unit: N = beams per step (step generations per step). Width M = `beam_width`
//! clamped to `1..=N`; K = max(1, N / M) beams are kept.
//! 1 fork the prompt into N branches and extend them all by one step (one batch)
//! 2 score the new steps; finished branches go to the completed pool (they stay finished)
//! 3 among the live branches drop those whose text equals an earlier one, keep the K with
//!   the best aggregated score (ties: the earlier), release the rest at once
//! 4 expand each kept beam into M children (fork; KV shared), so after the first step at
//!   most M·K ≤ N branches are live; extend them all in one batch and go to 2
//! 5 stop at N completed, when no beam is live, or after `max_steps` steps
//!
//! The answer is the completed beam with the best aggregated score, else the best live one.
//! Candidates: the completed beams, or the live ones when none completed.

use async_trait::async_trait;

use super::search::{best, outcome, pool, Searcher};
use super::{Ctx, Outcome, SearchConfig, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone)]
pub struct BeamSearch {
    pub budget: usize,
    pub sampling: SamplingParams,
    pub search: SearchConfig,
}

impl BeamSearch {
    pub fn new(budget: usize, sampling: SamplingParams, search: SearchConfig) -> Self {
        Self { budget, sampling, search }
    }

    /// (M, K): children per kept beam and beams kept.
    pub fn shape(&self) -> (usize, usize) {
        let m = self.search.width(self.budget);
        (m, (self.budget / m).max(1))
    }
}

/// The first `k` of `live` by aggregated score after dropping repeated texts; the rest second.
pub(crate) fn top_k(live: Vec<Track>, k: usize, search: &SearchConfig) -> (Vec<Track>, Vec<Track>) {
    let mut seen = std::collections::HashSet::new();
    let (unique, mut dropped): (Vec<Track>, Vec<Track>) = live.into_iter().partition(|t| seen.insert(t.text()));
    let mut order: Vec<usize> = (0..unique.len()).collect();
    // Stable: equal scores keep their order.
    order.sort_by(|&a, &b| unique[b].score(search.aggregate).total_cmp(&unique[a].score(search.aggregate)));
    let keep: std::collections::HashSet<usize> = order.into_iter().take(k).collect();
    let mut kept = Vec::new();
    for (i, t) in unique.into_iter().enumerate() {
        if keep.contains(&i) {
            kept.push(t);
        } else {
            dropped.push(t);
        }
    }
    (kept, dropped)
}

#[async_trait]
impl Strategy for BeamSearch {
    fn name(&self) -> &str {
        "beam"
    }
    fn budget(&self) -> usize {
        self.budget
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut s =
            Searcher::open(self.name(), self.budget, problem, messages, ctx, &self.sampling, &self.search).await?;
        let (n, (m, k)) = (self.budget, self.shape());
        let root = s.root();
        let mut live = s.expand(root, n).await?;
        let mut completed: Vec<Track> = Vec::new();
        for step in 1..=self.search.steps() {
            s.advance(&mut live).await?;
            let (done, rest): (Vec<Track>, Vec<Track>) = live.into_iter().partition(Track::is_finished);
            completed.extend(done);
            live = rest;
            if completed.len() >= n || live.is_empty() || step == self.search.steps() {
                break;
            }
            let (kept, dropped) = top_k(live, k, &self.search);
            s.release(dropped.iter().map(|t| t.branch)).await?;
            live = Vec::with_capacity(m * kept.len());
            for beam in kept {
                live.extend(s.expand(beam, m).await?);
            }
        }
        let tracks = pool(completed.into_iter().chain(live).collect());
        let chosen = best(&tracks, self.search.aggregate);
        Ok(outcome(self.name(), &tracks, chosen, self.search.aggregate, ctx, s.usage(), false))
    }
}
