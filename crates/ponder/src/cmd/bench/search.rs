//! `ponder bench search`: particle filtering on the engine (forks share KV cells, dropped
//! particles are freed at once) against the same algorithm forced to re-prefill every
//! branch at every step, as a stateless HTTP server without a prefix cache must. One run,
//! same problems, same seeds.

use std::time::Instant;

use anyhow::Result;
use clap::Args as ClapArgs;
use ponder_core::process::StepCheck;
use ponder_core::strategy::{Ctx, PfConfig, StepConfig, StrategySpec};
use ponder_core::{Generator, Usage};
use serde::Serialize;

use super::report::ReportArgs;
use crate::common::{self, ModelArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Particles
    #[arg(long, default_value_t = 16)]
    pub particles: usize,
    /// Generated-task problems (level --level)
    #[arg(long, default_value_t = 4)]
    pub problems: usize,
    #[arg(long, default_value_t = 2)]
    pub level: u32,
    /// Most tokens per step (steps also end at a blank line)
    #[arg(long, default_value_t = 32)]
    pub step_tokens: u32,
    /// Most tokens per particle
    #[arg(long, default_value_t = 160)]
    pub max_tokens: u32,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Serialize, Default, Clone)]
struct PathResult {
    path: String,
    wall_s: f64,
    usage: Usage,
    correct: usize,
    /// Generated tokens per second of wall time.
    completion_tok_s: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    threads: i32,
    particles: usize,
    problems: usize,
    level: u32,
    step_tokens: u32,
    max_tokens: u32,
    paths: Vec<PathResult>,
    speedup: f64,
}

pub fn run(a: Args) -> Result<()> {
    let engine = a.model.load()?;
    let dataset = ponder_eval::load(&format!("arith:{}:{}", a.level, a.problems), 0)?;
    let template = common::prompt_template(None, dataset.kind, &engine)?;
    let step = StepConfig { max_step_tokens: a.step_tokens, ..StepConfig::default() };
    let spec = StrategySpec::Pf(PfConfig { n: a.particles, step, ..PfConfig::default() });
    let sampling = common::with_stops(
        ponder_core::SamplingParams { temperature: 0.7, max_tokens: a.max_tokens, ..Default::default() },
        &template,
    );
    let rt = common::runtime()?;
    let mut paths = Vec::new();
    for (name, generator) in [("engine (KV shared)", engine.clone()), ("re-prefill every step", engine.reprefilling())] {
        eprintln!("particle filtering, {} particles, {} problems: {name} ...", a.particles, a.problems);
        let mut result = PathResult { path: name.into(), ..PathResult::default() };
        let started = Instant::now();
        for problem in &dataset.problems {
            let strategy = spec.build(sampling.clone())?;
            let ctx = Ctx { process: Some(&StepCheck), ..common::dataset_ctx(&generator, &dataset, None) };
            let messages = template.render(problem)?;
            let outcome = rt.block_on(strategy.solve(problem, &messages, &ctx))?;
            result.usage += outcome.usage;
            result.correct += usize::from(dataset.checker.is_correct(problem, outcome.answer.as_deref()));
        }
        result.wall_s = started.elapsed().as_secs_f64();
        result.completion_tok_s = result.usage.completion as f64 / result.wall_s;
        paths.push(result);
    }
    let speedup = paths[1].wall_s / paths[0].wall_s;
    let threads = a.model.engine_config().n_threads;
    let report = Report {
        model: engine.info().model,
        threads,
        particles: a.particles,
        problems: a.problems,
        level: a.level,
        step_tokens: a.step_tokens,
        max_tokens: a.max_tokens,
        paths,
        speedup,
    };
    let mut table = format!(
        "Particle filtering, {} particles, {} generated-task problems (level {}), steps ≤ {} tokens, ≤ {} tokens per particle, \
         scorer step-check, model `{}`, {} threads.\n\n\
         | path | wall s | generated | prompt computed | prompt reused | generated tok/s | correct |\n|---|---:|---:|---:|---:|---:|---:|\n",
        report.particles, report.problems, report.level, report.step_tokens, report.max_tokens, report.model, threads
    );
    for p in &report.paths {
        table.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {:.1} | {}/{} |\n",
            p.path, p.wall_s, p.usage.completion, p.usage.prompt_computed, p.usage.prompt_reused, p.completion_tok_s, p.correct, report.problems
        ));
    }
    table.push_str(&format!("\nRe-prefilling takes {speedup:.2}× the engine's wall time.\n"));
    a.report.write("search", &report, &table)
}
