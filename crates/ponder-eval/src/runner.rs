//! Runs units (problem × strategy × budget × seed) against a backend, `concurrency` at a
//! time, grading each as it completes and storing it at once (outcome and candidates in
//! one transaction). Stops cleanly when `stop` resolves: units in flight are dropped
//! (their samples are cancelled by dropping their streams) and nothing half-done is
//! stored, so `ponder eval --resume` runs exactly the units that are missing.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use ponder_core::strategy::{Ctx, Outcome, Strategy, StrategyError};
use ponder_core::{Checker, Message, Problem, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::store::{Store, UnitKey, UnitRecord};
use crate::Error;

/// Everything that defines a run, stored with it as JSON so `--resume` can rebuild it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The dataset spec as given (`arith:1:50`, `jsonl:/path/file.jsonl`).
    pub dataset: String,
    /// Seed of generated datasets (`arith`).
    pub dataset_seed: u64,
    /// First N problems.
    pub limit: usize,
    pub skip_bad_rows: bool,
    /// Strategy names, in the order given.
    pub strategies: Vec<String>,
    /// Budgets asked for; a strategy whose budget is fixed (`single`) runs once.
    pub budgets: Vec<usize>,
    /// Sampling seeds; every (strategy, budget) runs once per seed.
    pub seeds: Vec<u64>,
    /// Outcome scorer for bon and weighted-bon.
    pub scorer: String,
    /// Model as given (registry name, path, `hf:` reference).
    pub model: String,
    /// KV-cache cells.
    pub ctx: u32,
    /// Sampling parameters without the prompt style's stop strings; `seed` is replaced by
    /// each of `seeds`.
    pub sampling: SamplingParams,
    /// Problems in flight (may be changed on resume).
    pub concurrency: usize,
    pub wrong_cost: f64,
    pub abstain_cost: f64,
    /// The prompt template, whole, so the run does not depend on a file or a default that
    /// may change. `None` until the model is loaded (the default depends on it), and in
    /// runs stored before templates existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<crate::PromptTemplate>,
    /// The policy that strategy `auto` applies, inline, so the run does not depend on the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
    /// [`crate::fingerprint`] of the problems evaluated.
    pub dataset_fingerprint: String,
    pub n_problems: usize,
    pub ponder_version: String,
    /// Settings added by other parts of the binary; kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a run configuration serialises")
    }

    pub fn from_json(id: i64, json: &str) -> Result<RunConfig, Error> {
        serde_json::from_str(json).map_err(|e| Error::BadConfig { id, reason: e.to_string() })
    }
}

/// One unit to run.
pub struct Job<'a> {
    pub key: UnitKey,
    pub problem: &'a Problem,
    /// The problem as put to the model (its prompt template rendered).
    pub messages: &'a [Message],
    pub strategy: &'a dyn Strategy,
}

/// How [`execute`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every job ran and is stored.
    Done,
    /// `stop` resolved first; `stored` jobs were stored before that.
    Interrupted { stored: usize },
}

/// Runs `jobs` (in order, `concurrency` at a time), grades each outcome and its candidates
/// with `checker`, and stores it in `run`. `on_stored` is called with each unit once it
/// is committed. Returns early with [`Finish::Interrupted`] when `stop` resolves; the first
/// failing unit ends the run with its error (units stored before it stay).
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    store: &mut Store,
    run: i64,
    jobs: Vec<Job<'_>>,
    checker: Arc<dyn Checker>,
    ctx: &Ctx<'_>,
    concurrency: usize,
    stop: impl Future<Output = ()>,
    mut on_stored: impl FnMut(&UnitRecord),
) -> Result<Finish, Error> {
    let concurrency = concurrency.max(1);
    let mut results = futures::stream::iter(jobs)
        .map(|job| {
            let checker = Arc::clone(&checker);
            async move {
                let outcome = job.strategy.solve(job.problem, job.messages, ctx).await;
                let graded = match outcome {
                    Ok(o) => Ok(grade(checker, job.problem.clone(), o).await),
                    Err(e) => Err(e),
                };
                (job.key, graded)
            }
        })
        .buffer_unordered(concurrency);
    tokio::pin!(stop);
    let mut stored = 0;
    loop {
        tokio::select! {
            // Prefer storing what is done over noticing the stop.
            biased;
            next = results.next() => match next {
                None => return Ok(Finish::Done),
                Some((key, Ok((outcome, correct, candidates_correct)))) => {
                    let rec = UnitRecord { key, outcome, correct, candidates_correct };
                    store.insert_unit(run, &rec)?;
                    stored += 1;
                    on_stored(&rec);
                    // Between units too: when results never stop coming, the branch below
                    // would never be polled.
                    if futures::poll!(&mut stop).is_ready() {
                        return Ok(Finish::Interrupted { stored });
                    }
                }
                Some((key, Err(source))) => return Err(unit_error(key, source)),
            },
            () = &mut stop => return Ok(Finish::Interrupted { stored }),
        }
    }
}

fn unit_error(key: UnitKey, source: StrategyError) -> Error {
    Error::Unit { strategy: key.strategy, budget: key.budget, seed: key.seed, problem: key.problem_id, cause: Box::new(source) }
}

/// Grades the chosen answer and every candidate off the async threads (code checkers run
/// a sandbox).
async fn grade(checker: Arc<dyn Checker>, problem: Problem, outcome: Outcome) -> (Outcome, bool, Vec<bool>) {
    let answers: Vec<Option<String>> = outcome.candidates.iter().map(|c| c.answer.clone()).collect();
    let chosen = outcome.answer.clone();
    let work = move || {
        let correct = checker.is_correct(&problem, chosen.as_deref());
        let each: Vec<bool> = answers.iter().map(|a| checker.is_correct(&problem, a.as_deref())).collect();
        (correct, each)
    };
    let (correct, each) = match tokio::runtime::Handle::try_current() {
        Ok(h) => match h.spawn_blocking(work).await {
            Ok(v) => v,
            // A panicking checker is a bug; surface it as the panic it is.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        },
        Err(_) => work(),
    };
    (outcome, correct, each)
}
