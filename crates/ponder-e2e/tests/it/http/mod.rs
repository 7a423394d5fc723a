//! ponder-http's backend against a real `ponder serve` gateway (in-process, real HTTP, the
//! real engine on SmolLM2-135M), directly and through a fault-injecting proxy, and a
//! gateway on an HTTP upstream without step-wise continuation (moved from ponder-http's
//! tests, issue 16: ponder-http no longer depends on ponder-server).

use ponder_core::answer::{extract_answer, NumericEquivalence};
use ponder_core::strategy::{self, Ctx};
use ponder_core::{Generator, Message, SamplingParams};
use ponder_http::{HttpConfig, HttpGenerator};

use super::*;

mod faults;
mod over_http;
mod upstream;

/// A gateway on `backend`; returns its base URL with `/v1`.
async fn gateway_on(backend: Backend) -> String {
    format!("{}/v1", start_with(backend, ServerConfig::default()).await)
}

/// A real gateway on the engine.
async fn gateway() -> String {
    gateway_on(Backend::Engine(engine())).await
}

pub(crate) fn question() -> Vec<Message> {
    vec![Message::user("What is 2 + 3? Answer with the number.")]
}

pub(crate) fn sampling(max_tokens: u32) -> SamplingParams {
    SamplingParams { temperature: 0.8, seed: 11, max_tokens, ..SamplingParams::default() }
}

pub(crate) fn ctx(g: &dyn Generator) -> Ctx<'_> {
    static EQ: NumericEquivalence = NumericEquivalence;
    Ctx {
        generator: g,
        equivalence: &EQ,
        extract: &extract_answer,
        scorer: None,
        process: None,
        verifier: None,
        thinking: None,
    }
}

pub(crate) fn problem() -> ponder_core::Problem {
    ponder_core::Problem { id: "t".into(), question: "2 + 3".into(), gold: "5".into(), level: None, steps: Vec::new() }
}

pub(crate) async fn connect(url: &str, f: impl FnOnce(&mut HttpConfig)) -> HttpGenerator {
    let mut cfg = HttpConfig::single(url);
    f(&mut cfg);
    HttpGenerator::connect(cfg).await.expect("connects")
}

#[allow(dead_code)]
fn build(name: &str, budget: usize, max_tokens: u32) -> Box<dyn strategy::Strategy> {
    strategy::StrategySpec::parse(name, Some(budget)).and_then(|s| s.build(sampling(max_tokens))).unwrap()
}
