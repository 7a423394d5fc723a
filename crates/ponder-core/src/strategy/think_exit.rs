//! Early exit from thinking (issue 14, item 4): end a reasoning span once a cheap probe says
//! the answer is settled. LYNX (Anonymous et al. 2025, "LYNX: Learning Dynamic Exits for
//! Confidence-Controlled Reasoning") decides at hesitation cues with a probe trained on
//! hidden states; lacking such a probe for these models, this takes the probe-in-the-middle
//! form of the same idea (Dynasor-CoT, Fu et al. 2025): ask the model for its answer now.
//! Budget unit: samples N, voted on.
//!
//! 1 start N samples as branches of one session; generate `every` tokens of each
//! 2 for each sample still inside its span: fork it, force the close marker and the answer
//!   prefix into the fork, decode at most `probe_tokens` greedily to the end of the line,
//!   read the answer, free the fork (a probe is one scorer pass; its tokens count as usual)
//! 3 a probed answer counts if its tokens' geometric-mean probability is at least
//!   `threshold`; once `agree` probes in a row give the same counted answer, force the close
//!   marker and the answer prefix into the sample itself and let it answer
//! 4 a sample is probed only inside a span, and no more once it closes one itself; every
//!   sample goes on to its end (`max_tokens` generated in all, probes excluded); the
//!   majority answer wins
//!
//! The markers are the run's (`--think-markers`); the answer prefix is the thinking
//! budget's (`--answer-prefix`, default "\n\nFinal answer: "). A span the chat template
//! itself opens in the prompt is not seen: the model must write the open marker.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::search::Track;
use super::spec::{check_n, ConfigError, Needs, StrategyConfig};
use super::{majority, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{BranchId, SamplingParams, StepParams, StepSession};
use crate::process::Aggregate;
use crate::reasoning::{ThinkingMarkers, DEFAULT_ANSWER_PREFIX};
use crate::{Message, Problem};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThinkExitConfig {
    /// Samples N, voted on.
    pub n: usize,
    /// Thinking tokens between probes.
    pub every: u32,
    /// Consecutive probes that must give the same answer.
    pub agree: usize,
    /// Least geometric-mean token probability of a probed answer for it to count.
    pub threshold: f64,
    /// Most tokens of a probed answer.
    pub probe_tokens: u32,
}

impl Default for ThinkExitConfig {
    fn default() -> Self {
        Self { n: 1, every: 64, agree: 2, threshold: 0.5, probe_tokens: 16 }
    }
}

impl StrategyConfig for ThinkExitConfig {
    fn name(&self) -> &'static str {
        "think-exit"
    }
    fn about(&self) -> &'static str {
        "early exit from thinking (LYNX's idea, probed as in Dynasor-CoT): end a span once probed answers agree"
    }
    fn budget(&self) -> usize {
        self.n
    }
    fn budget_unit(&self) -> &'static str {
        "samples"
    }
    fn needs(&self) -> Needs {
        Needs { session: true, ..Needs::default() }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        ConfigError::check(self.every >= 1, "every", || "must be at least 1, got 0".into())?;
        ConfigError::check(self.agree >= 1, "agree", || "must be at least 1, got 0".into())?;
        let t = self.threshold;
        ConfigError::check((0.0..=1.0).contains(&t), "threshold", || format!("must be in [0, 1], got {t}"))?;
        ConfigError::check(self.probe_tokens >= 1, "probe_tokens", || "must be at least 1, got 0".into())
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(ThinkExit { config: self.clone(), sampling }))
    }
}

#[derive(Debug, Clone)]
pub struct ThinkExit {
    pub config: ThinkExitConfig,
    pub sampling: SamplingParams,
}

/// One sample: its track, the probe streak, and whether its span is over.
struct Thinker {
    track: Track,
    /// Its text's bytes and its generated tokens' byte ranges in them (forced text lies
    /// between ranges), while the backend reports token bytes: the thinking count.
    bytes: Vec<u8>,
    tokens: Option<Vec<std::ops::Range<usize>>>,
    /// The last counted probe's answer key and how many probes in a row gave it.
    streak: Option<(String, usize)>,
    /// Forced closed, or closed by the model.
    answering: bool,
    exited: bool,
}

impl ThinkExit {
    /// The answer a probe of `branch` reads now, if it counts (`None`: no answer, or not
    /// likely enough).
    async fn probe(&self, s: &mut dyn StepSession, branch: BranchId, forced: &str, prefix: &str, ctx: &Ctx<'_>) -> Result<Option<String>, StrategyError> {
        let fork = s.fork(branch, 1).await?[0];
        s.append(fork, forced).await?;
        let params = StepParams {
            sampling: SamplingParams { stop: vec!["\n".into()], thinking: None, ..SamplingParams::greedy() },
            delimiter: None,
            max_step_tokens: self.config.probe_tokens,
            max_total_tokens: u32::MAX,
        };
        let step = s.extend(&[fork], &params).await?.pop();
        s.release(&[fork]).await?;
        let Some(step) = step.filter(|st| st.n_tokens > 0) else { return Ok(None) };
        let mean = step.token_logprobs.iter().map(|&x| f64::from(x)).sum::<f64>() / step.token_logprobs.len().max(1) as f64;
        if mean.exp() < self.config.threshold {
            return Ok(None);
        }
        Ok((ctx.extract)(&format!("{prefix}{}", step.text)).map(|a| ctx.equivalence.key(&a)))
    }
}

#[async_trait]
impl Strategy for ThinkExit {
    fn name(&self) -> &str {
        "think-exit"
    }
    fn budget(&self) -> usize {
        self.config.n
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let _ = problem;
        let markers: &ThinkingMarkers = ctx.thinking.ok_or_else(|| StrategyError::InvalidConfig {
            strategy: "think-exit".into(),
            field: "think_markers".into(),
            message: "are needed: the model's chat template writes none, so name them (OPEN,CLOSE)".into(),
        })?;
        let prefix = self.sampling.thinking.as_ref().map_or(DEFAULT_ANSWER_PREFIX.to_string(), |t| t.answer_prefix.clone());
        let forced = format!("{}{prefix}", markers.close);
        let mut session = ctx.generator.open(messages, self.sampling.seed).await?;
        let s = session.as_mut();
        let root = s.root();
        let mut all: Vec<Thinker> = s
            .fork(root, self.config.n)
            .await?
            .into_iter()
            .map(|b| Thinker { track: Track::new(b), bytes: Vec::new(), tokens: Some(Vec::new()), streak: None, answering: false, exited: false })
            .collect();
        let sampling = SamplingParams { thinking: None, ..self.sampling.clone() };
        let step = |max_step_tokens| StepParams { sampling: sampling.clone(), delimiter: None, max_step_tokens, max_total_tokens: self.sampling.max_tokens };
        let mut probes = 0u64;
        loop {
            // Thinking samples take `every` tokens, answering ones run to their end.
            for (answering, len) in [(false, self.config.every), (true, self.sampling.max_tokens)] {
                let live: Vec<usize> = (0..all.len()).filter(|&i| !all[i].track.is_finished() && all[i].answering == answering).collect();
                let branches: Vec<BranchId> = live.iter().map(|&i| all[i].track.branch).collect();
                if branches.is_empty() {
                    continue;
                }
                for (i, st) in live.into_iter().zip(s.extend(&branches, &step(len)).await?) {
                    let t = &mut all[i];
                    match t.tokens.as_mut().filter(|_| st.token_bytes.len() == st.n_tokens) {
                        Some(ranges) => {
                            for b in &st.token_bytes {
                                ranges.push(t.bytes.len()..t.bytes.len() + b.len());
                                t.bytes.extend_from_slice(b);
                            }
                        }
                        None => t.tokens = None,
                    }
                    t.track.push(st);
                }
            }
            if all.iter().all(|t| t.track.is_finished()) {
                break;
            }
            for t in all.iter_mut().filter(|t| !t.track.is_finished() && !t.answering) {
                let text = t.track.text();
                if text.contains(&markers.close) {
                    t.answering = true; // the model closed its span itself
                    continue;
                }
                if markers.answer(&text).is_some() {
                    continue; // no span opened yet: nothing to end
                }
                probes += 1;
                let Some(key) = self.probe(s, t.track.branch, &forced, &prefix, ctx).await? else {
                    t.streak = None;
                    continue;
                };
                let run = match &t.streak {
                    Some((k, r)) if *k == key => r + 1,
                    _ => 1,
                };
                t.streak = Some((key, run));
                if run >= self.config.agree {
                    s.append(t.track.branch, &forced).await?;
                    // Forced text is in no step's tokens; it joins the track's text.
                    t.track.steps.push(forced.clone());
                    t.bytes.extend_from_slice(forced.as_bytes());
                    (t.answering, t.exited) = (true, true);
                }
            }
        }
        let mut usage = s.usage();
        usage.scorer_passes += probes;
        for t in &all {
            match &t.tokens {
                Some(ranges) => usage.thinking += markers.thinking_tokens(&t.bytes, ranges, false) as u64,
                None => usage.thinking_uncounted += 1,
            }
        }
        let exited = all.iter().filter(|t| t.exited).count();
        tracing::debug!(probes, exited, "think-exit");
        let candidates = all.iter().enumerate().map(|(i, t)| t.track.candidate(i, Aggregate::Last, ctx)).collect();
        Ok(majority("think-exit", candidates, usage, 0, exited > 0))
    }
}

#[cfg(test)]
#[path = "think_exit_tests.rs"]
mod tests;
