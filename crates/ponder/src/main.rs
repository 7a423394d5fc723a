//! The `ponder` command: parses flags and calls the crates. Nothing else lives here.

mod cmd;
mod backend;
mod common;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ponder", version, about = "Test-time compute for small open models: sample, verify, vote, stop early")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one question with a strategy and print the answer, the votes and the cost.
    Solve(cmd::solve::Args),
    /// Run strategies × budgets × seeds over a dataset, store every sample, print accuracy and cost.
    Eval(cmd::eval::Args),
    /// Write an HTML report with plots, plus Markdown and CSV tables, for a stored run.
    Report(cmd::report::Args),
    /// Verified resampling replayed on a code run's samples: false positives, accuracy against
    /// k, the best k per cost of a wrong answer (Inference Scaling fLaws).
    Flaws(cmd::flaws::Args),
    /// List the runs of a store, or show one: its configuration and every prompt it used.
    #[command(subcommand)]
    Runs(cmd::runs::Command),
    /// Fit a compute-optimal policy (difficulty bins → strategy and budget) on a stored run.
    Plan(cmd::plan::Args),
    /// Run a verifier over JSONL cases, one JSON verdict per line.
    #[command(subcommand)]
    Grade(cmd::grade::Command),
    /// List every strategy with its parameters, defaults and budget unit, and the scorers.
    Strategies(cmd::strategies::Args),
    /// List or fetch models.
    #[command(subcommand)]
    Models(cmd::models::Command),
    /// Measure the engine.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    /// OpenAI-compatible gateway: every request runs a strategy (model prefix `sc-16:MODEL`
    /// or a `ponder` object in the body), on the engine or an upstream server.
    Serve(cmd::serve::Args),
}

fn main() -> ExitCode {
    // llama.cpp's own log lines arrive under the target `llama-cpp-2` and stay off unless
    // PONDER_LOG asks for them. Among them is "n_ctx_seq (16384) > n_ctx_train (8192)" on
    // every load with the default --ctx: with one KV cache shared by all sequences,
    // llama.cpp takes all of --ctx as one sequence's room, while the engine caps each
    // sequence at the training context (`Engine::info().context_len`).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PONDER_LOG")
                .unwrap_or_else(|_| "warn,llama_cpp_2=off,llama-cpp-2=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Solve(a) => cmd::solve::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Runs(c) => cmd::runs::run(c),
        Command::Flaws(a) => cmd::flaws::run(a),
        Command::Strategies(a) => cmd::strategies::run(a),
        Command::Models(c) => cmd::models::run(c),
        Command::Grade(c) => cmd::grade::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Serve(a) => cmd::serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ponder: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
