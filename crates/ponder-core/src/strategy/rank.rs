//! Ranking by an LLM judge (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and
//! Chatbot Arena", arXiv:2306.05685: pairwise verdicts, both orders against position bias;
//! the ranker of Archon, Saad-Falcon et al. 2024, arXiv:2409.15254). Budget unit:
//! judgements, `k(k − 1)/2` pairs (pairwise) or one list (listwise) for k =
//! `max_candidates` (or the base's budget, if smaller), twice with `both_orders`; plus the
//! base's own budget.
//! 1 run the base spec (default `sc@4`); its distinct answers, one candidate each (the
//!   base's choice first, then by votes), at most `max_candidates`, are the contestants
//! 2 pairwise: the judge reads the question and two responses and names the better one,
//!   `[[1]]` or `[[2]]`, for every pair (a round robin); with `both_orders` each pair is
//!   judged again swapped, and only a preference both orders agree on is a win (else a
//!   tie, counted as `judge_inconsistent`). listwise: the judge orders all responses,
//!   `[[2, 1, 3]]`; with `both_orders` the list is shown reversed too; a place is worth
//!   k − place points (Borda)
//! 3 the contestant with the most wins (points) answers; ties go to the earlier contestant
//! 4 a reply with no parsable verdict is a failure, counted (`judge_failures`), never an
//!   error; when every judgement fails, the base's decision stands (`judge_fallback`).

use async_trait::async_trait;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::layer::{self, Layer, non_empty, after_base, distinct, numbered, question, spec_or_shorthand, validate_base};
use super::spec::{ConfigError, Needs, StrategyConfig, StrategySpec};
use super::{decided, position_of, Candidate, Ctx, Outcome, ScConfig, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem};

/// The judge's system prompt.
pub const JUDGE_PROMPT: &str = "You are an impartial judge. You compare responses to a question by their correctness \
    and reasoning, not by their order or length.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankMode {
    /// Every pair of contestants, a round robin.
    #[default]
    Pairwise,
    /// One ordering of all contestants.
    Listwise,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankConfig {
    /// The strategy whose candidates are ranked (a spec or its shorthand).
    #[serde(deserialize_with = "spec_or_shorthand")]
    pub base: Box<StrategySpec>,
    pub mode: RankMode,
    /// Judge every showing again in the reverse order (position-bias control).
    pub both_orders: bool,
    /// Most distinct answers ranked (the base's leading ones).
    pub max_candidates: usize,
    /// Characters of each response shown (its end).
    pub max_chars: usize,
    /// The judge's system prompt.
    pub prompt: String,
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            base: Box::new(StrategySpec::Sc(ScConfig { n: 4, abstain_below: None })),
            mode: RankMode::Pairwise,
            both_orders: true,
            max_candidates: 4,
            max_chars: 2000,
            prompt: JUDGE_PROMPT.into(),
        }
    }
}

impl RankConfig {
    /// Each judgement's order of contestants (positions into k of them).
    fn showings(&self, k: usize) -> Vec<Vec<usize>> {
        let once: Vec<Vec<usize>> = match self.mode {
            RankMode::Pairwise => (0..k).flat_map(|i| (i + 1..k).map(move |j| vec![i, j])).collect(),
            RankMode::Listwise => vec![(0..k).collect()],
        };
        let orders = if self.both_orders { 2 } else { 1 };
        once.into_iter().flat_map(|s| [s.iter().rev().copied().collect(), s].into_iter().rev().take(orders)).collect()
    }

    /// Most judgements: a base has at most its budget of candidates.
    fn judgements(&self) -> usize {
        self.showings(self.max_candidates.min(self.base.budget())).len()
    }
}

impl StrategyConfig for RankConfig {
    fn name(&self) -> &'static str {
        "rank"
    }
    fn about(&self) -> &'static str {
        "ranking by an LLM judge (MT-Bench's judge; Archon's ranker): pairwise or listwise over the base's distinct answers, both orders"
    }
    fn budget(&self) -> usize {
        self.judgements() + self.base.budget()
    }
    fn budget_unit(&self) -> &'static str {
        "judgements (pairs of max_candidates, or one list; x2 with both_orders) + the base's budget"
    }
    fn needs(&self) -> Needs {
        self.base.needs()
    }
    fn validate(&self) -> Result<(), ConfigError> {
        let k = self.max_candidates;
        ConfigError::check(k >= 2, "max_candidates", || format!("must be at least 2, got {k}"))?;
        ConfigError::check(self.max_chars >= 1, "max_chars", || format!("must be at least 1, got {}", self.max_chars))?;
        non_empty("prompt", &self.prompt)?;
        validate_base(&self.base, self.name(), "max_candidates")
    }
    fn base(&self) -> Option<&StrategySpec> {
        Some(&self.base)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        layer::build(self, &self.base, sampling)
    }
}

pub type Rank = Layer<RankConfig>;

impl Layer<RankConfig> {
    /// Step 2: the judge's request on `shown`, in that order.
    fn judge_request(&self, messages: &[Message], shown: &[&Candidate], first_index: usize) -> SampleRequest {
        let ask = match self.config.mode {
            RankMode::Pairwise => "Which response answers the question better? End your reply with your verdict: [[1]] or [[2]].".into(),
            RankMode::Listwise => format!(
                "Rank the {} responses from best to worst. End your reply with the response numbers, best first, like [[2, 1, 3]].",
                shown.len()
            ),
        };
        let text = format!("Question:\n{}\n\n{}\n\n{ask}", question(messages), numbered(shown.iter().copied(), self.config.max_chars));
        let messages = vec![Message::system(self.config.prompt.clone()), Message::user(text)];
        SampleRequest { messages, n: 1, params: self.sampling.clone(), first_index }
    }
}

#[async_trait]
impl Strategy for Layer<RankConfig> {
    fn name(&self) -> &str {
        "rank"
    }
    fn budget(&self) -> usize {
        self.config.budget()
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let base = self.base.solve(problem, messages, ctx).await?;
        let lead = base.chosen.and_then(|i| base.candidates.get(i));
        let contestants: Vec<Candidate> =
            distinct(&base.candidates, lead).into_iter().filter(|c| c.answer.is_some()).take(self.config.max_candidates).cloned().collect();
        let showings = if contestants.len() < 2 { Vec::new() } else { self.config.showings(contestants.len()) };
        let next = after_base(&base, self.base.budget());
        let requests = showings.iter().enumerate().map(|(j, order)| {
            let shown: Vec<&Candidate> = order.iter().map(|&p| &contestants[p]).collect();
            self.judge_request(messages, &shown, next + j)
        });
        let replies = join_all(requests.map(|req| async move {
            match ctx.generator.sample(req).await {
                Ok(stream) => stream.collect().await,
                Err(e) => Err(e),
            }
        })).await;
        let (mut usage, mut n_failed) = (base.usage, base.n_failed);
        // Each judgement's verdict as contestants, best first; `None`: no parsable verdict.
        let mut verdicts = Vec::with_capacity(showings.len());
        for (order, got) in showings.iter().zip(replies) {
            let got = got?;
            (usage, n_failed) = (usage + got.usage, n_failed + got.failures.len());
            let verdict = got.samples.first().and_then(|s| parse_verdict(&s.text, order.len()));
            verdicts.push(verdict.map(|v| v.into_iter().map(|p| order[p]).collect::<Vec<_>>()));
        }
        let failures = verdicts.iter().filter(|v| v.is_none()).count();
        let mut counts = base.counts.clone();
        let mut count = |k: &str, v: usize| *counts.entry(k.into()).or_default() += v;
        count("judgements", verdicts.len());
        count("judge_failures", failures);
        let k = contestants.len();
        let points = match self.config.mode {
            RankMode::Pairwise => {
                let (wins, inconsistent) = round_robin(k, &verdicts, if self.config.both_orders { 2 } else { 1 });
                count("judge_inconsistent", inconsistent);
                wins
            }
            RankMode::Listwise => borda(k, &verdicts),
        };
        // Fewer than two answers need no judge; no verdict at all leaves the base's choice.
        let judged = failures < verdicts.len();
        count("judge_fallback", usize::from(k >= 2 && !judged));
        let winner = judged.then(|| contestants[most(&points)].index);
        let outcome = match winner {
            Some(i) => {
                let chosen = position_of(&base.candidates, i);
                decided(self.name(), base.candidates, Vec::new(), chosen, (usage, n_failed, false))
            }
            None => Outcome { strategy: self.name().into(), usage, n_failed, ..base },
        };
        Ok(Outcome { counts, ..outcome })
    }
}

/// The judge's verdict: the last `[[...]]` in its reply, else the whole reply, read as
/// response numbers from 1 separated by commas or `>`, each at most `k`, none twice, at
/// least one. Positions from 0, best first; `None` for anything else.
fn parse_verdict(reply: &str, k: usize) -> Option<Vec<usize>> {
    let inner = match reply.rfind("[[") {
        Some(start) => {
            let rest = &reply[start + 2..];
            &rest[..rest.find("]]")?]
        }
        None => reply.trim().trim_end_matches('.'),
    };
    let mut out = Vec::new();
    for part in inner.split([',', '>']) {
        let part = part.trim();
        let part = part.strip_prefix("Response").or(part.strip_prefix("response")).unwrap_or(part).trim();
        let n: usize = part.parse().ok()?;
        if n == 0 || n > k || out.contains(&(n - 1)) {
            return None;
        }
        out.push(n - 1);
    }
    (!out.is_empty()).then_some(out)
}

/// Pairwise wins of `k` contestants from verdicts in groups of `orders` per pair (as
/// [`RankConfig::showings`] lists them): a pair's win counts only when every judgement of
/// it parsed and named the same contestant. Returns the wins and the pairs whose orders
/// disagreed.
fn round_robin(k: usize, verdicts: &[Option<Vec<usize>>], orders: usize) -> (Vec<f64>, usize) {
    let (mut wins, mut inconsistent) = (vec![0.0; k], 0);
    for pair in verdicts.chunks(orders) {
        let firsts: Option<Vec<usize>> = pair.iter().map(|v| v.as_ref().map(|v| v[0])).collect();
        match firsts.as_deref() {
            Some([w, rest @ ..]) if rest.iter().all(|r| r == w) => wins[*w] += 1.0,
            Some(_) => inconsistent += 1,
            None => {}
        }
    }
    (wins, inconsistent)
}

/// Borda points of `k` contestants: k − place for each listed place, summed over verdicts.
fn borda(k: usize, verdicts: &[Option<Vec<usize>>]) -> Vec<f64> {
    let mut points = vec![0.0; k];
    for v in verdicts.iter().flatten() {
        for (place, &c) in v.iter().enumerate() {
            points[c] += (k - place) as f64;
        }
    }
    points
}

/// Position of the most points, the earliest on ties.
fn most(points: &[f64]) -> usize {
    (0..points.len()).fold(0, |best, i| if points[i] > points[best] { i } else { best })
}

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;
