//! RPC: Perplexity Consistency with Reasoning Pruning (Zhou et al. 2025, "Bridging Internal
//! Probability and Self-Consistency for Effective and Efficient LLM Reasoning",
//! arXiv:2502.00511).
//! Budget unit: N samples (reasoning paths). Scoring signal: the model's own probability of
//! each path, from the chosen tokens' log-probabilities (untempered).
//! 1 draw N reasoning paths with their token log-probabilities
//! 2 a path's probability p(t) = exp(mean token log-prob), as the authors' code computes it
//!   (the paper writes p(t | x); the length-normalised form does not vanish on long paths
//!   and keeps a short path from outweighing a long one by its length alone)
//! 3 Reasoning Pruning (§4.2): drop the low-probability paths (`pruning`, below)
//! 4 Perplexity Consistency (§4.1): an answer's weight is the sum of p(t) over the distinct
//!   paths that reach it (a path sampled twice counts once, as in the paper's estimator)
//! 5 answer with the heaviest; its most probable path speaks for it.
//!
//! Pruning, paper vs here: the paper fits a mixture of two Weibull distributions to the
//! path probabilities (each component weighted 0.2 to 0.8) and drops a path when it more
//! likely belongs to the low component and lies below the mean probability. `two-means`
//! keeps the guard and replaces the fit by its hard-assignment form: the probabilities are
//! split in two at the boundary that best separates them (1-D two-means, Otsu's
//! between-class variance), each group holding 20% to 80% of the paths; the low group's
//! paths below the mean are dropped. `none` is Perplexity Consistency alone.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::abstain;
use super::spec::{check_n, ConfigError, StrategyConfig};
use super::{draw, weighted_vote, Candidate, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{GenError, SamplingParams};
use crate::{Message, Problem};

/// How low-probability reasoning paths are dropped before the vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pruning {
    /// Every path votes (Perplexity Consistency alone).
    None,
    /// The low group of a two-way split, below the mean probability.
    #[default]
    TwoMeans,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Samples N.
    pub n: usize,
    pub pruning: Pruning,
    /// Answer nothing when the winner holds less than this share of the probability mass
    /// (0 to 1); left out, always answer.
    pub abstain_below: Option<f64>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self { n: 8, pruning: Pruning::TwoMeans, abstain_below: None }
    }
}

impl StrategyConfig for RpcConfig {
    fn name(&self) -> &'static str {
        "rpc"
    }
    fn about(&self) -> &'static str {
        "RPC (Zhou et al. 2025): drop low-probability paths, vote weighted by the model's probability of each path"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples"
    }
    fn reuses_probes(&self) -> bool {
        true
    }
    fn probe_source(&self) -> bool {
        true
    }
    fn abstain_below(&self) -> Option<f64> {
        self.abstain_below
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        abstain::check(self.abstain_below)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(Rpc { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct Rpc {
    pub config: RpcConfig,
    pub sampling: SamplingParams,
}

/// Step 2: p(t) = exp(mean token log-prob); `None` for an empty path. A path with tokens
/// but no log-probabilities is the backend's gap, and an error.
pub fn path_probability(c: &Candidate) -> Result<Option<f64>, GenError> {
    if c.n_tokens > 0 && c.mean_logprob.is_none() {
        return Err(GenError::Unsupported(
            "per-token log-probabilities (rpc weighs each reasoning path by the model's probability of it)".into(),
        ));
    }
    Ok(c.mean_logprob.map(f64::exp))
}

/// Step 3, `two-means`: which paths are dropped. Fewer than 3 paths, or no split with
/// 20% to 80% of them in each group: none.
pub fn low_paths(probs: &[Option<f64>]) -> Vec<bool> {
    let mut v: Vec<f64> = probs.iter().flatten().copied().filter(|p| p.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    match two_means_cut(&v) {
        Some(cut) => probs.iter().map(|p| p.is_some_and(|p| p <= cut && p < mean)).collect(),
        None => vec![false; probs.len()],
    }
}

/// The largest value of the low group of `sorted` under the split with the largest
/// between-group variance, among splits that leave 20% to 80% of the values in each group
/// and do not separate equal values.
fn two_means_cut(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n < 3 {
        return None;
    }
    let total: f64 = sorted.iter().sum();
    let (mut best, mut low_sum) = (None::<(f64, f64)>, 0.0);
    for k in 1..n {
        low_sum += sorted[k - 1];
        let share = k as f64 / n as f64;
        if sorted[k - 1] == sorted[k] || !(0.2..=0.8).contains(&share) {
            continue;
        }
        let (n0, n1) = (k as f64, (n - k) as f64);
        let between = n0 * n1 * ((total - low_sum) / n1 - low_sum / n0).powi(2);
        if best.is_none_or(|(b, _)| between > b) {
            best = Some((between, sorted[k - 1]));
        }
    }
    best.map(|(_, cut)| cut)
}

/// Step 4: the sample indices that vote, the first path of each distinct text among
/// those not `pruned`.
fn distinct_voters(candidates: &[Candidate], pruned: &[bool]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    candidates.iter().zip(pruned).filter(|(c, &p)| !p && seen.insert(c.text.as_str())).map(|(c, _)| c.index).collect()
}

#[async_trait]
impl Strategy for Rpc {
    fn name(&self) -> &str {
        "rpc"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let (mut candidates, n_failed, usage) = draw(messages, self.config.n, &self.sampling, ctx).await?;
        let probs = candidates.iter().map(path_probability).collect::<Result<Vec<_>, _>>()?;
        let pruned = match self.config.pruning {
            Pruning::None => vec![false; probs.len()],
            Pruning::TwoMeans => low_paths(&probs),
        };
        for (c, p) in candidates.iter_mut().zip(&probs) {
            c.score = *p;
        }
        let voters = distinct_voters(&candidates, &pruned);
        let stopped_early = false;
        Ok(weighted_vote(self.name(), candidates, &voters, usage, n_failed, stopped_early))
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::generator::{Generator, Sample};
    use crate::testing::{answer_ctx, problem_42, Choice, MapSamples, ScriptedGenerator};

    fn solve(g: &dyn Generator, config: RpcConfig, seed: u64) -> Result<Outcome, StrategyError> {
        let rpc = Rpc { config, sampling: SamplingParams { seed, ..Default::default() } };
        block_on(rpc.solve(&problem_42(), &[Message::user("q")], &answer_ctx(g)))
    }

    fn check(probs: &[f64], dropped: &[usize]) {
        let got = low_paths(&probs.iter().map(|&p| Some(p)).collect::<Vec<_>>());
        let got: Vec<usize> = got.iter().enumerate().filter(|(_, &d)| d).map(|(i, _)| i).collect();
        assert_eq!(got, dropped, "{probs:?}");
    }

    #[test]
    fn pruning_drops_the_low_group_below_the_mean() {
        check(&[0.9, 0.1, 0.12, 0.85, 0.8], &[1, 2]);
        check(&[0.6, 0.6, 0.6, 0.6], &[]);
        check(&[0.9, 0.1], &[]);
        // The low group holds at most 80% of the paths: one high path cannot prune all nine others.
        check(&[0.5, 0.5, 0.5, 0.5, 0.51, 0.51, 0.51, 0.51, 0.51, 0.9], &[0, 1, 2, 3]);
    }

    /// Three distinct unlikely paths say 41; one likely path says 42.
    fn menu() -> Vec<Choice> {
        vec![
            Choice::new("a so answer: 41", 1.0, -3.0),
            Choice::new("b so answer: 41", 1.0, -3.0),
            Choice::new("c so answer: 41", 1.0, -3.0),
            Choice::new("x so answer: 42", 1.0, -0.5),
        ]
    }

    #[test]
    fn the_answer_with_more_probability_mass_wins_with_fewer_paths() {
        let out = solve(&ScriptedGenerator::new(menu()), RpcConfig { n: 16, pruning: Pruning::None, abstain_below: None }, 5).unwrap();
        assert_eq!(out.answer.as_deref(), Some("42"));
        let (v42, v41) = (&out.votes[0], &out.votes[1]);
        assert!(v41.count > v42.count, "precondition: 41 has more distinct paths: {:?}", out.votes);
        // Repeated texts count once: at most one voter per distinct path.
        assert_eq!(v41.count + v42.count, 4, "{:?}", out.votes);
        assert!((v42.weight - (-0.5f64).exp()).abs() < 1e-6 && (v41.weight - 3.0 * (-3.0f64).exp()).abs() < 1e-6);
        assert_eq!(out.candidates.len(), 16, "every path is reported, voting or not");
        assert_eq!(out.candidates[out.chosen.unwrap()].answer.as_deref(), Some("42"));
    }

    #[test]
    fn pruning_drops_the_low_paths_before_the_vote() {
        // Five unlikely paths outweigh one likely path until they are pruned; the likely one
        // is drawn often enough that the low group holds under 80% of the samples.
        let mut choices: Vec<Choice> =
            (0..5).map(|i| Choice::new(format!("{i} so answer: 41"), 1.0, 0.15f32.ln())).collect();
        choices.push(Choice::new("x so answer: 42", 2.0, 0.61f32.ln()));
        let g = ScriptedGenerator::new(choices);
        let plain = solve(&g, RpcConfig { n: 48, pruning: Pruning::None, abstain_below: None }, 2).unwrap();
        assert_eq!(plain.answer.as_deref(), Some("41"), "precondition: {:?}", plain.votes);
        assert_eq!(plain.votes.iter().map(|v| v.count).sum::<usize>(), 6, "every text drawn");
        let pruned = solve(&g, RpcConfig { n: 48, pruning: Pruning::TwoMeans, abstain_below: None }, 2).unwrap();
        assert_eq!(pruned.answer.as_deref(), Some("42"));
        assert_eq!(pruned.votes.len(), 1, "no path of 41 survives: {:?}", pruned.votes);
        assert_eq!(pruned.usage, plain.usage, "pruning costs no tokens");
    }

    #[test]
    fn a_backend_without_logprobs_is_a_typed_error() {
        let g = MapSamples(ScriptedGenerator::new(menu()), |s| Sample { token_logprobs: Vec::new(), ..s });
        let err = solve(&g, RpcConfig::default(), 1).unwrap_err();
        assert!(matches!(&err, StrategyError::Generator(GenError::Unsupported(m)) if m.contains("log-probabilities")), "{err}");
    }
}
