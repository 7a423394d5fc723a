//! Strategy `auto`: applies a [`Policy`] from `ponder plan`. It draws the policy's probe
//! samples, measures their agreement (the size of the largest answer class), looks up the
//! bin and runs the bin's strategy and budget. The probes are not wasted: the chosen
//! strategy sees a generator that serves samples 0..probe of the same request from the
//! probes (they are the very samples it would have drawn: a sample's seed depends only on
//! the base seed and its index) and asks the backend only for the rest.

use std::collections::VecDeque;

use async_trait::async_trait;
use ponder_core::strategy::{self, Ctx, Outcome, SearchConfig, Strategy, StrategyError};
use ponder_core::{
    CancelToken, GenError, GenEvent, Generator, GeneratorInfo, Message, Problem, Sample, SampleRequest, SampleStream,
    SamplingParams, StepSession, Usage,
};

use crate::plan::{agreement, Policy};
use crate::Error;

/// The strategy factory `ponder solve` and `ponder eval` share: `auto` applies `policy`
/// (an error without one), every other name is ponder-core's, with `search` configuring
/// the step-level search strategies. Fails on a bad name or budget before any model work.
pub fn build_strategy(
    name: &str,
    budget: usize,
    sampling: &SamplingParams,
    search: &SearchConfig,
    policy: Option<&Policy>,
) -> Result<Box<dyn Strategy>, Error> {
    let by_name = |n: &str, b: usize, s: &SamplingParams| {
        strategy::build_with(n, b, s.clone(), search).map_err(|e| Error::Strategy(Box::new(e)))
    };
    if name == "auto" {
        let Some(policy) = policy else {
            return Err(Error::NeedsPolicy);
        };
        return Ok(Box::new(Auto::new(policy.clone(), sampling.clone(), by_name)?));
    }
    by_name(name, budget, sampling)
}

/// The `auto` strategy.
pub struct Auto {
    policy: Policy,
    sampling: SamplingParams,
    /// One per policy bin.
    strategies: Vec<Box<dyn Strategy>>,
}

impl Auto {
    /// Builds the bins' strategies with `build` (see [`build_strategy`]), so a policy naming
    /// an unknown strategy fails here, before any model work.
    pub fn new<E>(
        policy: Policy,
        sampling: SamplingParams,
        build: impl Fn(&str, usize, &SamplingParams) -> Result<Box<dyn Strategy>, E>,
    ) -> Result<Auto, E> {
        let strategies = policy.bins.iter().map(|b| build(&b.strategy, b.budget, &sampling)).collect::<Result<_, _>>()?;
        Ok(Auto { policy, sampling, strategies })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

#[async_trait]
impl Strategy for Auto {
    fn name(&self) -> &str {
        "auto"
    }

    /// The most samples any bin may draw, probes included.
    fn budget(&self) -> usize {
        self.strategies.iter().map(|s| s.budget()).max().unwrap_or(0).max(self.policy.probe)
    }

    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let req = SampleRequest { messages: messages.to_vec(), n: self.policy.probe, params: self.sampling.clone(), first_index: 0 };
        let probes = ctx.generator.sample(req).await?.collect().await?;
        let keys: Vec<Option<String>> = probes
            .samples
            .iter()
            .map(|s| (ctx.extract)(&s.text).map(|a| ctx.equivalence.key(&a)))
            .collect();
        let agree = agreement(keys.iter().map(|k| k.as_deref()));
        let bin = self.policy.bin_for(agree);
        let at = self.policy.bins.iter().position(|b| std::ptr::eq(b, bin)).unwrap_or(0);
        let strategy = &self.strategies[at];
        tracing::debug!(problem = %problem.id, agree, strategy = strategy.name(), budget = strategy.budget(), "auto picked");
        let replay = Replay {
            inner: ctx.generator,
            messages: messages.to_vec(),
            params: self.sampling.clone(),
            probes: probes.samples,
        };
        let sub = Ctx { generator: &replay, ..*ctx };
        let mut outcome = strategy.solve(problem, messages, &sub).await?;
        outcome.usage = probes.usage + outcome.usage;
        outcome.n_failed += probes.failures.len();
        outcome.strategy = format!("auto:{}@{}", strategy.name(), strategy.budget());
        Ok(outcome)
    }
}

/// A generator that serves already-drawn samples of one request and forwards the rest.
struct Replay<'a> {
    inner: &'a dyn Generator,
    messages: Vec<Message>,
    params: SamplingParams,
    /// In index order.
    probes: Vec<Sample>,
}

#[async_trait]
impl Generator for Replay<'_> {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        if req.messages != self.messages || req.params != self.params {
            return self.inner.sample(req).await;
        }
        let range = req.first_index..req.first_index + req.n;
        let cached: VecDeque<Sample> = self.probes.iter().filter(|s| range.contains(&s.index)).cloned().collect();
        // The indices not served from the probes, as runs of consecutive indices.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in range.clone() {
            if cached.iter().any(|s| s.index == i) {
                continue;
            }
            match runs.last_mut() {
                Some((start, n)) if *start + *n == i => *n += 1,
                _ => runs.push((i, 1)),
            }
        }
        let mut inners = VecDeque::new();
        for (first_index, n) in runs {
            let sub = SampleRequest { messages: req.messages.clone(), n, params: req.params.clone(), first_index };
            inners.push_back(self.inner.sample(sub).await?);
        }
        let cancel = CancelToken::default();
        let state = ReplayState { cached, inners, current: None, usage: Usage::default(), token: cancel.clone(), done: false };
        let events = futures::stream::unfold(state, |mut st| async move {
            if st.token.is_cancelled() {
                st.cached.clear();
            }
            if let Some(s) = st.cached.pop_front() {
                return Some((GenEvent::Sample(s), st));
            }
            loop {
                if st.current.is_none() {
                    st.current = st.inners.pop_front();
                }
                let Some(cur) = st.current.as_mut() else {
                    if st.done {
                        return None;
                    }
                    st.done = true;
                    return Some((GenEvent::Done(st.usage), st));
                };
                if st.token.is_cancelled() {
                    cur.cancel();
                }
                match cur.next().await {
                    Some(Ok(s)) => return Some((GenEvent::Sample(s), st)),
                    Some(Err((index, error))) => return Some((GenEvent::Failed { index, error }, st)),
                    None => {
                        let finished = st.current.take().expect("current is set");
                        st.usage += finished.finish().await.unwrap_or_default();
                    }
                }
            }
        });
        Ok(SampleStream::new(events, cancel))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        self.inner.open(messages, seed).await
    }
}

struct ReplayState {
    cached: VecDeque<Sample>,
    inners: VecDeque<SampleStream>,
    current: Option<SampleStream>,
    usage: Usage,
    token: CancelToken,
    done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PolicyBin;
    use ponder_core::answer::{extract_answer, NumericEquivalence};
    use ponder_core::testing::{Choice, ScriptedGenerator};

    fn bin(lo: usize, hi: usize, s: &str, b: usize) -> PolicyBin {
        PolicyBin { min_agree: lo, max_agree: hi, strategy: s.into(), budget: b, n_units: 0, accuracy: 0.0, tokens_per_unit: 0.0 }
    }

    fn build(name: &str, budget: usize, sampling: &SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        ponder_core::strategy::build(name, budget, sampling.clone())
    }

    fn problem() -> Problem {
        Problem { id: "p".into(), question: "what is two plus two".into(), gold: "4".into(), level: None, steps: Vec::new() }
    }

    fn run(g: &ScriptedGenerator, policy: Policy) -> Outcome {
        let auto = Auto::new(policy, SamplingParams::default(), build).unwrap();
        let ctx = Ctx { generator: g, equivalence: &NumericEquivalence, extract: extract_answer, scorer: None, process: None, verifier: None };
        let p = problem();
        let messages = vec![Message::user(p.question.clone())];
        futures::executor::block_on(auto.solve(&p, &messages, &ctx)).unwrap()
    }

    #[test]
    fn unanimous_probes_take_the_cheap_bin_and_split_ones_spend_more() {
        let policy = Policy { version: 1, probe: 4, bins: vec![bin(0, 3, "sc", 12), bin(4, 4, "single", 1)], fitted: None };
        // Always the same answer: 4 of 4 agree, so `single`, which reuses probe 0.
        let same = ScriptedGenerator::new(vec![Choice::new("so The answer is 4.", 1.0, -0.1)]);
        let o = run(&same, policy.clone());
        assert_eq!(o.strategy, "auto:single@1");
        assert_eq!(o.answer.as_deref(), Some("4"));
        assert_eq!(same.started(), 4, "only the probes were generated");
        // Split answers: sc at 12 reuses the 4 probes and draws 8 more.
        let split = ScriptedGenerator::new(vec![
            Choice::new("The answer is 4.", 1.0, -0.1),
            Choice::new("The answer is 5.", 1.0, -0.1),
            Choice::new("The answer is 6.", 1.0, -0.1),
        ]);
        let o = run(&split, policy);
        assert!(o.strategy.starts_with("auto:sc@12"), "{}", o.strategy);
        assert_eq!(o.candidates.len(), 12);
        assert_eq!(split.started(), 12, "probes were reused, not redrawn");
        let idx: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(idx, (0..12).collect::<Vec<_>>());
        // Usage: probes once plus the 8 new samples (one word each here is 4 words).
        assert_eq!(o.usage.completion, 12 * 4);
    }

    #[test]
    fn replayed_samples_equal_fresh_ones() {
        let g = ScriptedGenerator::new(vec![
            Choice::new("The answer is 4.", 1.0, -0.1),
            Choice::new("The answer is 5.", 1.0, -0.2),
        ]);
        let policy = Policy { version: 1, probe: 3, bins: vec![bin(0, 3, "sc", 8)], fitted: None };
        let auto = run(&g, policy);
        let fresh = ScriptedGenerator::new(vec![
            Choice::new("The answer is 4.", 1.0, -0.1),
            Choice::new("The answer is 5.", 1.0, -0.2),
        ]);
        let sc = ponder_core::strategy::build("sc", 8, SamplingParams::default()).unwrap();
        let ctx = Ctx { generator: &fresh, equivalence: &NumericEquivalence, extract: extract_answer, scorer: None, process: None, verifier: None };
        let p = problem();
        let plain = futures::executor::block_on(sc.solve(&p, &[Message::user(p.question.clone())], &ctx)).unwrap();
        assert_eq!(auto.candidates, plain.candidates);
        assert_eq!(auto.answer, plain.answer);
    }
}
