//! `ponder eval`: strategies over a dataset; prints accuracy and cost per strategy
//! (a first cut; the resumable harness with curves and reports is its own issue).

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ponder_core::answer::Equivalence;
use ponder_core::strategy::{Outcome, Strategy};
use ponder_core::{Problem, Usage};
use ponder_eval::PromptStyle;
use serde::Serialize;

use crate::common::{self, ModelArgs, SamplingArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// gsm8k, math500, aime24, aime25, arith (level 2), arith:LEVEL (1-5), arith:LEVEL:COUNT
    #[arg(long, short, default_value = "arith")]
    pub dataset: String,
    /// Use the first N problems
    #[arg(long, short, default_value_t = 50)]
    pub limit: usize,
    /// One or more strategies, comma-separated: single, sc, adaptive-sc, bon, weighted-bon
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
    n_samples: usize,
    usage: Usage,
}

#[derive(Serialize)]
struct Summary {
    strategy: String,
    budget: usize,
    n_problems: usize,
    n_correct: usize,
    accuracy: f64,
    mean_samples: f64,
    usage: Usage,
    elapsed_s: f64,
    records: Vec<Record>,
}

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
    let dataset = ponder_eval::load(&a.dataset, a.sampling.seed)?;
    let scorer = common::scorer(&a.scorer, Some(dataset.checker.clone()))?;
    let problems: Vec<Problem> = dataset.problems.iter().take(a.limit).cloned().collect();
    let engine = a.model.load()?;
    let style = if engine.format().has_template() { PromptStyle::Chat } else { PromptStyle::Completion };
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
                    n_samples: o.candidates.len(),
                    usage: o.usage,
                }
            })
            .collect();
        let n_correct = records.iter().filter(|r| r.correct).count();
        summaries.push(Summary {
            strategy: strategy.name().to_string(),
            budget: strategy.budget(),
            n_problems: records.len(),
            n_correct,
            accuracy: n_correct as f64 / records.len() as f64,
            mean_samples: records.iter().map(|r| r.n_samples as f64).sum::<f64>() / records.len() as f64,
            usage: records.iter().map(|r| r.usage).sum(),
            elapsed_s: started.elapsed().as_secs_f64(),
            records,
        });
    }
    print_table(&summaries);
    print_agreement(&summaries, dataset.equivalence.as_ref());
    if let Some(path) = &a.json {
        let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(&mut f, &summaries)?;
        f.write_all(b"\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_table(summaries: &[Summary]) {
    println!(
        "{:<13} {:>6} {:>16} {:>9} {:>11} {:>10} {:>10} {:>9}",
        "strategy", "budget", "accuracy", "samples", "completion", "prompt", "reused", "wall s"
    );
    for s in summaries {
        println!(
            "{:<13} {:>6} {:>16} {:>9.2} {:>11} {:>10} {:>10} {:>9.1}",
            s.strategy,
            s.budget,
            format!("{}/{} ({:.1}%)", s.n_correct, s.n_problems, 100.0 * s.accuracy),
            s.mean_samples,
            s.usage.completion,
            s.usage.prompt_computed,
            s.usage.prompt_reused,
            s.elapsed_s
        );
    }
    println!("(samples: mean drawn per problem; completion/prompt/reused: tokens summed over all problems)");
}

/// Same-answer rates between strategies that ran on the same problems.
fn print_agreement(summaries: &[Summary], equivalence: &dyn Equivalence) {
    for (i, a) in summaries.iter().enumerate() {
        for b in &summaries[i + 1..] {
            let same = a
                .records
                .iter()
                .zip(&b.records)
                .filter(|(x, y)| match (&x.answer, &y.answer) {
                    (Some(p), Some(q)) => equivalence.equivalent(p, q),
                    (None, None) => true,
                    _ => false,
                })
                .count();
            println!("agreement {} vs {}: {}/{} problems with the same answer", a.strategy, b.strategy, same, a.records.len());
        }
    }
}
