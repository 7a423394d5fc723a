//! `ponder solve`: one question, one strategy; prints the answer, the vote table and usage.

use std::sync::Arc;

use anyhow::Result;
use clap::Args as ClapArgs;
use ponder_core::strategy::Outcome;
use ponder_core::{Checker, GoldChecker, Problem};

use crate::common::{self, ModelArgs, SamplingArgs, SearchArgs, EQUIVALENCE};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The question
    pub question: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// single, sc, adaptive-sc, bon, weighted-bon, verify-resample, beam, dvts, pf, pgibbs, astar
    #[arg(long, short, default_value = "sc")]
    pub strategy: String,
    /// Samples the strategy may draw
    #[arg(long, short, default_value_t = 8)]
    pub budget: usize,
    /// mean-logprob or checker (needs --gold) for bon and weighted-bon; self-eval, step-check
    /// (needs --gold and --steps), prm (needs --prm-model) or judge (needs --judge-model) for
    /// search strategies, and for bon
    /// on whole candidates
    #[arg(long, default_value = "mean-logprob")]
    pub scorer: String,
    /// Reference intermediate results, comma-separated, for --scorer step-check
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<String>,
    #[command(flatten)]
    pub search: SearchArgs,
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
    /// Policy file from `ponder plan`, for --strategy auto
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
    /// Prompt template: math-fewshot, math-boxed, math-completion, code-chat, code-completion,
    /// or a TOML/JSON file (system, examples, user, stop) [default: by model]
    #[arg(long)]
    pub prompt: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let sampling = a.sampling.params()?;
    // Built once here so a bad name or budget fails before the model loads.
    let search = a.search.config()?;
    let policy = a.policy.as_deref().map(ponder_eval::plan::Policy::load).transpose()?;
    ponder_eval::auto::build_strategy(&a.strategy, a.budget, &sampling, &search, policy.as_ref())?;
    common::check_scorer(&a.scorer)?;
    let checker: Arc<dyn Checker> = Arc::new(GoldChecker(EQUIVALENCE));
    if a.question.trim().is_empty() {
        anyhow::bail!("the question is empty");
    }
    if a.scorer == "step-check" && (a.gold.is_none() || a.steps.is_empty()) {
        anyhow::bail!("--scorer step-check needs --gold and --steps (the reference intermediate results)");
    }
    // Read before the model loads, so a bad template fails fast.
    let template = a.prompt.as_deref().map(|p| ponder_eval::PromptTemplate::resolve(p.trim())).transpose()?;
    let engine = a.model.load()?;
    let problem = Problem {
        id: "cli".into(),
        question: a.question.clone(),
        gold: a.gold.clone().unwrap_or_default(),
        level: None,
        steps: a.steps.clone(),
    };
    let template = match template {
        Some(t) => t,
        None => common::prompt_template(None, ponder_eval::Kind::Answer, &engine)?,
    };
    let prompt = common::prompt_fn(&template);
    let scorers =
        common::scorers(&a.scorer, a.gold.as_ref().map(|_| checker.clone()), &a.search, &a.model, &engine, prompt)?;
    let sampling = common::with_stops(sampling, &template);
    let strategy = ponder_eval::auto::build_strategy(&a.strategy, a.budget, &sampling, &search, policy.as_ref())?;
    let messages = template.render(&problem)?;
    let rt = common::runtime()?;
    let ctx = ponder_core::strategy::Ctx { process: scorers.process.as_deref(), ..common::ctx(&engine, scorers.outcome.as_deref()) };
    let outcome = rt.block_on(strategy.solve(&problem, &messages, &ctx))?;
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
