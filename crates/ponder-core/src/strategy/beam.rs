//! Beam search with a process reward model (Snell et al. 2024, "Scaling LLM Test-Time
//! Compute Optimally", arXiv:2408.03314; Hugging Face search-and-learn `beam_search`).
//!
//! Budget unit: N = beams per step (step generations per step). Width M = `width`
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
use serde::{Deserialize, Serialize};

use super::search::{best, clamp_width, outcome, pool, Searcher, StepConfig};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{Ctx, Outcome, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeamConfig {
    /// Branches N kept alive at every step.
    pub n: usize,
    /// Children per kept beam (M): N/M beams survive each step.
    pub width: usize,
    pub step: StepConfig,
}

impl Default for BeamConfig {
    fn default() -> Self {
        Self { n: 8, width: 4, step: StepConfig::default() }
    }
}

impl StrategyConfig for BeamConfig {
    fn name(&self) -> &'static str {
        "beam"
    }
    fn about(&self) -> &'static str {
        "beam search: keep the N/M best partial solutions, expand each M ways"
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
        Ok(Box::new(BeamSearch { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct BeamSearch {
    pub config: BeamConfig,
    pub sampling: SamplingParams,
}

impl BeamSearch {
    /// (M, K): children per kept beam and beams kept.
    pub fn shape(&self) -> (usize, usize) {
        let m = clamp_width(self.config.width, self.config.n);
        (m, (self.config.n / m).max(1))
    }
}

/// The first `k` of `live` by aggregated score after dropping repeated texts; the rest second.
pub(crate) fn top_k(live: Vec<Track>, k: usize, step: &StepConfig) -> (Vec<Track>, Vec<Track>) {
    let mut seen = std::collections::HashSet::new();
    let (unique, mut dropped): (Vec<Track>, Vec<Track>) = live.into_iter().partition(|t| seen.insert(t.text()));
    let mut order: Vec<usize> = (0..unique.len()).collect();
    // Stable: equal scores keep their order.
    order.sort_by(|&a, &b| unique[b].score(step.aggregate).total_cmp(&unique[a].score(step.aggregate)));
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
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut s =
            Searcher::open(self.name(), self.config.n, problem, messages, ctx, &self.sampling, &self.config.step).await?;
        let (n, (m, k)) = (self.config.n, self.shape());
        let root = s.root();
        let mut live = s.expand(root, n).await?;
        let mut completed: Vec<Track> = Vec::new();
        for step in 1..=self.config.step.steps() {
            s.advance(&mut live).await?;
            let (done, rest): (Vec<Track>, Vec<Track>) = live.into_iter().partition(Track::is_finished);
            completed.extend(done);
            live = rest;
            if completed.len() >= n || live.is_empty() || step == self.config.step.steps() {
                break;
            }
            let (kept, dropped) = top_k(live, k, &self.config.step);
            s.release(dropped.iter().map(|t| t.branch)).await?;
            live = Vec::with_capacity(m * kept.len());
            for beam in kept {
                live.extend(s.expand(beam, m).await?);
            }
        }
        let tracks = pool(completed.into_iter().chain(live).collect());
        let chosen = best(&tracks, self.config.step.aggregate);
        Ok(outcome(self.name(), &tracks, chosen, self.config.step.aggregate, ctx, s.usage(), false))
    }
}
