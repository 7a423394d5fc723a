//! `ponder bench serve`: the gateway's own cost. Each scenario runs the same requests three
//! times in one run: as direct strategy calls on the backend, through `ponder serve` over
//! HTTP, and direct again, so that a drift of the backend's state (the engine's prefix
//! cache filling up) shows instead of being charged to the gateway; first one client sending requests one after another (the added latency of one
//! request on an idle gateway), then many concurrent clients (throughput under load).
//!
//! The gateway's own added latency is measured per request: the client's latency minus
//! the time the strategy ran inside the gateway (`ponder.timing.strategy_ms`), i.e. HTTP,
//! parsing, checks, JSON and scheduling. `--instant` puts a generator that answers at once
//! (no model) behind both paths, so what remains is the gateway alone; without it the
//! backend is the engine, whose threads share the cores with the gateway's.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use ponder_core::strategy::StrategySpec;
use ponder_core::testing::{Choice, ScriptedGenerator};
use ponder_core::{Generator, Message, Problem, SamplingParams, Usage};
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
    /// Concurrent clients of the load scenario, one request each
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Requests the single client sends one after another
    #[arg(long, default_value_t = 20)]
    pub sequential: usize,
    /// Samples per request
    #[arg(long, default_value_t = 8)]
    pub budget: usize,
    /// Tokens per sample (short answers)
    #[arg(long, default_value_t = 8)]
    pub max_tokens: u32,
    #[arg(long, default_value = "sc")]
    pub strategy: String,
    /// Behind both paths, a generator that answers at once instead of the model: measures
    /// the gateway alone (HTTP, parsing, admission, JSON) with nothing competing for the CPU
    #[arg(long)]
    pub instant: bool,
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
    /// Tokens summed over the requests, as their usage reports them.
    completion: u64,
    prompt_computed: u64,
    prompt_reused: u64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

#[derive(Serialize)]
struct Scenario {
    clients: usize,
    requests: usize,
    direct: Phase,
    gateway: Phase,
    /// The direct calls once more, after the gateway's.
    direct_again: Phase,
    /// Client latency minus time inside the strategy, per gateway request.
    added_p50_ms: f64,
    added_p99_ms: f64,
    added_mean_ms: f64,
    /// Gateway requests/s over the mean of the two direct phases'.
    throughput_ratio: f64,
}

#[derive(Serialize)]
struct Report {
    /// `instant` (no model) or the model's name.
    backend: String,
    threads: i32,
    strategy: String,
    budget: usize,
    max_tokens: u32,
    scenarios: Vec<Scenario>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn phase(latencies: &mut [f64], errors: usize, wall_s: f64, usage: Usage) -> Phase {
    latencies.sort_by(f64::total_cmp);
    Phase {
        requests: latencies.len() + errors,
        errors,
        wall_s,
        requests_per_s: latencies.len() as f64 / wall_s,
        completion_tok_per_s: usage.completion as f64 / wall_s,
        completion: usage.completion,
        prompt_computed: usage.prompt_computed,
        prompt_reused: usage.prompt_reused,
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

/// The time the strategy ran inside the gateway (`ponder.timing.strategy_ms`), and what
/// it computed, from a chat response.
fn inside_and_usage(v: &Value) -> Option<(f64, Usage)> {
    let inside = v.pointer("/ponder/timing/strategy_ms")?.as_f64()?;
    Some((inside, wire::usage(v)))
}

/// One request's result: client latency, the gateway's added part (0 direct), usage.
type Done = (f64, f64, Usage);

/// `clients` tasks, each sending its share of `requests` one after another; `one(i)` is
/// request `i`. Latencies, added latencies, errors, wall seconds and tokens.
async fn drive<F, Fut>(clients: usize, requests: usize, one: F) -> Result<(Phase, Vec<f64>)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Done>> + Send,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in (c..requests).step_by(clients) {
                    out.push(one(i).await);
                }
                out
            })
        })
        .collect();
    let (mut lat, mut added, mut errors, mut usage) = (Vec::new(), Vec::new(), 0, Usage::default());
    for t in tasks {
        for r in t.await? {
            match r {
                Ok((ms, extra, u)) => {
                    lat.push(ms);
                    added.push(extra);
                    usage += u;
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
    Ok((phase(&mut lat, errors, t.elapsed().as_secs_f64(), usage), added))
}

fn problem(i: usize) -> Problem {
    Problem { id: format!("q{i}"), question: question(i), gold: String::new(), level: None, steps: Vec::new() }
}

/// Request `i` as a direct strategy call on `generator`.
async fn direct(generator: Arc<dyn Generator>, spec: StrategySpec, sampling: SamplingParams, i: usize) -> Result<Done> {
    let p = problem(i);
    let s = spec.build(sampling)?;
    let start = Instant::now();
    let o = s.solve(&p, &[Message::user(p.question.clone())], &common::ctx(generator.as_ref(), None)).await?;
    Ok((start.elapsed().as_secs_f64() * 1000.0, 0.0, o.usage))
}

/// Request `i` through the gateway at `url`.
async fn through(http: reqwest::Client, url: Arc<str>, body: Value) -> Result<Done> {
    let start = Instant::now();
    let r = http.post(&*url).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    let (inside, usage) = inside_and_usage(&v).context("no ponder.timing.strategy_ms")?;
    Ok((ms, ms - inside, usage))
}

/// The generator that answers at once: a short answer, one word per token.
fn instant() -> Arc<dyn Generator> {
    Arc::new(ScriptedGenerator::new(vec![
        Choice::new("The answer is 8", 3.0, -0.1),
        Choice::new("The answer is 9", 1.0, -0.5),
    ]))
}

pub fn run(a: Args) -> Result<()> {
    anyhow::ensure!(
        a.clients > 0 && a.sequential > 0 && a.budget > 0 && a.max_tokens > 0,
        "--clients, --sequential, --budget and --max-tokens must be positive"
    );
    let sampling = SamplingParams { max_tokens: a.max_tokens, ..SamplingParams::default() };
    let spec = StrategySpec::parse(&a.strategy, Some(a.budget))?;
    spec.validate()?;
    let (generator, backend, name, threads): (Arc<dyn Generator>, Backend, String, i32) = if a.instant {
        let g = instant();
        (g.clone(), Backend::Generator(g), "instant".into(), 0)
    } else {
        let engine = a.model.load()?;
        (Arc::new(engine.clone()), Backend::Engine(engine), a.model.model.clone(), a.model.engine_config().n_threads)
    };
    let rt = common::runtime()?;
    let report = rt.block_on(async {
        // Warm-up: load the weights into the caches, start the actor's batches.
        direct(generator.clone(), StrategySpec::parse(&a.strategy, Some(a.budget.min(4)))?, sampling.clone(), 0).await?;
        let state = Arc::new(AppState::new(backend, "m".into(), ServerConfig::default()).map_err(anyhow::Error::msg)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url: Arc<str> = format!("http://{}/v1/chat/completions", listener.local_addr()?).into();
        tokio::spawn(ponder_server::serve(listener, state, std::future::pending()));
        let http = reqwest::Client::builder().pool_max_idle_per_host(a.clients).build()?;
        through(http.clone(), url.clone(), chat_body(&a, 0)).await?;

        let mut scenarios = Vec::new();
        for (clients, requests) in [(1, a.sequential), (a.clients, a.clients)] {
            eprintln!("{clients} client(s), {requests} {} requests of budget {}: direct, through the gateway, direct ...", a.strategy, a.budget);
            let (g, spec, sampling) = (generator.clone(), spec.clone(), sampling.clone());
            let call = move |i| direct(g.clone(), spec.clone(), sampling.clone(), i);
            let (direct, _) = drive(clients, requests, call.clone()).await?;
            let bodies: Arc<Vec<Value>> = Arc::new((0..requests).map(|i| chat_body(&a, i)).collect());
            let (http, url) = (http.clone(), url.clone());
            let (gateway, mut added) = drive(clients, requests, move |i| through(http.clone(), url.clone(), bodies[i].clone())).await?;
            let (direct_again, _) = drive(clients, requests, call).await?;
            added.sort_by(f64::total_cmp);
            let mean = added.iter().sum::<f64>() / added.len().max(1) as f64;
            let both = (direct.requests_per_s + direct_again.requests_per_s) / 2.0;
            let throughput_ratio = gateway.requests_per_s / both.max(f64::MIN_POSITIVE);
            scenarios.push(Scenario {
                clients,
                requests,
                direct,
                gateway,
                direct_again,
                added_p50_ms: percentile(&added, 0.5),
                added_p99_ms: percentile(&added, 0.99),
                added_mean_ms: mean,
                throughput_ratio,
            });
        }
        anyhow::Ok(Report { backend: name, threads, strategy: a.strategy.clone(), budget: a.budget, max_tokens: a.max_tokens, scenarios })
    })?;
    let file = if a.instant { "serve-instant" } else { "serve" };
    a.report.write(file, &report, &markdown(&report))?;
    let failed = report.scenarios.iter().any(|s| s.direct.errors + s.gateway.errors > 0);
    anyhow::ensure!(!failed, "some requests failed");
    Ok(())
}

fn markdown(r: &Report) -> String {
    let backend = if r.backend == "instant" {
        "a generator that answers at once (no model)".to_string()
    } else {
        format!("model `{}`, {} threads", r.backend, r.threads)
    };
    let mut s = format!(
        "Backend: {backend}; one `{}` request per client at budget {} with {} tokens per sample.\n\n",
        r.strategy, r.budget, r.max_tokens
    );
    s.push_str("| clients | path | requests | errors | wall s | requests/s | completion tok/s | prompt computed / reused | latency p50 ms | latency p99 ms |\n");
    s.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for sc in &r.scenarios {
        for (name, p) in [("direct calls", &sc.direct), ("through `ponder serve`", &sc.gateway), ("direct calls again", &sc.direct_again)] {
            s.push_str(&format!(
                "| {} | {name} | {} | {} | {:.2} | {:.2} | {:.1} | {} / {} | {:.2} | {:.2} |\n",
                sc.clients, p.requests, p.errors, p.wall_s, p.requests_per_s, p.completion_tok_per_s, p.prompt_computed, p.prompt_reused,
                p.latency_p50_ms, p.latency_p99_ms
            ));
        }
    }
    s.push_str("\nThe gateway's own added latency per request (client latency minus time inside the strategy), and its throughput against the mean of the two direct phases:\n\n");
    s.push_str("| clients | added p50 ms | added p99 ms | added mean ms | gateway / direct requests/s |\n|---:|---:|---:|---:|---:|\n");
    for sc in &r.scenarios {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.1}% |\n",
            sc.clients, sc.added_p50_ms, sc.added_p99_ms, sc.added_mean_ms, 100.0 * sc.throughput_ratio
        ));
    }
    s
}
