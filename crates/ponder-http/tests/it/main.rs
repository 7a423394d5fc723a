//! The HTTP backend against a real `ponder serve` gateway (in-process, real HTTP, the real
//! engine on SmolLM2-135M), through a fault-injecting proxy, and against a scripted reward
//! server.

use std::sync::{Arc, OnceLock};

use ponder_core::answer::{extract_answer, NumericEquivalence};
use ponder_core::strategy::{self, Ctx};
use ponder_core::{Generator, Message, SamplingParams};
use ponder_engine::{Engine, EngineConfig};
use ponder_http::{HttpConfig, HttpGenerator};
use ponder_server::{AppState, Backend, ServerConfig};

mod faults;
mod gateway;
mod reward;
mod servers;

const MODEL: &str = "smollm2-135m";

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut fetcher = ponder_models::Fetcher::from_env().expect("cache dir");
            fetcher.allow_download = true;
            let spec = ponder_models::find(MODEL).expect("registry model");
            let path = fetcher.resolve(&ponder_models::ModelRef::Named(spec)).expect("model is fetchable");
            Engine::load(path, EngineConfig { n_ctx: 8192, n_threads: 1, ..EngineConfig::default() }).expect("model loads")
        })
        .clone()
}

/// A gateway on `backend`; returns its base URL with `/v1`.
async fn gateway_on(backend: Backend) -> String {
    let state = Arc::new(AppState::new(backend, MODEL.into(), ServerConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ponder_server::serve(listener, state, std::future::pending()));
    format!("http://{addr}/v1")
}

/// A real gateway on the engine.
async fn gateway() -> String {
    gateway_on(Backend::Engine(engine())).await
}

fn question() -> Vec<Message> {
    vec![Message::user("What is 2 + 3? Answer with the number.")]
}

fn sampling(max_tokens: u32) -> SamplingParams {
    SamplingParams { temperature: 0.8, seed: 11, max_tokens, ..SamplingParams::default() }
}

fn ctx(g: &dyn Generator) -> Ctx<'_> {
    static EQ: NumericEquivalence = NumericEquivalence;
    Ctx { generator: g, equivalence: &EQ, extract: extract_answer, scorer: None, process: None, verifier: None }
}

fn problem() -> ponder_core::Problem {
    ponder_core::Problem { id: "t".into(), question: "2 + 3".into(), gold: "5".into(), level: None, steps: Vec::new() }
}

async fn connect(url: &str, f: impl FnOnce(&mut HttpConfig)) -> HttpGenerator {
    let mut cfg = HttpConfig::single(url);
    f(&mut cfg);
    HttpGenerator::connect(cfg).await.expect("connects")
}

#[allow(dead_code)]
fn build(name: &str, budget: usize, max_tokens: u32) -> Box<dyn strategy::Strategy> {
    strategy::build(name, budget, sampling(max_tokens)).unwrap()
}
