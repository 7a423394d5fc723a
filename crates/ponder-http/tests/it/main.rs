//! The HTTP backend against small local servers standing in for the servers this machine
//! cannot run: a vLLM-like server, a bare chat-only one, one with OpenAI's legacy
//! completions logprobs, and a scripted reward server. Against llama.cpp's real
//! `llama-server`, a real `ponder serve` gateway on the real engine, and through a
//! fault-injecting proxy, it is tested in ponder-e2e (no dependency on ponder-server here).

use std::sync::Arc;

use ponder_core::{Generator, Message, SamplingParams};
use ponder_http::{HttpConfig, HttpGenerator};

mod reward;
mod servers;

fn question() -> Vec<Message> {
    vec![Message::user("What is 2 + 3? Answer with the number.")]
}

fn sampling(max_tokens: u32) -> SamplingParams {
    SamplingParams { temperature: 0.8, seed: 11, max_tokens, ..SamplingParams::default() }
}

fn problem() -> ponder_core::Problem {
    ponder_core::Problem { id: "t".into(), question: "2 + 3".into(), gold: "5".into(), level: None, steps: Vec::new() }
}

async fn connect(url: &str, f: impl FnOnce(&mut HttpConfig)) -> HttpGenerator {
    let mut cfg = HttpConfig::single(url);
    f(&mut cfg);
    HttpGenerator::connect(cfg).await.expect("connects")
}
