//! Exact usage over HTTP, reconciled with llama-server's own counters: `n` samples,
//! parallel requests, a search session and cancelled samples.

use ponder_core::{Generator, SampleRequest, StepParams};
use ponder_http::{HttpGenerator, ProbeMode, StepMode};
use serde_json::{json, Value};

use super::*;
use crate::http::{connect, question, sampling};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_of_llama_server() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    let c = g.caps();
    assert!(c.chat && c.completions && c.chat_logprobs && c.completion_logprobs && c.template && c.sampling_fields, "{c:?}");
    assert!(!c.ponder && !c.continue_final_message, "{c:?}");
    // Requests beyond its 4 slots would queue inside the server with their timeout running.
    assert_eq!(c.slots, 4);
    assert_eq!(c.probe, ProbeMode::TopLogprobs);
    assert_eq!(g.step_mode(), StepMode::Completions);
    // llama-server answers `n` but its `usage` covers the first choice only (issue 15's
    // 7x undercount), so ponder does not use it. If a later llama.cpp sums them, this
    // fails and `n` may be used again.
    assert!(!c.n, "{c:?}");
    let body = json!({ "model": c.model, "messages": [{ "role": "user", "content": "Hi" }], "n": 3, "max_tokens": 4,
        "ignore_eos": true, "temperature": 1.0 });
    let v: Value = reqwest::Client::new().post(format!("{}/chat/completions", server.url())).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 4, "usage of one choice out of three: {v}");
}

/// Samples and what the server counted for them.
async fn sample_counted(server: &LlamaServer, g: &HttpGenerator, req: SampleRequest) -> (ponder_core::generator::Collected, Usage) {
    let before = server.counters().await;
    let got = g.sample(req).await.unwrap().collect().await.unwrap();
    (got, before.until(server.counters().await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_n_samples_and_parallel_requests_equals_the_servers_counters() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    // 6 samples of one prompt: 6 requests in parallel (4 slots), each reporting its own usage.
    let req = SampleRequest { messages: question(), n: 6, params: sampling(24), first_index: 0 };
    let (got, server_count) = sample_counted(&server, &g, req).await;
    assert_eq!(got.samples.len(), 6);
    assert_eq!(tokens(&got.usage), tokens(&server_count), "ponder {:?} server {server_count:?}", got.usage);
    assert!(got.usage.is_exact());
    assert_eq!(got.samples.iter().map(|s| s.n_tokens as u64).sum::<u64>(), got.usage.completion);
    // Chat logprobs come back with each sample (llama-server leaves out tokens that end
    // inside a UTF-8 character or a stop string, so there may be fewer than n_tokens).
    for s in &got.samples {
        assert!(!s.token_logprobs.is_empty() && s.token_logprobs.len() <= s.n_tokens, "{s:?}");
        assert!(s.token_logprobs.iter().all(|x| x.is_finite() && *x <= 0.0), "{s:?}");
    }
    // The same prompt again: the server's prompt cache serves most of it, and the split
    // between computed and reused still matches.
    let req = SampleRequest { messages: question(), n: 3, params: sampling(8), first_index: 6 };
    let (got, server_count) = sample_counted(&server, &g, req).await;
    assert_eq!(tokens(&got.usage), tokens(&server_count));
    assert!(got.usage.prompt_reused > 0, "{:?}", got.usage);

    // Different prompts at once, through the raw completions endpoint too.
    let before = server.counters().await;
    let raw = g.with_api(ponder_http::Api::Completions).unwrap();
    let calls = (0..4).map(|i| {
        let (g, raw) = (g.clone(), raw.clone());
        async move {
            let messages = vec![ponder_core::Message::user(format!("Count from {i} to {}.", i + 5))];
            let req = SampleRequest { messages, n: 2, params: sampling(16), first_index: 0 };
            let via = if i % 2 == 0 { g } else { raw };
            via.sample(req).await.unwrap().collect().await.unwrap().usage
        }
    });
    let total: Usage = futures::future::join_all(calls).await.into_iter().sum();
    assert_eq!(tokens(&total), tokens(&before.until(server.counters().await)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_a_search_session_equals_the_servers_counters() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    let before = server.counters().await;
    let mut s = g.open(&question(), 5).await.unwrap();
    let root = s.root();
    let kids = s.fork(root, 3).await.unwrap();
    let params = StepParams { sampling: sampling(16), max_step_tokens: 16, ..StepParams::default() };
    s.extend(&kids, &params).await.unwrap();
    s.extend(&kids[..2], &params).await.unwrap();
    // A self-evaluation probe: one 1-token completion per branch.
    let (lps, probe_usage) = s.probe(&kids, "\nIs this right? Answer Yes or No.\nAnswer:", &[" Yes".into(), " No".into()]).await.unwrap();
    assert_eq!(lps.len(), 3);
    let ponder = s.usage() + probe_usage;
    assert_eq!(tokens(&ponder), tokens(&before.until(server.counters().await)), "ponder {ponder:?}");
    assert!(ponder.is_exact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_samples_are_counted_as_unreported_never_guessed() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    let before = server.counters().await;
    let mut params = sampling(400);
    params.ignore_eos = true;
    let long = g.sample(SampleRequest { messages: question(), n: 2, params, first_index: 0 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    long.cancel();
    let got = long.collect().await.unwrap();
    assert!(got.samples.is_empty() && got.failures.is_empty(), "400 tokens do not finish in 500 ms here: {got:?}");
    // Both requests were aborted before the server said what they computed: unknown,
    // and said so, rather than a guess or a silent zero.
    assert_eq!(got.usage.unreported, 2);
    assert!(!got.usage.is_exact());
    assert_eq!(tokens(&got.usage), (0, 0, 0));
    // The server did compute something for them (its prompts at least: this llama-server
    // leaves a cancelled task's generated tokens out of its own counter), which is why a
    // zero would be wrong.
    let server_count = settled(&server, before).await;
    assert!(server_count.prompt_computed > 0, "{server_count:?}");
}

/// The server's counts since `before`, once they stop moving (the server flushes a
/// slot's counters when it stops it).
async fn settled(server: &LlamaServer, before: Counters) -> Usage {
    let mut last = before.until(server.counters().await);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = before.until(server.counters().await);
        if now == last && now.prompt_computed > 0 {
            break;
        }
        last = now;
    }
    last
}
