//! DeepConf: confidence-filtered voting (Fu et al., 2025, "Deep Think with Confidence",
//! arXiv:2508.15260).
//! Budget unit: traces started, at most N; tokens of traces stopped early still count.
//! A trace's confidence is its lowest group confidence (the mean token confidence over a
//! sliding window of `window` tokens; [`crate::confidence`]).
//!
//! Offline (§3.2):
//! 1 draw N traces  2 keep the `keep` fraction with the highest confidence
//! 3 vote, each kept trace weighted by its confidence.
//!
//! Online (§3.3, Algorithm 2):
//! 1 draw `warmup` traces in full; the stopping threshold s is the (1 - `keep`) quantile of
//!   their confidences (keep 0.1 is DeepConf-low, 0.9 DeepConf-high)
//! 2 draw the rest in rounds; the backend ends a trace as soon as one of its groups falls
//!   below s ([`ConfidenceStop`]); stopped traces do not vote
//! 3 after each finished trace, stop once the leading answer holds `consensus` of the
//!   confidence-weighted vote, cancelling the traces still running
//! 4 answer with the confidence-weighted vote of the warm-up and finished traces.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::rounds::{draw_more_in_rounds, Drawn, Settle};
use super::abstain;
use super::spec::{check_n, ConfigError, StrategyConfig};
use super::{candidate, tally, weighted_vote, Candidate, Ctx, Outcome, Strategy, StrategyError};
use crate::outcome::leader_share;
use crate::confidence::{lowest_group, quantile};
use crate::generator::{ConfidenceStop, FinishReason, GenError, Sample, SampleRequest, SamplingParams, MAX_TOKEN_STATS_K};
use crate::{Message, Problem, Usage};

/// Offline filters after the fact; online stops weak traces and the whole draw early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeepConfMode {
    #[default]
    Offline,
    Online,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepConfConfig {
    /// Most traces N.
    pub n: usize,
    pub mode: DeepConfMode,
    /// Fraction of traces kept (offline), or of warm-up confidences the online threshold
    /// lets through: 0.9 is DeepConf-high, 0.1 DeepConf-low.
    pub keep: f64,
    /// Tokens per group. The paper's 2048 is longer than most traces of these models,
    /// which would make every trace one group; 32 keeps local dips visible.
    pub window: usize,
    /// Top candidates per token confidence (the paper's k).
    pub top_k: u32,
    /// Online: traces drawn in full to set the threshold; left out, a quarter of N (at least 2).
    pub warmup: Option<usize>,
    /// Online: stop once the leader holds this share of the weighted vote.
    pub consensus: f64,
    /// Online: traces started together after the warm-up.
    pub round_size: usize,
    /// Answer nothing when the winner holds less than this share of the vote (0 to 1);
    /// left out, always answer.
    pub abstain_below: Option<f64>,
}

impl Default for DeepConfConfig {
    fn default() -> Self {
        Self { n: 8, mode: DeepConfMode::Offline, keep: 0.9, window: 32, top_k: 20, warmup: None, consensus: 0.95, round_size: 4, abstain_below: None }
    }
}

impl StrategyConfig for DeepConfConfig {
    fn name(&self) -> &'static str {
        "deepconf"
    }
    fn about(&self) -> &'static str {
        "DeepConf (Fu et al. 2025): confidence-filtered, confidence-weighted voting; online mode stops weak traces and the draw early"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "traces (at most)"
    }
    fn abstain_below(&self) -> Option<f64> {
        self.abstain_below
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        abstain::check(self.abstain_below)?;
        let k = self.keep;
        ConfigError::check(k > 0.0 && k <= 1.0, "keep", || format!("must be in (0, 1], got {k}"))?;
        ConfigError::check(self.window >= 1, "window", || "must be at least 1, got 0".into())?;
        let t = self.top_k;
        ConfigError::check((1..=MAX_TOKEN_STATS_K).contains(&t), "top_k", || format!("must be in 1..={MAX_TOKEN_STATS_K}, got {t}"))?;
        if let Some(w) = self.warmup {
            ConfigError::check(w >= 1 && w <= self.n, "warmup", || format!("must be in 1..=n ({}), got {w}", self.n))?;
        }
        let c = self.consensus;
        ConfigError::check(c > 0.0 && c <= 1.0, "consensus", || format!("must be in (0, 1], got {c}"))?;
        ConfigError::check(self.round_size >= 1, "round_size", || "must be at least 1, got 0".into())
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(DeepConf { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct DeepConf {
    pub config: DeepConfConfig,
    pub sampling: SamplingParams,
}

impl DeepConf {
    fn warmup(&self) -> usize {
        let n = self.config.n;
        self.config.warmup.unwrap_or(n.div_ceil(4).max(2)).clamp(1, n)
    }

    fn params(&self, stop: Option<ConfidenceStop>) -> SamplingParams {
        SamplingParams { token_stats_k: self.config.top_k, confidence_stop: stop, ..self.sampling.clone() }
    }

    /// A candidate whose score is the trace's lowest group confidence.
    fn scored(&self, sample: Sample, ctx: &Ctx<'_>) -> Result<Candidate, StrategyError> {
        if sample.token_stats.is_empty() && sample.n_tokens > 0 {
            return Err(GenError::Unsupported(
                "per-token confidence (deepconf needs top log-probabilities for every generated token)".into(),
            )
            .into());
        }
        let conf: Vec<f32> = sample.token_stats.iter().map(|s| s.confidence).collect();
        let score = lowest_group(&conf, self.config.window).map(f64::from);
        Ok(Candidate { score, ..candidate(sample, ctx) })
    }

    async fn offline(&self, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let req = SampleRequest { messages: messages.to_vec(), n: self.config.n, params: self.params(None), first_index: 0 };
        let got = ctx.generator.sample(req).await?.collect().await?;
        if got.samples.is_empty() {
            return Err(StrategyError::all_failed(self.config.n, &got.failures));
        }
        let candidates = got.samples.into_iter().map(|s| self.scored(s, ctx)).collect::<Result<Vec<_>, _>>()?;
        let mut by_conf: Vec<&Candidate> = candidates.iter().collect();
        by_conf.sort_by(|a, b| b.score.unwrap_or(f64::MIN).total_cmp(&a.score.unwrap_or(f64::MIN)).then(a.index.cmp(&b.index)));
        let n_keep = ((candidates.len() as f64 * self.config.keep).ceil() as usize).clamp(1, candidates.len());
        let kept: Vec<usize> = by_conf[..n_keep].iter().map(|c| c.index).collect();
        Ok(self.decide(candidates, &kept, got.usage, got.failures.len(), false))
    }

    async fn online(&self, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let warmup = self.warmup();
        let req = SampleRequest { messages: messages.to_vec(), n: warmup, params: self.params(None), first_index: 0 };
        let got = ctx.generator.sample(req).await?.collect().await?;
        let (usage, n_failed) = (got.usage, got.failures.len());
        let candidates = got.samples.into_iter().map(|s| self.scored(s, ctx)).collect::<Result<Vec<_>, _>>()?;
        let confs: Vec<f32> = candidates.iter().filter_map(|c| c.score.map(|s| s as f32)).collect();
        let threshold = quantile(&confs, 1.0 - self.config.keep);
        let kept: Vec<usize> = candidates.iter().map(|c| c.index).collect();
        let settled = self.settled(&candidates, &kept);
        let mut drawn = Drawn { candidates, n_failed, started: warmup, usage, stopped_early: settled && warmup < self.config.n };
        let mut rule = Consensus { deepconf: self, kept };
        if !settled && warmup < self.config.n {
            // Steps 2-3: later traces stop below the threshold; the rest vote until settled.
            let stop = threshold.map(|threshold| ConfidenceStop { window: self.config.window as u32, threshold });
            let make = |sample: Sample| self.scored(sample, ctx);
            let (n, round) = (self.config.n, self.config.round_size);
            drawn = draw_more_in_rounds(drawn, messages, n, round, &self.params(stop), ctx, &make, &mut rule).await?;
        }
        if drawn.candidates.is_empty() {
            return Err(StrategyError::InsufficientCandidates { attempted: drawn.started, why: None });
        }
        let mut candidates = drawn.candidates;
        candidates.sort_by_key(|c| c.index);
        Ok(self.decide(candidates, &rule.kept, drawn.usage, drawn.n_failed, drawn.stopped_early))
    }

    /// Whether the leader of the weighted vote over `kept` holds `consensus` of it.
    fn settled(&self, candidates: &[Candidate], kept: &[usize]) -> bool {
        let voters: Vec<Candidate> = candidates.iter().filter(|c| kept.contains(&c.index)).cloned().collect();
        leader_share(&tally(&voters, true)).is_some_and(|share| share >= self.config.consensus)
    }

    /// The weighted vote over the `kept` traces; every trace stays in `candidates`.
    fn decide(&self, candidates: Vec<Candidate>, kept: &[usize], usage: Usage, n_failed: usize, stopped_early: bool) -> Outcome {
        weighted_vote(self.name(), candidates, kept, usage, n_failed, stopped_early)
    }
}

/// Online steps 2-3: a finished trace votes unless the backend stopped it; settled once
/// the leader holds `consensus` of the weighted vote.
struct Consensus<'a> {
    deepconf: &'a DeepConf,
    kept: Vec<usize>,
}

#[async_trait]
impl Settle for Consensus<'_> {
    async fn settle(&mut self, drawn: &mut Drawn, fresh: bool) -> Result<bool, StrategyError> {
        if let Some(c) = drawn.candidates.last().filter(|c| fresh && c.finish != FinishReason::LowConfidence) {
            self.kept.push(c.index);
        }
        Ok(self.deepconf.settled(&drawn.candidates, &self.kept))
    }
}

#[async_trait]
impl Strategy for DeepConf {
    fn name(&self) -> &str {
        "deepconf"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, _problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        match self.config.mode {
            DeepConfMode::Offline => self.offline(messages, ctx).await,
            DeepConfMode::Online => self.online(messages, ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::executor::block_on;

    use super::*;
    use crate::generator::Generator;
    use crate::testing::{after_answer, answer_ctx as ctx, problem_42 as problem, Choice, MapSamples, ScriptedGenerator};

    /// Reads the generator's own stream for `n` traces: the oracle's input.
    fn reference(g: &ScriptedGenerator, n: usize, params: SamplingParams) -> Vec<Sample> {
        let req = SampleRequest { messages: vec![Message::user("q")], n, params, first_index: 0 };
        block_on(async { g.sample(req).await.expect("valid").collect().await.expect("usage") }).samples
    }

    /// Unsure and usually wrong, or sure and usually right.
    fn menu() -> Vec<Choice> {
        vec![
            Choice::new("hmm maybe it is answer: 41", 3.0, -1.0).with_confidence(2.0),
            Choice::new("so answer: 42", 2.0, -1.0).with_confidence(9.0),
        ]
    }

    #[test]
    fn offline_keeps_the_confident_traces_and_weights_their_votes() {
        let g = ScriptedGenerator::new(menu());
        let config = DeepConfConfig { n: 16, keep: 0.5, ..Default::default() };
        let dc = DeepConf { config, sampling: SamplingParams { seed: 3, ..Default::default() } };
        let out = block_on(dc.solve(&problem(), &[Message::user("q")], &ctx(&g))).expect("solves");

        // Oracle from the raw traces: the top half by confidence, confidence-weighted.
        let mut traces = reference(&ScriptedGenerator::new(menu()), 16, dc.params(None));
        let plain_majority = {
            let mut c: BTreeMap<String, usize> = BTreeMap::new();
            for t in &traces {
                *c.entry(after_answer(&t.text).unwrap()).or_default() += 1;
            }
            c.into_iter().max_by_key(|(_, n)| *n).map(|(a, _)| a)
        };
        assert_eq!(plain_majority.as_deref(), Some("41"), "precondition: plain voting is wrong under this seed");
        traces.sort_by(|a, b| b.token_stats[0].confidence.total_cmp(&a.token_stats[0].confidence).then(a.index.cmp(&b.index)));
        let mut weight: BTreeMap<String, f64> = BTreeMap::new();
        for t in &traces[..8] {
            *weight.entry(after_answer(&t.text).unwrap()).or_default() += f64::from(t.token_stats[0].confidence);
        }
        let want = weight.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(a, _)| a.clone());
        assert_eq!(out.answer, want);
        assert_eq!(out.answer.as_deref(), Some("42"));
        assert_eq!(out.candidates.len(), 16, "every trace is reported, voting or not");
        let voters: usize = out.votes.iter().map(|v| v.count).sum();
        assert_eq!(voters, 8);
        let tokens: u64 = out.candidates.iter().map(|c| c.n_tokens as u64).sum();
        assert_eq!(out.usage.completion, tokens);
    }

    #[test]
    fn online_stops_weak_traces_at_one_window_and_stops_drawing_on_consensus() {
        let g = ScriptedGenerator::new(menu());
        let sampling = SamplingParams { seed: 11, ..Default::default() };
        let config = DeepConfConfig { n: 32, mode: DeepConfMode::Online, window: 3, warmup: Some(4), ..Default::default() };
        let dc = DeepConf { config, sampling };
        // Precondition: both kinds in the warm-up, so the threshold lies between them.
        let warm = reference(&ScriptedGenerator::new(menu()), 4, dc.params(None));
        let warm_confs: Vec<f32> = warm.iter().map(|s| s.token_stats[0].confidence).collect();
        assert!(warm_confs.contains(&2.0) && warm_confs.contains(&9.0), "{warm_confs:?}");

        let out = block_on(dc.solve(&problem(), &[Message::user("q")], &ctx(&g))).expect("solves");
        assert_eq!(out.answer.as_deref(), Some("42"));
        for c in &out.candidates {
            let weak = c.score == Some(2.0);
            if c.index >= 4 && weak {
                assert_eq!(c.finish, FinishReason::LowConfidence, "trace {} should stop", c.index);
                assert_eq!(c.n_tokens, 3, "stopped after one window");
            } else {
                assert_eq!(c.finish, FinishReason::Eos, "trace {} should finish", c.index);
            }
        }
        // Stopped traces do not vote; warm-up traces do.
        let voters: usize = out.votes.iter().map(|v| v.count).sum();
        let stopped = out.candidates.iter().filter(|c| c.finish == FinishReason::LowConfidence).count();
        assert_eq!(voters, out.candidates.len() - stopped);
        assert!(stopped > 0);
        assert!(out.stopped_early && out.candidates.len() < 32, "consensus stops the draw: {} traces", out.candidates.len());
        let tokens: u64 = out.candidates.iter().map(|c| c.n_tokens as u64).sum();
        assert_eq!(out.usage.completion, tokens, "stopped traces' tokens are counted");
    }

    #[test]
    fn a_backend_without_token_confidence_is_a_clear_error() {
        // A backend that cannot report top log-probabilities (the fault under test).
        let g = MapSamples(ScriptedGenerator::new(menu()), |s| Sample { token_stats: Vec::new(), ..s });
        let dc = DeepConf { config: DeepConfConfig { n: 4, ..Default::default() }, sampling: SamplingParams::default() };
        let err = block_on(dc.solve(&problem(), &[Message::user("q")], &ctx(&g))).expect_err("refused");
        assert!(err.to_string().contains("per-token confidence"), "{err}");
    }
}
