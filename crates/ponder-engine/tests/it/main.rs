//! Real-model tests of the engine on SmolLM2-135M (fetched into the cache on first use).

use std::path::PathBuf;
use std::sync::OnceLock;

use ponder_core::{FinishReason, GenError, Generator, Message, SampleRequest, SamplingParams, StepParams, StepSession};
use ponder_engine::{Engine, EngineConfig};

fn model_path(name: &str) -> PathBuf {
    static LOCK: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _guard = LOCK.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let mut fetcher = ponder_models::Fetcher::from_env().expect("cache dir");
    fetcher.allow_download = true;
    let spec = ponder_models::find(name).expect("registry model");
    fetcher.resolve(&ponder_models::ModelRef::Named(spec)).expect("model is fetchable")
}

fn smol(cfg: EngineConfig) -> Engine {
    Engine::load(model_path("smollm2-135m"), cfg).expect("SmolLM2 loads")
}

/// One thread per engine: tests run in parallel on two cores, and llama.cpp's OpenMP
/// threads spin-wait, so oversubscribing them slows everything down many times over.
fn config() -> EngineConfig {
    EngineConfig { n_ctx: 8192, n_threads: 1, ..EngineConfig::default() }
}

/// No prefix cache, so every request prefills from scratch.
fn uncached() -> EngineConfig {
    EngineConfig { prefix_cache_entries: 0, ..config() }
}

fn question() -> Vec<Message> {
    vec![Message::user("Tom has 3 apples and buys 4 more. How many apples does he have? Think step by step.")]
}

fn req(n: usize, params: SamplingParams) -> SampleRequest {
    SampleRequest { messages: question(), n, params, first_index: 0 }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn sampled(seed: u64, max_tokens: u32) -> SamplingParams {
    SamplingParams { temperature: 0.8, seed, max_tokens, ..SamplingParams::default() }
}

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams { max_tokens, ..SamplingParams::greedy() }
}

/// The problem `question` asks, for strategies and scorers.
fn arith_problem() -> ponder_core::Problem {
    ponder_core::Problem {
        id: "t".into(),
        question: "Tom has 3 apples and buys 4 more. How many apples does he have?".into(),
        gold: "7".into(),
        level: Some(1),
        steps: vec!["7".into()],
    }
}

fn engine_stats_live(engine: &Engine) -> usize {
    block(engine.stats()).unwrap().live_seqs
}

mod engine;
mod search;
mod signals;
mod stop;
mod thinking;
