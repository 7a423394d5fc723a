//! A thinking budget over HTTP on a real llama-server (issue 14): Qwen2.5-Coder-0.5B, asked
//! to think in `<think>` tags, is cut after 8 thinking tokens; ponder appends the close
//! marker and the answer prefix and continues the sample. The span's length is checked with
//! the server's own tokenizer, and ponder's usage with the server's counters.

use ponder_core::reasoning::{Thinking, ThinkingMarkers, DEFAULT_ANSWER_PREFIX};
use ponder_core::{Generator, Message, Sample, SampleRequest, SamplingParams, Usage};
use serde_json::{json, Value};

use super::tools::qwen_path;
use super::*;
use crate::http::connect;

fn think(budget: Option<u32>) -> SamplingParams {
    SamplingParams { max_tokens: 40, thinking: Some(Thinking { budget, ..Thinking::new(ThinkingMarkers::default()) }), ..SamplingParams::greedy() }
}

async fn one(g: &dyn Generator, params: SamplingParams) -> (Sample, Usage) {
    let messages = vec![Message::user("What is 17*23? Reply in the form: <think>your step-by-step reasoning</think> then the answer.")];
    let got = g.sample(SampleRequest { messages, n: 1, params, first_index: 0 }).await.unwrap().collect().await.unwrap();
    (got.samples.into_iter().next().expect("one sample"), got.usage)
}

/// Tokens of `text` by the server's tokenizer (`/tokenize`), not ponder's count.
async fn server_tokens(server: &LlamaServer, text: &str) -> usize {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/tokenize", server.root()))
        .json(&json!({ "content": text }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["tokens"].as_array().expect("tokens").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thinking_budget_over_llama_server_cuts_the_span_and_counts_like_the_server() {
    let server = LlamaServer::start_model(free_port(), &qwen_path(), &[]).await;
    let g = connect(&server.url(), |_| {}).await;
    let before = server.counters().await;
    let (free, free_usage) = one(&g, think(None)).await;
    let between = server.counters().await;
    let (s, usage) = one(&g, think(Some(8))).await;
    let after = server.counters().await;
    assert!(free.n_thinking.unwrap() > 8, "the unbudgeted sample thinks longer: {:?}", free.text);

    assert_eq!(s.n_thinking, Some(8), "{:?}", s.text);
    let forced = format!("</think>{DEFAULT_ANSWER_PREFIX}");
    let (thought, answer) = s.text.split_once(&forced).expect("the forced close and prefix are in the text");
    assert!(!answer.trim().is_empty(), "the model answers after the prefix: {:?}", s.text);
    let span = &thought[thought.find("<think>").expect("the model opened a span") + "<think>".len()..];
    assert_eq!(server_tokens(&server, span).await, 8, "{:?}", s.text);
    assert_eq!(s.token_bytes.concat().len() + forced.len(), s.text.len(), "forced text is in no token");

    // Every count is the server's: the steps, the forced text re-sent as prompt, its cache.
    assert!(usage.is_exact() && free_usage.is_exact());
    assert_eq!(tokens(&free_usage), tokens(&before.until(between)));
    assert_eq!(tokens(&usage), tokens(&between.until(after)));
    assert_eq!(usage.completion, s.n_tokens as u64);
    assert_eq!(usage.thinking, 8);
}
