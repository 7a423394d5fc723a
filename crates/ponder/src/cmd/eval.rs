//! `ponder eval`: strategies over a dataset; prints accuracy and cost per strategy
//! (a first cut; the resumable harness with curves and reports is its own issue).
//! Abstentions (verify-resample with no passing sample) are counted apart from wrong
//! answers. On code datasets, a verify-resample run also measures its verifier (visible
//! tests) against the truth (hidden tests) and picks the fLaws best k for a stated utility.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ponder_core::answer::Equivalence;
use ponder_core::strategy::{Outcome, Strategy};
use ponder_core::verifier::{best_k, expected_utility, Utility};
use ponder_core::{Problem, Usage};
use ponder_eval::{Dataset, Kind};
use serde::Serialize;

use crate::common::{self, ModelArgs, SamplingArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// gsm8k, math500, aime24, aime25, humaneval, mbpp, arith (level 2), arith:LEVEL (1-5), arith:LEVEL:COUNT
    #[arg(long, short, default_value = "arith")]
    pub dataset: String,
    /// Use the first N problems
    #[arg(long, short, default_value_t = 50)]
    pub limit: usize,
    /// One or more strategies, comma-separated: single, sc, adaptive-sc, bon, weighted-bon,
    /// verify-resample (code datasets: the visible tests are its verifier)
    #[arg(long, short, default_value = "sc", value_delimiter = ',')]
    pub strategy: Vec<String>,
    /// Samples per problem (single always draws one)
    #[arg(long, short, default_value_t = 8)]
    pub budget: usize,
    /// Outcome scorer for bon and weighted-bon: mean-logprob or checker (the dataset's own)
    #[arg(long, default_value = "mean-logprob")]
    pub scorer: String,
    /// Problems in flight at once (their samples share the engine's batches)
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Cost of a wrong answer in the fLaws utility (a correct answer earns 1)
    #[arg(long, default_value_t = 1.0)]
    pub wrong_cost: f64,
    /// Cost of abstaining in the fLaws utility
    #[arg(long, default_value_t = 0.0)]
    pub abstain_cost: f64,
    /// Write per-problem records and the summary as JSON here
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Record {
    id: String,
    gold: String,
    answer: Option<String>,
    correct: bool,
    /// No answer given (verify-resample: no sample passed the verifier); not wrong.
    abstained: bool,
    n_samples: usize,
    usage: Usage,
}

#[derive(Serialize)]
struct Summary {
    strategy: String,
    budget: usize,
    n_problems: usize,
    n_correct: usize,
    /// Answered and wrong; `n_problems = n_correct + n_wrong + n_abstained`.
    n_wrong: usize,
    n_abstained: usize,
    accuracy: f64,
    mean_samples: f64,
    usage: Usage,
    elapsed_s: f64,
    /// verify-resample on a code dataset: the verifier measured against the hidden tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    verifier: Option<VerifierReport>,
    records: Vec<Record>,
}

/// How often the verifier (visible tests) agreed with the truth (hidden tests), over every
/// candidate drawn, and the k that maximises expected utility given those rates.
#[derive(Serialize)]
struct VerifierReport {
    n_candidates: usize,
    /// Candidates passing the visible tests / the hidden tests / both.
    n_visible_pass: usize,
    n_hidden_pass: usize,
    n_both_pass: usize,
    /// P(visible pass | hidden fail): the rate `resample_odds` takes. `None` without any
    /// wrong candidate.
    false_positive_rate: Option<f64>,
    /// P(visible pass | hidden pass). `None` without any correct candidate.
    true_positive_rate: Option<f64>,
    /// Fraction of visible-passing candidates that fail the hidden tests (what a user of
    /// the verifier sees). `None` when nothing passed.
    wrong_among_passing: Option<f64>,
    /// Per-problem fraction of drawn candidates passing the hidden tests. Biased low on
    /// problems that stopped early at a pass: a later sample might have failed.
    success_rates: Vec<f64>,
    utility: UtilityReport,
    /// The k in 1..=MAX_K with the highest expected utility, at the measured rates (an
    /// unmeasured rate is taken as tpr 1, fpr 0).
    best_k: usize,
    best_k_utility: f64,
    /// Expected utility at the run's own budget.
    budget_utility: f64,
}

#[derive(Serialize)]
struct UtilityReport {
    correct: f64,
    wrong_cost: f64,
    abstain_cost: f64,
}

/// Largest k searched by the fLaws analysis.
const MAX_K: usize = 100;

pub fn run(a: Args) -> Result<()> {
    let sampling = a.sampling.params()?;
    let strategies: Vec<Box<dyn Strategy>> =
        a.strategy.iter().map(|s| common::strategy(s.trim(), a.budget, &sampling)).collect::<Result<_>>()?;
    if a.limit == 0 {
        bail!("--limit must be at least 1, got 0");
    }
    if a.concurrency == 0 {
        bail!("--concurrency must be at least 1, got 0");
    }
    for (flag, cost) in [("--wrong-cost", a.wrong_cost), ("--abstain-cost", a.abstain_cost)] {
        if !cost.is_finite() {
            bail!("{flag} must be a finite number, got {cost}");
        }
    }
    let dataset = ponder_eval::load(&a.dataset, a.sampling.seed)?;
    let scorer = common::scorer(&a.scorer, Some(dataset.checker.clone()))?;
    let problems: Vec<Problem> = dataset.problems.iter().take(a.limit).cloned().collect();
    let engine = a.model.load()?;
    let style = dataset.prompt_style(engine.format().has_template());
    let sampling = common::with_stops(sampling, style);
    // Rebuilt with the prompt style's stop strings (built once above to fail before loading).
    let strategies: Vec<Box<dyn Strategy>> =
        strategies.iter().map(|s| common::strategy(s.name(), a.budget, &sampling)).collect::<Result<_>>()?;
    let rt = common::runtime()?;
    println!(
        "dataset {} · {} problems · model {} · seed {}",
        dataset.name,
        problems.len(),
        a.model.model,
        a.sampling.seed
    );

    let mut summaries = Vec::new();
    for strategy in &strategies {
        let ctx = common::dataset_ctx(&engine, &dataset, Some(scorer.as_ref()));
        let bar = ProgressBar::new(problems.len() as u64).with_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar.set_prefix(strategy.name().to_string());
        let started = Instant::now();
        let outcomes: Vec<(usize, Result<Outcome, ponder_core::strategy::StrategyError>)> = rt.block_on(
            futures::stream::iter(problems.iter().enumerate())
                .map(|(i, p)| {
                    let ctx = &ctx;
                    let bar = &bar;
                    async move {
                        let r = strategy.solve(p, &ponder_eval::prompt(p, style), ctx).await;
                        bar.inc(1);
                        (i, r)
                    }
                })
                .buffer_unordered(a.concurrency)
                .collect(),
        );
        bar.finish_and_clear();
        let mut by_index: HashMap<usize, Outcome> = HashMap::new();
        for (i, r) in outcomes {
            by_index.insert(i, r.with_context(|| format!("{} on problem {}", strategy.name(), problems[i].id))?);
        }
        let records: Vec<Record> = problems
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let o = &by_index[&i];
                Record {
                    id: p.id.clone(),
                    gold: p.gold.clone(),
                    answer: o.answer.clone(),
                    correct: dataset.checker.is_correct(p, o.answer.as_deref()),
                    abstained: o.abstained,
                    n_samples: o.candidates.len(),
                    usage: o.usage,
                }
            })
            .collect();
        let n_correct = records.iter().filter(|r| r.correct).count();
        let n_abstained = records.iter().filter(|r| r.abstained).count();
        let verifier = (dataset.kind == Kind::Code && strategy.name() == "verify-resample").then(|| {
            let outcomes: Vec<&Outcome> = (0..problems.len()).map(|i| &by_index[&i]).collect();
            let utility = Utility { correct: 1.0, wrong: a.wrong_cost, abstain: a.abstain_cost, per_sample: 0.0 };
            verifier_report(&dataset, &problems, &outcomes, &utility, strategy.budget())
        });
        summaries.push(Summary {
            strategy: strategy.name().to_string(),
            budget: strategy.budget(),
            n_problems: records.len(),
            n_correct,
            n_wrong: records.len() - n_correct - n_abstained,
            n_abstained,
            accuracy: n_correct as f64 / records.len() as f64,
            mean_samples: records.iter().map(|r| r.n_samples as f64).sum::<f64>() / records.len() as f64,
            usage: records.iter().map(|r| r.usage).sum(),
            elapsed_s: started.elapsed().as_secs_f64(),
            verifier,
            records,
        });
        // A row as soon as its strategy is done: long runs show results as they go.
        if summaries.len() == 1 {
            print_header();
        }
        print_row(summaries.last().expect("just pushed"));
    }
    print_legend();
    for s in &summaries {
        if let Some(v) = &s.verifier {
            print_verifier(&s.strategy, v);
        }
    }
    print_agreement(&summaries, dataset.equivalence.as_ref());
    if let Some(path) = &a.json {
        let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(&mut f, &summaries)?;
        f.write_all(b"\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_header() {
    println!(
        "{:<15} {:>6} {:>16} {:>6} {:>8} {:>9} {:>11} {:>10} {:>10} {:>9}",
        "strategy", "budget", "accuracy", "wrong", "abstain", "samples", "completion", "prompt", "reused", "wall s"
    );
}

fn print_row(s: &Summary) {
    println!(
        "{:<15} {:>6} {:>16} {:>6} {:>8} {:>9.2} {:>11} {:>10} {:>10} {:>9.1}",
        s.strategy,
        s.budget,
        format!("{}/{} ({:.1}%)", s.n_correct, s.n_problems, 100.0 * s.accuracy),
        s.n_wrong,
        s.n_abstained,
        s.mean_samples,
        s.usage.completion,
        s.usage.prompt_computed,
        s.usage.prompt_reused,
        s.elapsed_s
    );
}

fn print_legend() {
    println!(
        "(wrong: answered and wrong; abstain: no answer given; samples: mean drawn per problem; \
         completion/prompt/reused: tokens summed over all problems)"
    );
}

/// Grades every candidate of a verify-resample run on the hidden tests, compares with the
/// verifier's verdicts (the candidates' scores), and runs the fLaws analysis.
fn verifier_report(
    dataset: &Dataset,
    problems: &[Problem],
    outcomes: &[&Outcome],
    utility: &Utility,
    budget: usize,
) -> VerifierReport {
    // (visible pass, hidden pass) per candidate, per problem; the checks run in parallel
    // on the dataset's sandbox pool, one thread per problem waiting on it.
    let verdicts: Vec<Vec<(bool, bool)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = problems
            .iter()
            .zip(outcomes)
            .map(|(p, o)| {
                scope.spawn(move || {
                    o.candidates
                        .iter()
                        .map(|c| (c.score == Some(1.0), dataset.checker.is_correct(p, c.answer.as_deref())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A panic in a grading thread is a bug in the checker; surface it here.
        handles.into_iter().map(|h| h.join().expect("grading thread panicked")).collect()
    });
    let all: Vec<(bool, bool)> = verdicts.iter().flatten().copied().collect();
    let count = |f: fn(&(bool, bool)) -> bool| all.iter().filter(|v| f(v)).count();
    let n_visible_pass = count(|v| v.0);
    let n_hidden_pass = count(|v| v.1);
    let n_both_pass = count(|v| v.0 && v.1);
    let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let false_positive_rate = ratio(n_visible_pass - n_both_pass, all.len() - n_hidden_pass);
    let true_positive_rate = ratio(n_both_pass, n_hidden_pass);
    let success_rates: Vec<f64> = verdicts
        .iter()
        .map(|v| ratio(v.iter().filter(|x| x.1).count(), v.len()).unwrap_or(0.0))
        .collect();
    let (tpr, fpr) = (true_positive_rate.unwrap_or(1.0), false_positive_rate.unwrap_or(0.0));
    let (best_k, best_k_utility) = best_k(&success_rates, tpr, fpr, utility, MAX_K);
    VerifierReport {
        n_candidates: all.len(),
        n_visible_pass,
        n_hidden_pass,
        n_both_pass,
        false_positive_rate,
        true_positive_rate,
        wrong_among_passing: ratio(n_visible_pass - n_both_pass, n_visible_pass),
        budget_utility: expected_utility(&success_rates, tpr, fpr, utility, budget),
        success_rates,
        utility: UtilityReport { correct: utility.correct, wrong_cost: utility.wrong, abstain_cost: utility.abstain },
        best_k,
        best_k_utility,
    }
}

fn print_verifier(strategy: &str, v: &VerifierReport) {
    let rate = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.3}"));
    println!(
        "verifier ({strategy}, visible tests vs hidden): {} candidates, {} pass visible, {} pass hidden, {} both · \
         false-positive rate {} · true-positive rate {} · wrong among passing {}",
        v.n_candidates,
        v.n_visible_pass,
        v.n_hidden_pass,
        v.n_both_pass,
        rate(v.false_positive_rate),
        rate(v.true_positive_rate),
        rate(v.wrong_among_passing)
    );
    println!(
        "fLaws best k (correct +{}, wrong -{}, abstain -{}): k = {} (expected utility {:.3}; {:.3} at this budget)",
        v.utility.correct, v.utility.wrong_cost, v.utility.abstain_cost, v.best_k, v.best_k_utility, v.budget_utility
    );
}

/// Same-answer rates between strategies that ran on the same problems.
fn print_agreement(summaries: &[Summary], equivalence: &dyn Equivalence) {
    let same = |x: &Record, y: &Record| match (&x.answer, &y.answer) {
        (Some(p), Some(q)) => equivalence.equivalent(p, q),
        (None, None) => true,
        _ => false,
    };
    for (i, a) in summaries.iter().enumerate() {
        for b in &summaries[i + 1..] {
            let pairs: Vec<(&Record, &Record)> = a.records.iter().zip(&b.records).collect();
            let n_same = pairs.iter().filter(|(x, y)| same(x, y)).count();
            println!("agreement {} vs {}: {}/{} problems with the same answer", a.strategy, b.strategy, n_same, pairs.len());
            // Where one side stopped early, did it still reach the other's answer?
            for (early, full, flip) in [(a, b, false), (b, a, true)] {
                let stopped: Vec<&(&Record, &Record)> =
                    pairs.iter().filter(|(x, y)| if flip { y.n_samples < early.budget } else { x.n_samples < early.budget }).collect();
                if early.budget > 1 && full.mean_samples >= full.budget as f64 && !stopped.is_empty() {
                    let n = stopped.iter().filter(|(x, y)| same(x, y)).count();
                    let drawn: usize = stopped.iter().map(|(x, y)| if flip { y.n_samples } else { x.n_samples }).sum();
                    println!(
                        "  where {} stopped early ({} problems, {:.1} samples each): same answer as {} on {}/{}",
                        early.strategy,
                        stopped.len(),
                        drawn as f64 / stopped.len() as f64,
                        full.strategy,
                        n,
                        stopped.len()
                    );
                }
            }
        }
    }
}
