//! `ponder report RUN`: a self-contained HTML page with SVG plots, Markdown and CSV tables
//! for a stored run, optionally overlaid with other runs (`--compare`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args as ClapArgs;
use ponder_eval::analysis::RunData;
use ponder_eval::cost::Prices;
use ponder_eval::curves::CurveOptions;
use ponder_eval::report::{self, ReportOptions};
use ponder_eval::store::{self, Store};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The run id (printed by `ponder eval`)
    pub run: i64,
    /// The run store [default: $PONDER_HOME/ponder-runs.sqlite, else ./ponder-runs.sqlite]
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Directory to write report.html, report.md and the CSV files into [default: ponder-report-RUN]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Other runs of the same store to overlay, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<i64>,
    /// Limit the compared runs to the problems of RUN (a held-out half against a run on all)
    #[arg(long, requires = "compare")]
    pub same_problems: bool,
    /// Price table (JSON: {"prompt_per_million", "completion_per_million", "cached_prompt_per_million"?})
    /// for dollar costs
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Random subsets per problem and k for maj@k / best-of-k curves
    #[arg(long, default_value_t = 1000)]
    pub subsets: usize,
    /// Bootstrap resamples for confidence intervals
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
}

pub fn run(a: Args) -> Result<()> {
    if a.subsets == 0 {
        anyhow::bail!("--subsets must be at least 1, got 0");
    }
    let prices = a.prices.as_deref().map(Prices::load).transpose()?;
    let path = a.store.clone().unwrap_or_else(store::default_path);
    let store = Store::open_existing(&path)?;
    let mut runs = vec![RunData::load(&store, a.run)?];
    let ids: std::collections::HashSet<String> = runs[0].problems.iter().map(|p| p.id.clone()).collect();
    for id in &a.compare {
        let other = RunData::load(&store, *id)?;
        if a.same_problems {
            let keep: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
            let limited = other.only(&keep);
            if limited.problems.len() < keep.len() {
                anyhow::bail!(
                    "run {id} lacks {} of the {} problems of run {}",
                    keep.len() - limited.problems.len(),
                    keep.len(),
                    a.run
                );
            }
            runs.push(limited);
        } else {
            runs.push(other);
        }
    }
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("ponder-report-{}", a.run)));
    let opts = ReportOptions {
        prices,
        curves: CurveOptions { n_subsets: a.subsets, exact_up_to: a.subsets, n_boot: a.bootstrap, ..CurveOptions::default() },
    };
    let written = report::write(&runs, &out, &opts)?;
    let main = &runs[0];
    println!(
        "run {} · {} · {} · {} units, {} samples · {}",
        main.info.id,
        main.config.dataset,
        main.config.model,
        main.outcomes.len(),
        main.samples.len(),
        main.info.status
    );
    println!("{:<22} {:>6} {:>22} {:>14} {:>14}", "strategy", "budget", "accuracy [95% CI]", "tokens/problem", "tokens/pass");
    for g in main.summaries(opts.prices.as_ref()) {
        let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.0}"));
        println!(
            "{:<22} {:>6} {:>22} {:>14} {:>14}",
            g.config.strategy,
            g.config.budget,
            format!("{:.1}% [{:.1}, {:.1}]", 100.0 * g.accuracy.mean, 100.0 * g.accuracy.lo, 100.0 * g.accuracy.hi),
            fmt(g.cost.tokens_per_problem()),
            fmt(g.cost.tokens_per_pass())
        );
    }
    println!("wrote {}", written.html.display());
    println!("wrote {}", written.markdown.display());
    for c in &written.csv {
        println!("wrote {}", c.display());
    }
    Ok(())
}
