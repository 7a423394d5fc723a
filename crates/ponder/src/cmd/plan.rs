//! `ponder plan RUN`: fits a compute-optimal policy (difficulty bins from probe-sample
//! agreement → strategy and budget) on a stored run and writes it for `--strategy auto`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use ponder_eval::analysis::RunData;
use ponder_eval::plan::{self, PlanOptions};
use ponder_eval::store::{self, Store};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The run id to fit on (it needs sc, bon or weighted-bon at a budget of at least --probe)
    pub run: i64,
    /// The run store [default: $PONDER_HOME/ponder-runs.sqlite, else ./ponder-runs.sqlite]
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Where to write the policy (JSON)
    #[arg(long, default_value = "policy.json")]
    pub out: PathBuf,
    /// Probe samples whose agreement measures difficulty
    #[arg(long, default_value_t = plan::DEFAULT_PROBE)]
    pub probe: usize,
    /// Merge difficulty bins with fewer units than this into a neighbour
    #[arg(long, default_value_t = 5)]
    pub min_bin: usize,
    /// Cheapest allocation reaching this accuracy (0-1) [default: the best single strategy's]
    #[arg(long, conflicts_with = "max_tokens_per_problem")]
    pub target_accuracy: Option<f64>,
    /// Instead: the most accurate allocation spending at most this many computed tokens per problem
    #[arg(long)]
    pub max_tokens_per_problem: Option<f64>,
    /// Fit on problems FROM..TO of the run only (its order, 0-based, TO excluded), leaving the
    /// rest held out: evaluate the policy there with `ponder eval --dataset 'SPEC[TO..]'
    /// --strategy auto` and compare with `ponder report AUTO_RUN --compare RUN --same-problems`
    #[arg(long, value_name = "FROM..TO")]
    pub problems: Option<String>,
}

/// `FROM..TO` as two indices.
fn parse_range(s: &str) -> Result<(usize, usize)> {
    let parsed = s.split_once("..").and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((from, to)) if to > from => Ok((from, to)),
        _ => bail!("--problems must be FROM..TO with TO > FROM, got {s:?}"),
    }
}

pub fn run(a: Args) -> Result<()> {
    if a.probe == 0 {
        bail!("--probe must be at least 1, got 0");
    }
    if let Some(t) = a.target_accuracy {
        if !(0.0..=1.0).contains(&t) {
            bail!("--target-accuracy must be between 0 and 1, got {t}");
        }
    }
    if let Some(t) = a.max_tokens_per_problem {
        if !(t.is_finite() && t > 0.0) {
            bail!("--max-tokens-per-problem must be a positive number, got {t}");
        }
    }
    let path = a.store.clone().unwrap_or_else(store::default_path);
    let store = Store::open_existing(&path)?;
    let mut data = RunData::load(&store, a.run)?;
    if let Some(range) = &a.problems {
        let (from, to) = parse_range(range)?;
        data = data.slice(from, to)?;
        println!("fitting on problems {from}..{to} of run {} ({} problems)", a.run, data.problems.len());
    }
    let opts = PlanOptions {
        probe: a.probe,
        min_bin_units: a.min_bin,
        target_accuracy: a.target_accuracy,
        max_tokens_per_problem: a.max_tokens_per_problem,
    };
    let fitted = plan::fit(&data, &opts)?;
    let policy = &fitted.policy;
    let f = policy.fitted.as_ref().context("a fitted policy records its fit")?;
    println!(
        "run {} · {} · {} · {} units · probes: first {} samples of {}",
        data.info.id, data.config.dataset, data.config.model, f.n_units, policy.probe, fitted.probe_source
    );
    println!("{:<12} {:>6} {:<18} {:>9} {:>16}", "agreement", "units", "strategy@budget", "accuracy", "tokens/problem");
    for b in &policy.bins {
        println!(
            "{:<12} {:>6} {:<18} {:>8.1}% {:>16.0}",
            format!("{}-{} of {}", b.min_agree, b.max_agree, policy.probe),
            b.n_units,
            format!("{}@{}", b.strategy, b.budget),
            100.0 * b.accuracy,
            b.tokens_per_unit
        );
    }
    println!("single strategies (no probing):");
    for (name, acc, tokens) in &fitted.singles {
        println!("  {:<20} {:>6.1}% {:>10.0} tokens/problem", name, 100.0 * acc, tokens);
    }
    println!("frontier of allocations (accuracy, tokens/problem):");
    for p in &fitted.frontier {
        println!("  {:>6.1}% {:>10.0}  {}", 100.0 * p.accuracy, p.tokens_per_unit, p.choice.join(" | "));
    }
    println!(
        "policy: {:.1}% at {:.0} tokens/problem vs best single {} {:.1}% at {:.0}: {:.1}% less compute (in-sample; \
         check with `ponder eval --strategy auto --policy {}`)",
        100.0 * f.accuracy,
        f.tokens_per_unit,
        f.baseline,
        100.0 * f.baseline_accuracy,
        f.baseline_tokens_per_unit,
        100.0 * f.savings,
        a.out.display()
    );
    let json = serde_json::to_string_pretty(policy)?;
    std::fs::write(&a.out, json + "\n").with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(())
}
