//! ponder-eval end to end without a model: the run store, the runner with interruption
//! and resume, curves against the strategies' own outcomes, plans and reports. The
//! generator is a deterministic stand-in (below); the real model runs in the `ponder`
//! binary's tests. The datasets against the verifiers: the math grader on MATH-500 and
//! GSM8K (`grader`), HumanEval and MBPP in the real sandbox (`code`).

mod code;
mod grader;
mod harness;
mod report;
mod store;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ponder_core::answer::NumericEquivalence;
use ponder_core::scorer::MeanLogprob;
use ponder_core::strategy::{Ctx, Strategy};
use ponder_core::{
    derive_seed, CancelToken, FinishReason, GenError, GenEvent, Generator, GeneratorInfo, Message, Problem, Sample,
    SampleRequest, SampleStream, SamplingParams, StepSession, Usage,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ponder_eval::runner::{self, Finish, Job, RunConfig};
use ponder_eval::store::{Store, UnitKey};
use ponder_eval::{Dataset, PromptTemplate};

/// Level-1 arith problems: their golds differ, so a scripted generator that says "The
/// answer is N." for a few N gets some right.
fn dataset(n: usize) -> (Dataset, Vec<Problem>) {
    let d = ponder_eval::load(&format!("arith:1:{n}"), 0).unwrap();
    let problems = d.problems.clone();
    (d, problems)
}

/// A deterministic stand-in for a model, per problem: sample `i` of a request is right with
/// a probability that depends on the problem (some easy, some hard), else one of five
/// wrong answers; right samples have higher logprobs. Seeded like a backend: by the
/// request's seed and the sample's index, so results do not depend on scheduling.
#[derive(Clone)]
struct TestGenerator {
    /// (question, gold, probability right)
    problems: Arc<Vec<(String, i64, f64)>>,
    started: Arc<AtomicUsize>,
}

fn generator(problems: &[Problem]) -> TestGenerator {
    let problems = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.question.clone(), p.gold.parse().unwrap(), [0.9, 0.6, 0.35, 0.15][i % 4]))
        .collect();
    TestGenerator { problems: Arc::new(problems), started: Arc::default() }
}

#[async_trait::async_trait]
impl Generator for TestGenerator {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo { backend: "test".into(), model: "test".into(), context_len: 1 << 20, n_params: 1_000_000 }
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        let last = req.messages.last().map(|m| m.content.clone()).unwrap_or_default();
        let (at, &(_, gold, p_right)) = self
            .problems
            .iter()
            .enumerate()
            .find(|(_, (q, _, _))| last.contains(q.as_str()))
            .ok_or_else(|| GenError::InvalidRequest("unknown problem".into()))?;
        let prompt_tokens = req.messages.iter().map(|m| m.content.split_whitespace().count() as u64).sum::<u64>();
        let mut usage = Usage { prompt_computed: prompt_tokens, ..Usage::default() };
        let mut events = Vec::new();
        for index in req.first_index..req.first_index + req.n {
            self.started.fetch_add(1, Ordering::SeqCst);
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(req.params.seed ^ (at as u64) << 32, index as u64));
            let right = rng.gen_bool(p_right);
            let answer = if right { gold } else { gold + rng.gen_range(1..=5) };
            let text = if right {
                format!("Let me add carefully. The answer is {answer}.")
            } else {
                format!("I guess quickly and say the answer is {answer}.")
            };
            let n = text.split_whitespace().count();
            usage.completion += n as u64;
            let lp = if right {
                -0.3
            } else {
                -0.6 - 0.1 * rng.gen::<f32>()
            };
            events.push(GenEvent::Sample(Sample {
                index,
                text,
                n_tokens: n,
                token_logprobs: vec![lp; n],
                token_bytes: Vec::new(),
                token_stats: Vec::new(),
                top_logprobs: Vec::new(),
                finish: FinishReason::Eos,
                n_thinking: None,
            }));
        }
        events.push(GenEvent::Done(usage));
        Ok(SampleStream::new(futures::stream::iter(events), CancelToken::default()))
    }

    async fn open(&self, _messages: &[Message], _seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        Err(GenError::Unsupported("step sessions in the test generator".into()))
    }
}

fn config(d: &Dataset, problems: &[Problem], strategies: &[&str], budgets: &[usize], seeds: &[u64]) -> RunConfig {
    RunConfig {
        dataset: d.name.clone(),
        dataset_seed: 0,
        limit: problems.len(),
        skip_bad_rows: false,
        strategies: strategies.iter().map(|s| s.to_string()).collect(),
        budgets: budgets.to_vec(),
        seeds: seeds.to_vec(),
        scorer: "mean-logprob".into(),
        model: "scripted".into(),
        ctx: 4096,
        sampling: SamplingParams::default(),
        concurrency: 3,
        wrong_cost: 1.0,
        abstain_cost: 0.0,
        prompt: None,
        policy: None,
        dataset_fingerprint: ponder_eval::fingerprint(problems),
        n_problems: problems.len(),
        ponder_version: "test".into(),
        extra: Default::default(),
    }
}

/// The strategies of a configuration, one per (name, budget, seed), as the binary builds them.
fn strategies(c: &RunConfig) -> Vec<(UnitKey, Box<dyn Strategy>)> {
    let mut out: Vec<(UnitKey, Box<dyn Strategy>)> = Vec::new();
    for &seed in &c.seeds {
        for name in &c.strategies {
            for &b in &c.budgets {
                let spec = ponder_core::strategy::StrategySpec::parse(name, Some(b)).unwrap();
                let s = spec.build(SamplingParams { seed, ..c.sampling.clone() }).unwrap();
                let key = UnitKey { problem_id: String::new(), strategy: spec.label(), budget: s.budget(), seed };
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, s));
                }
            }
        }
    }
    out
}

/// Runs every unit of `run` not yet stored; stops after `stop_after` units when given.
fn run_units(store: &mut Store, run: i64, c: &RunConfig, d: &Dataset, problems: &[Problem], g: &TestGenerator, stop_after: Option<usize>) -> Finish {
    let strategies = strategies(c);
    let stored = store.stored_units(run).unwrap();
    let template = PromptTemplate::builtin("math-fewshot").unwrap();
    let messages: Vec<Vec<Message>> = problems.iter().map(|p| template.render(p).unwrap()).collect();
    let mut jobs = Vec::new();
    for (k, s) in &strategies {
        for (p, messages) in problems.iter().zip(&messages) {
            let key = UnitKey { problem_id: p.id.clone(), ..k.clone() };
            if !stored.contains(&key) {
                jobs.push(Job { key, problem: p, messages, strategy: s.as_ref() });
            }
        }
    }
    let scorer = MeanLogprob;
    let ctx = Ctx {
        generator: g,
        equivalence: &NumericEquivalence,
        extract: &d.extract,
        scorer: Some(&scorer),
        process: None,
        verifier: None,
        thinking: None,
    };
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let stop = futures::future::poll_fn(move |_| match stop_after {
        Some(n) if seen.load(Ordering::SeqCst) >= n => std::task::Poll::Ready(()),
        _ => std::task::Poll::Pending,
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(runner::execute(store, run, jobs, d.checker.clone(), &ctx, c.concurrency, stop, |_| {
        count.fetch_add(1, Ordering::SeqCst);
    }))
    .unwrap()
}
