//! A real server lost mid-request: without retries the sample fails with an error that
//! names the server; with retries, a server restarted on the same port answers the retry.
//! Either way the lost attempt's work is counted as unreported, not as zero.

use ponder_core::{Generator, SampleRequest};

use super::*;
use crate::http::{connect, question, sampling};

fn long() -> ponder_core::SamplingParams {
    ponder_core::SamplingParams { ignore_eos: true, ..sampling(400) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_request_is_a_clear_failure_then_a_retry_on_its_restart() {
    let mut server = LlamaServer::start().await;
    let port = server.port;
    let g = connect(&server.url(), |c| c.retries = 0).await;
    let stream = g.sample(SampleRequest { messages: question(), n: 1, params: long(), first_index: 0 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    let got = stream.collect().await.unwrap();
    assert!(got.samples.is_empty());
    let (index, error) = &got.failures[0];
    assert_eq!(*index, 0);
    let msg = error.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "the error names the server: {msg}");
    assert_eq!(got.usage.unreported, 1, "{:?}", got.usage);

    // A restart on the same port: the same generator works again.
    let server = LlamaServer::start_on(port).await;
    let req = SampleRequest { messages: question(), n: 2, params: sampling(8), first_index: 0 };
    let got = g.sample(req).await.unwrap().collect().await.unwrap();
    assert_eq!(got.samples.len(), 2, "{:?}", got.failures);
    assert!(got.usage.is_exact());

    // With retries: killed mid-request and restarted while ponder backs off.
    let mut server = server;
    let g = connect(&server.url(), |c| {
        c.retries = 4;
        c.backoff_ms = 1500;
    })
    .await;
    let stream = g.sample(SampleRequest { messages: question(), n: 1, params: long(), first_index: 0 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    let _server = LlamaServer::start_on(port).await;
    let got = stream.collect().await.unwrap();
    assert_eq!(got.samples.len(), 1, "the retry reached the restarted server: {:?}", got.failures);
    assert_eq!(got.samples[0].n_tokens, 400);
    // The killed server's work is gone with it: one attempt unreported, the retry exact.
    assert_eq!(got.usage.unreported, 1, "{:?}", got.usage);
    assert_eq!(got.usage.completion, 400);
}
