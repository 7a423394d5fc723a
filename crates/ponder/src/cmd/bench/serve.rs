//! `ponder bench serve`: many concurrent clients against one gateway on the engine, and the
//! same workload as direct engine calls in the same run.
//!
//! The gateway's own added latency is measured per request: the client's latency minus
//! the time the strategy ran inside the gateway (`ponder.timing.strategy_ms`), i.e. HTTP,
//! parsing, checks, JSON and scheduling. Throughput and latency are also compared with the
//! direct phase, where the same strategies run on the same engine without HTTP.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use ponder_core::strategy::StrategySpec;
use ponder_core::{Message, Problem, SamplingParams};
use ponder_http::wire;
use ponder_server::{AppState, Backend, ServerConfig};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::report::ReportArgs;
use crate::common::{self, ModelArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Concurrent clients, one request each
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Samples per request
    #[arg(long, default_value_t = 8)]
    pub budget: usize,
    /// Tokens per sample (short answers)
    #[arg(long, default_value_t = 8)]
    pub max_tokens: u32,
    #[arg(long, default_value = "sc")]
    pub strategy: String,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Serialize, Default)]
struct Phase {
    requests: usize,
    errors: usize,
    wall_s: f64,
    requests_per_s: f64,
    completion_tok_per_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    threads: i32,
    clients: usize,
    strategy: String,
    budget: usize,
    max_tokens: u32,
    direct: Phase,
    gateway: Phase,
    /// Client latency minus time inside the strategy, per gateway request.
    added_p50_ms: f64,
    added_p99_ms: f64,
    added_mean_ms: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn phase(latencies: &mut [f64], errors: usize, wall_s: f64, completion: u64) -> Phase {
    latencies.sort_by(f64::total_cmp);
    Phase {
        requests: latencies.len() + errors,
        errors,
        wall_s,
        requests_per_s: latencies.len() as f64 / wall_s,
        completion_tok_per_s: completion as f64 / wall_s,
        latency_p50_ms: percentile(latencies, 0.5),
        latency_p99_ms: percentile(latencies, 0.99),
    }
}

fn question(i: usize) -> String {
    format!("What is {} + {}? Answer with the number only.", 3 + i % 17, 5 + i / 17)
}

/// Client `i`'s chat request: the question under the model prefix that names the
/// strategy and budget, in the OpenAI shapes of ponder-http's client.
fn chat_body(a: &Args, i: usize) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(format!("{}-{}:m", a.strategy, a.budget)));
    body.insert("messages".into(), wire::messages(&[Message::user(question(i))]));
    body.insert("max_tokens".into(), json!(a.max_tokens));
    Value::Object(body)
}

/// The time the strategy ran inside the gateway (`ponder.timing.strategy_ms`), and the
/// tokens it generated, from a chat response.
fn inside_and_completion(v: &Value) -> Option<(f64, u64)> {
    let inside = v.pointer("/ponder/timing/strategy_ms")?.as_f64()?;
    Some((inside, wire::usage(v).completion))
}

pub fn run(a: Args) -> Result<()> {
    anyhow::ensure!(a.clients > 0 && a.budget > 0 && a.max_tokens > 0, "--clients, --budget and --max-tokens must be positive");
    let sampling = SamplingParams { max_tokens: a.max_tokens, ..SamplingParams::default() };
    let spec = StrategySpec::parse(&a.strategy, Some(a.budget))?;
    spec.validate()?;
    let engine = a.model.load()?;
    let cfg = a.model.engine_config();
    let rt = common::runtime()?;
    let report = rt.block_on(async {
        // Warm-up: load the weights into the caches, start the actor's batches.
        let warm = StrategySpec::parse(&a.strategy, Some(a.budget.min(4)))?.build(sampling.clone())?;
        let problem = |i: usize| Problem { id: format!("q{i}"), question: question(i), gold: String::new(), level: None, steps: Vec::new() };
        warm.solve(&problem(0), &[Message::user(question(0))], &common::ctx(&engine, None)).await?;

        eprintln!("direct: {} concurrent {} requests of budget {} ...", a.clients, a.strategy, a.budget);
        let t = Instant::now();
        let tasks: Vec<_> = (0..a.clients)
            .map(|i| {
                let (engine, sampling, spec) = (engine.clone(), sampling.clone(), spec.clone());
                let p = problem(i);
                tokio::spawn(async move {
                    let s = spec.build(sampling)?;
                    let start = Instant::now();
                    let o = s.solve(&p, &[Message::user(p.question.clone())], &common::ctx(&engine, None)).await?;
                    anyhow::Ok((start.elapsed().as_secs_f64() * 1000.0, o.usage.completion))
                })
            })
            .collect();
        let (mut lat, mut errors, mut completion) = (Vec::new(), 0, 0);
        for t in tasks {
            match t.await? {
                Ok((ms, c)) => {
                    lat.push(ms);
                    completion += c;
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("direct error: {e:#}");
                }
            }
        }
        let direct = phase(&mut lat, errors, t.elapsed().as_secs_f64(), completion);

        let state = Arc::new(AppState::new(Backend::Engine(engine.clone()), "m".into(), ServerConfig::default()).map_err(anyhow::Error::msg)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1/chat/completions", listener.local_addr()?);
        tokio::spawn(ponder_server::serve(listener, state, std::future::pending()));
        let http = reqwest::Client::builder().pool_max_idle_per_host(a.clients).build()?;
        eprintln!("gateway: {} concurrent clients ...", a.clients);
        let t = Instant::now();
        let tasks: Vec<_> = (0..a.clients)
            .map(|i| {
                let body = chat_body(&a, i);
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let r = http.post(&url).json(&body).send().await?;
                    let status = r.status();
                    let v: Value = r.json().await?;
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    anyhow::ensure!(status.is_success(), "{status}: {v}");
                    let (inside, completion) = inside_and_completion(&v).context("no ponder.timing.strategy_ms")?;
                    anyhow::Ok((ms, ms - inside, completion))
                })
            })
            .collect();
        let (mut lat, mut added, mut errors, mut completion) = (Vec::new(), Vec::new(), 0, 0);
        for t in tasks {
            match t.await? {
                Ok((ms, extra, c)) => {
                    lat.push(ms);
                    added.push(extra);
                    completion += c;
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("gateway error: {e:#}");
                }
            }
        }
        let gateway = phase(&mut lat, errors, t.elapsed().as_secs_f64(), completion);
        added.sort_by(f64::total_cmp);
        let mean = added.iter().sum::<f64>() / added.len().max(1) as f64;
        anyhow::Ok(Report {
            model: a.model.model.clone(),
            threads: cfg.n_threads,
            clients: a.clients,
            strategy: a.strategy.clone(),
            budget: a.budget,
            max_tokens: a.max_tokens,
            direct,
            gateway,
            added_p50_ms: percentile(&added, 0.5),
            added_p99_ms: percentile(&added, 0.99),
            added_mean_ms: mean,
        })
    })?;
    a.report.write("serve", &report, &markdown(&report))?;
    anyhow::ensure!(report.direct.errors == 0 && report.gateway.errors == 0, "some requests failed");
    Ok(())
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "Model `{}`, {} threads; {} concurrent clients, one `{}` request each at budget {} with {} tokens per sample.\n\n",
        r.model, r.threads, r.clients, r.strategy, r.budget, r.max_tokens
    );
    s.push_str("| path | requests | errors | wall s | requests/s | completion tok/s | latency p50 ms | latency p99 ms |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (name, p) in [("direct engine calls", &r.direct), ("through `ponder serve`", &r.gateway)] {
        s.push_str(&format!(
            "| {name} | {} | {} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} |\n",
            p.requests, p.errors, p.wall_s, p.requests_per_s, p.completion_tok_per_s, p.latency_p50_ms, p.latency_p99_ms
        ));
    }
    s.push_str(&format!(
        "\nThe gateway's own added latency per request (client latency minus time inside the strategy): \
         p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms.\n",
        r.added_p50_ms, r.added_p99_ms, r.added_mean_ms
    ));
    s
}
