//! `ponder runs list | show RUN`: what a run store holds, and what each run put to the model.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use ponder_eval::runner::RunConfig;
use ponder_eval::store::{self, Store};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every run: id, status, dataset, model, units and samples stored.
    List(StoreArg),
    /// A run's configuration (prompt template included) and each problem's question and
    /// the exact prompt the model was given.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct StoreArg {
    /// The run store [default: $PONDER_HOME/ponder-runs.sqlite, else ./ponder-runs.sqlite]
    #[arg(long)]
    pub store: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    pub run: i64,
    #[command(flatten)]
    pub store: StoreArg,
    /// Only this problem (its id, as `ponder runs show` lists them)
    #[arg(long)]
    pub problem: Option<String>,
    /// Print the configuration and problems as one JSON object
    #[arg(long)]
    pub json: bool,
}

fn open(a: &StoreArg) -> Result<Store> {
    Ok(Store::open_existing(&a.store.clone().unwrap_or_else(store::default_path))?)
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::List(a) => list(&a),
        Command::Show(a) => show(&a),
    }
}

fn list(a: &StoreArg) -> Result<()> {
    let store = open(a)?;
    println!("{:>4}  {:<11}  {:<20}  {:<24}  {:>6}  {:>8}  created", "run", "status", "dataset", "model", "units", "samples");
    for r in store.runs()? {
        let (units, samples) = store.counts(r.id)?;
        println!(
            "{:>4}  {:<11}  {:<20}  {:<24}  {:>6}  {:>8}  {}",
            r.id, r.status, r.dataset, r.model, units, samples, r.created
        );
    }
    Ok(())
}

fn show(a: &ShowArgs) -> Result<()> {
    let store = open(&a.store)?;
    let info = store.run(a.run)?;
    let config = RunConfig::from_json(a.run, &info.config)?;
    let mut problems = store.problems(a.run)?;
    if let Some(id) = &a.problem {
        problems.retain(|p| &p.id == id);
        if problems.is_empty() {
            anyhow::bail!("run {} has no problem {id:?}", a.run);
        }
    }
    if a.json {
        let rows: Vec<serde_json::Value> = problems
            .iter()
            .map(|p| {
                serde_json::json!({"id": p.id, "level": p.level, "gold": p.gold, "question": p.question, "prompt": p.prompt})
            })
            .collect();
        let out = serde_json::json!({"run": info.id, "status": info.status, "config": config, "problems": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("run {} · {} · dataset {} · model {} · created {}", info.id, info.status, info.dataset, info.model, info.created);
    println!("{}", serde_json::to_string_pretty(&config)?);
    for p in &problems {
        println!("\n=== {} (gold {})", p.id, p.gold);
        println!("--- question");
        println!("{}", p.question.as_deref().unwrap_or("(not stored: run made before ponder kept questions)"));
        println!("--- prompt");
        println!("{}", p.prompt.as_deref().unwrap_or("(not stored)"));
    }
    Ok(())
}
