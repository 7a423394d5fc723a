//! A*-decoding (Chatziveroglou 2025, "A*-Decoding: Token-Efficient Inference Scaling",
//! arXiv:2505.13672): best-first search over partial solutions ordered by a PRM.
//!
//! Budget unit: N process-scorer step scorings (one per partial scored); never exceeded.
//! 1 the queue (a `BinaryHeap`) starts with the prompt alone
//! 2 pop the partial with the best priority: the highest aggregated step score, ties to
//!   fewer steps, then to the one pushed first
//! 3 finished: it is the answer, stop. At `max_steps` steps: it cannot grow; keep it as a
//!   leaf and pop the next. Budget spent: stop
//! 4 otherwise expand it into M = `width` children (fewer if the budget has fewer
//!   scorings left): the branch goes on as the first child and M−1 forks (KV shared), so
//!   the expanded node holds nothing more; extend the children in one batch, score, push
//!
//! With the queue empty or the budget spent, the answer is the best finished partial in the
//! queue, else the best unfinished one. Candidates: every finished leaf (every leaf when
//! none finished), in the order they were made. Stopped early when it found its answer
//! before the budget was spent.
//!
//! Every queued partial holds its branch (KV cells shared with its parent) until it is
//! popped, so at most N branches are held; branches cut at the step limit are released.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::search::{outcome, Searcher, StepConfig};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{Ctx, Outcome, Strategy, StrategyError, Track};
use crate::generator::SamplingParams;
use crate::process::Aggregate;
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AstarConfig {
    /// Process-scorer passes N (step scorings).
    pub n: usize,
    /// Children per expanded node.
    pub width: usize,
    pub step: StepConfig,
}

impl Default for AstarConfig {
    fn default() -> Self {
        Self { n: 8, width: 4, step: StepConfig::default() }
    }
}

impl StrategyConfig for AstarConfig {
    fn name(&self) -> &'static str {
        "astar"
    }
    fn about(&self) -> &'static str {
        "A* over reasoning steps: expand the best-scoring partial first"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "process-scorer passes"
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
        Ok(Box::new(AStar { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct AStar {
    pub config: AstarConfig,
    pub sampling: SamplingParams,
}

/// A partial solution in the queue.
struct Node {
    score: f64,
    /// Creation order: ties go to the older node, which keeps runs deterministic.
    seq: usize,
    track: Track,
}

impl Node {
    fn new(track: Track, aggregate: Aggregate, seq: &mut usize) -> Self {
        *seq += 1;
        Self { score: track.score(aggregate), seq: *seq, track }
    }
}

impl Ord for Node {
    /// Greater is popped first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.track.steps.len().cmp(&self.track.steps.len()))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Node {}

#[async_trait]
impl Strategy for AStar {
    fn name(&self) -> &str {
        "astar"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let mut s =
            Searcher::open(self.name(), self.config.n, problem, messages, ctx, &self.sampling, &self.config.step).await?;
        let (n, m, aggregate) = (self.config.n, self.config.width.max(1), self.config.step.aggregate);
        let mut seq = 0;
        let mut queue = BinaryHeap::from([Node::new(s.root(), aggregate, &mut seq)]);
        // Leaves popped but not expandable (at the step limit).
        let mut leaves: Vec<Node> = Vec::new();
        let mut found = false;
        while let Some(node) = queue.pop() {
            if node.track.is_finished() {
                found = true;
                leaves.push(node);
                break;
            }
            if node.track.steps.len() >= self.config.step.steps() {
                s.release([node.track.branch]).await?;
                leaves.push(node);
                continue;
            }
            let left = n.saturating_sub(s.scored);
            if left == 0 {
                queue.push(node);
                break;
            }
            let mut children = s.expand(node.track, m.min(left)).await?;
            s.advance(&mut children).await?;
            queue.extend(children.into_iter().map(|t| Node::new(t, aggregate, &mut seq)));
        }
        let stopped_early = found && s.scored < n;
        let mut nodes: Vec<Node> = leaves.into_iter().chain(queue).collect();
        if nodes.iter().any(|x| x.track.is_finished()) {
            nodes.retain(|x| x.track.is_finished());
        }
        nodes.sort_by_key(|x| x.seq);
        // The popped answer outranks every finished node left in the queue.
        let chosen = nodes.iter().enumerate().max_by(|a, b| a.1.cmp(b.1)).map(|(i, _)| i);
        let tracks: Vec<Track> = nodes.into_iter().map(|x| x.track).collect();
        Ok(outcome(self.name(), &tracks, chosen, aggregate, ctx, s.usage(), stopped_early))
    }
}
