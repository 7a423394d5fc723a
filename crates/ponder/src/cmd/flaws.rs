//! `ponder flaws RUN`: verified resampling with the visible tests as the verifier, replayed
//! on a code run's stored samples (Inference Scaling fLaws): false-positive rates, accuracy,
//! wrong answers and abstentions against k, and the best k per cost of a wrong answer.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args as ClapArgs;
use ponder_eval::analysis::RunData;
use ponder_eval::report::flaws::{self as write, Reference};
use ponder_eval::store::{self, Store};
use ponder_eval::{flaws, LoadOptions};

use crate::common;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// A run on a code dataset (humaneval, mbpp) that drew several samples per problem
    pub run: i64,
    /// The strategy whose samples are the draws (default: the run's first)
    #[arg(long)]
    pub strategy: Option<String>,
    /// A run of another model on the same problems (e.g. the 1.5B greedy): its single-sample
    /// accuracy is drawn as a line and its verifier's false-positive rate reported
    #[arg(long)]
    pub reference: Option<i64>,
    /// The run store [default: $PONDER_HOME/ponder-runs.sqlite, else ./ponder-runs.sqlite]
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Directory for flaws.json, flaws.md and flaws.svg [default: ponder-flaws-RUN]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sandbox checks in flight
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Run the programs without isolation when bubblewrap is unavailable (unsafe: they run
    /// with your privileges), as `ponder grade code` does
    #[arg(long)]
    pub allow_unsandboxed: bool,
}

fn analyse(store: &Store, id: i64, strategy: Option<&str>, a: &Args, rt: &tokio::runtime::Runtime) -> Result<(RunData, flaws::FlawsReport)> {
    let data = RunData::load(store, id)?;
    let c = &data.config;
    let options = LoadOptions { skip_bad_rows: c.skip_bad_rows, allow_unsandboxed: a.allow_unsandboxed };
    let dataset = ponder_eval::load_with(&c.dataset, c.dataset_seed, options)?.dataset;
    let Some(strategy) = strategy.map(str::to_string).or_else(|| c.strategies.first().cloned()) else {
        bail!("run {id} has no strategy");
    };
    eprintln!("run {id}: checking every {strategy} candidate against the visible tests ...");
    let draws = rt.block_on(flaws::gather(&data, &dataset, &strategy, a.concurrency))?;
    let report = flaws::analyse(&draws, 0);
    Ok((data, report))
}

pub fn run(a: Args) -> Result<()> {
    let path = a.store.clone().unwrap_or_else(store::default_path);
    let store = Store::open_existing(&path)?;
    let rt = common::runtime()?;
    let (data, report) = analyse(&store, a.run, a.strategy.as_deref(), &a, &rt)?;
    let label = format!("run {} ({}, {})", a.run, data.config.model, data.config.dataset);
    let reference = match a.reference {
        Some(id) => {
            let (rdata, r) = analyse(&store, id, None, &a, &rt)?;
            if rdata.config.dataset != data.config.dataset {
                bail!("run {id} is on {}, run {} on {}: a reference must be on the same dataset", rdata.config.dataset, a.run, data.config.dataset);
            }
            Some(Reference { label: format!("run {id} ({})", rdata.config.model), report: r })
        }
        None => None,
    };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("ponder-flaws-{}", a.run)));
    let written = write::write(&label, &report, reference.as_ref(), &out)?;
    print!("{}", write::markdown(&label, &report, reference.as_ref()));
    println!("wrote {}", written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    Ok(())
}
