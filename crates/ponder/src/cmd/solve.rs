//! `ponder solve`: one question, one strategy; prints the answer, the vote table and usage.

use std::sync::Arc;

use anyhow::Result;
use clap::Args as ClapArgs;
use ponder_core::strategy::Outcome;
use ponder_core::{Checker, GoldChecker, Problem};
use ponder_eval::PromptStyle;

use crate::common::{self, ModelArgs, SamplingArgs, EQUIVALENCE};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The question
    pub question: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// single, sc, adaptive-sc, bon, weighted-bon
    #[arg(long, short, default_value = "sc")]
    pub strategy: String,
    /// Samples the strategy may draw
    #[arg(long, short, default_value_t = 8)]
    pub budget: usize,
    /// Outcome scorer for bon and weighted-bon: mean-logprob, or checker (needs --gold)
    #[arg(long, default_value = "mean-logprob")]
    pub scorer: String,
    /// The known answer, to report correctness (and for --scorer checker)
    #[arg(long)]
    pub gold: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print every candidate
    #[arg(long)]
    pub show_samples: bool,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let sampling = a.sampling.params()?;
    // Built once here so a bad name or budget fails before the model loads.
    common::strategy(&a.strategy, a.budget, &sampling)?;
    let checker: Arc<dyn Checker> = Arc::new(GoldChecker(EQUIVALENCE));
    let scorer = common::scorer(&a.scorer, a.gold.as_ref().map(|_| checker.clone()))?;
    if a.question.trim().is_empty() {
        anyhow::bail!("the question is empty");
    }
    let engine = a.model.load()?;
    let problem = Problem {
        id: "cli".into(),
        question: a.question.clone(),
        gold: a.gold.clone().unwrap_or_default(),
        level: None,
        steps: Vec::new(),
    };
    let style = if engine.format().has_template() { PromptStyle::Chat } else { PromptStyle::Completion };
    let sampling = common::with_stops(sampling, style);
    let strategy = common::strategy(&a.strategy, a.budget, &sampling)?;
    let messages = ponder_eval::prompt(&problem, style);
    let rt = common::runtime()?;
    let outcome = rt.block_on(strategy.solve(&problem, &messages, &common::ctx(&engine, Some(scorer.as_ref()))))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    print_outcome(&outcome, a.show_samples, strategy.budget());
    if let Some(gold) = &a.gold {
        let ok = checker.is_correct(&Problem { gold: gold.clone(), ..problem }, outcome.answer.as_deref());
        println!("correct: {ok} (gold {gold})");
    }
    Ok(())
}

fn print_outcome(o: &Outcome, show_samples: bool, budget: usize) {
    if show_samples {
        for c in &o.candidates {
            println!("--- sample {} ({} tokens, answer {:?}, score {:?})", c.index, c.n_tokens, c.answer, c.score);
            println!("{}", c.text.trim());
        }
        println!("---");
    }
    if let Some(text) = o.chosen_text() {
        println!("{}\n", text.trim());
    }
    println!("answer: {}", o.answer.as_deref().unwrap_or("(none)"));
    if !o.votes.is_empty() {
        println!("votes:");
        println!("  {:<24} {:>5} {:>8}", "answer", "count", "weight");
        for v in &o.votes {
            println!("  {:<24} {:>5} {:>8.3}", v.answer, v.count, v.weight);
        }
        let unanswered = o.candidates.iter().filter(|c| c.answer.is_none()).count();
        if unanswered > 0 {
            println!("  {:<24} {:>5}", "(no answer)", unanswered);
        }
    }
    let early = if o.stopped_early { " (stopped early)" } else { "" };
    println!("samples: {}/{}{}{}", o.candidates.len(), budget, early, if o.n_failed > 0 { format!(", {} failed", o.n_failed) } else { String::new() });
    println!("usage: {}", common::fmt_usage(&o.usage));
}
