//! Dropped tokens over llama-server (issue 14): what the HTTP backend can count and what it
//! cannot. A trace cut at its confidence stop came in a finished response, so all it
//! generated is known and dropped; a sample stopped alone aborts its own request, whose
//! usage never comes: unreported, not guessed.

use ponder_core::{ConfidenceStop, FinishReason, Generator, SampleRequest, SamplingParams};

use super::*;
use crate::http::{connect, question, sampling};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidence_cut_trace_counts_all_the_server_generated_as_dropped() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    let before = server.counters().await;
    // No group can reach this threshold: every trace is cut at its first full window.
    let stop = ConfidenceStop { window: 4, threshold: 1e9 };
    let params = SamplingParams { ignore_eos: true, token_stats_k: 20, confidence_stop: Some(stop), ..sampling(24) };
    let got = g.sample(SampleRequest { messages: question(), n: 2, params, first_index: 0 }).await.unwrap().collect().await.unwrap();
    assert!(got.failures.is_empty(), "{:?}", got.failures);
    assert!(got.samples.iter().all(|s| (s.n_tokens, &s.finish) == (4, &FinishReason::LowConfidence)), "{:?}", got.samples);
    // The server generated 24 tokens of each before the cut; none of them answers.
    assert_eq!(tokens(&got.usage), tokens(&before.until(server.counters().await)));
    assert_eq!((got.usage.completion, got.usage.dropped, got.usage.unreported), (48, 48, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_stopped_alone_aborts_its_request_and_the_other_is_exact() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    // llama-server's `n` counts one choice, so each sample is its own request.
    assert!(!g.caps().n);
    let params = SamplingParams { ignore_eos: true, ..sampling(160) };
    let stream = g.sample(SampleRequest { messages: question(), n: 2, params, first_index: 0 }).await.unwrap();
    // Sent at once, long before 160 tokens are generated.
    stream.stop(1);
    let got = stream.collect().await.unwrap();
    assert!(got.failures.is_empty(), "{:?}", got.failures);
    let kept: Vec<(usize, usize, &FinishReason)> = got.samples.iter().map(|s| (s.index, s.n_tokens, &s.finish)).collect();
    assert_eq!(kept, vec![(0, 160, &FinishReason::Length)], "the stopped sample sends nothing");
    // The aborted request's work is unknown: one call unreported, nothing guessed as dropped.
    assert_eq!((got.usage.completion, got.usage.dropped, got.usage.unreported), (160, 0, 1));
}
