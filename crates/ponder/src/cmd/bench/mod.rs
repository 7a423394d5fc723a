//! `ponder bench`: measurements, each written by one report writer (`report.rs`) into the
//! directory `--out` names, and summarised in BENCHMARKS.md (`--markdown`).

use anyhow::Result;
use clap::Subcommand;

mod engine;
mod report;
mod search;
mod serve;
mod verify;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Prefill and batched-decode throughput of the engine against raw llama.cpp calls
    Engine(engine::Args),
    /// Particle filtering on the engine against the same algorithm re-prefilling every
    /// branch at every step (what a stateless HTTP backend pays)
    Search(search::Args),
    /// The gateway's own cost: one client, then many concurrent clients, against one `ponder
    /// serve` on the engine (or `--instant`, no model), and the same requests as direct
    /// calls: errors, throughput, the gateway's added latency
    Serve(serve::Args),
    /// Math grader checks per second (and worst case on pathological inputs); sandboxed
    /// code checks per second at the pool's default size
    Verify(verify::Args),
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Engine(a) => engine::run(a),
        Command::Search(a) => search::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Verify(a) => verify::run(a),
    }
}
