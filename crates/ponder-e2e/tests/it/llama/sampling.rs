//! Sampling parity: the in-process engine and the HTTP backend on llama-server draw from
//! one distribution for the same model, prompt and parameters. Compared statistically (a
//! chi-square test of homogeneity on the first token), not token by token: the two
//! sample with different random streams. The same test tells llama-server's own defaults
//! (top-k 40, top-p 0.95, min-p 0.05, applied when ponder left the fields out) apart.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use ponder_core::{Generator, Message, SampleRequest, SamplingParams};
use ponder_http::Api;
use serde_json::{json, Value};

use super::*;
use crate::http::connect;

/// Draws per side. At 400 a shift of a few percent of the mass is found.
const N: usize = 400;

fn params() -> SamplingParams {
    // A hot temperature puts mass in the tail, where the servers' defaults cut.
    SamplingParams { temperature: 1.5, max_tokens: 1, seed: 7, ..SamplingParams::default() }
}

/// The first token's text of `N` samples, in batches of 200 (the engine's sequences).
async fn first_tokens(g: &dyn Generator, messages: &[Message]) -> Vec<String> {
    let mut out = Vec::new();
    for first_index in (0..N).step_by(200) {
        let req = SampleRequest { messages: messages.to_vec(), n: 200.min(N - first_index), params: params(), first_index };
        let got = g.sample(req).await.unwrap().collect().await.unwrap();
        assert!(got.failures.is_empty(), "{:?}", got.failures);
        // Both report the drawn token's log-probability (the engine's own; llama-server's
        // through completions logprobs).
        assert!(got.samples.iter().all(|s| s.n_tokens == 1 && s.token_logprobs.len() == 1 && s.token_logprobs[0] <= 0.0));
        out.extend(got.samples.into_iter().map(|s| s.text));
    }
    out
}

/// Pearson's chi-square statistic of homogeneity for two samples of categories, with
/// categories seen fewer than 10 times in all pooled into one; and its degrees of freedom.
fn chi_square(a: &[String], b: &[String]) -> (f64, usize) {
    let mut counts: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for t in a {
        counts.entry(t).or_default().0 += 1.0;
    }
    for t in b {
        counts.entry(t).or_default().1 += 1.0;
    }
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let mut rare = (0.0, 0.0);
    for (x, y) in counts.into_values() {
        if x + y < 10.0 {
            rare = (rare.0 + x, rare.1 + y);
        } else {
            cells.push((x, y));
        }
    }
    if rare.0 + rare.1 > 0.0 {
        cells.push(rare);
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let stat = cells
        .iter()
        .map(|&(x, y)| {
            let total = x + y;
            let (ea, eb) = (total * na / (na + nb), total * nb / (na + nb));
            (x - ea).powi(2) / ea + (y - eb).powi(2) / eb
        })
        .sum();
    (stat, cells.len().saturating_sub(1))
}

/// The chi-square quantile at 1 - 0.001 (Wilson–Hilferty; within 1% for df >= 3).
fn critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.090;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

#[test]
fn chi_square_tells_samples_apart_only_when_they_differ() {
    let draw = |weights: &[(&str, usize)]| -> Vec<String> { weights.iter().flat_map(|(t, n)| vec![t.to_string(); *n]).collect() };
    let a = draw(&[("a", 200), ("b", 120), ("c", 80)]);
    let b = draw(&[("a", 190), ("b", 130), ("c", 80)]);
    let c = draw(&[("a", 280), ("b", 110), ("c", 10)]);
    let (same, df) = chi_square(&a, &b);
    assert_eq!(df, 2);
    assert!(same < critical(df), "{same}");
    assert!(chi_square(&a, &c).0 > critical(df));
    assert!((critical(10) - 29.59).abs() < 0.3, "{}", critical(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_and_llama_server_draw_from_the_same_distribution() {
    let server = LlamaServer::start().await;
    let engine = engine();
    let messages = vec![Message::user("Write a single word, any word.")];
    // One prompt text for both: the engine's rendering, sent raw, so that only sampling
    // can differ (not two renderings of the chat template).
    let prompt = engine.render(&messages).unwrap();
    let http = connect(&server.url(), |_| {}).await.with_api(Api::Completions).unwrap();
    let from_engine = first_tokens(&engine, &messages).await;
    let from_server = first_tokens(&http, &[Message::user(prompt.clone())]).await;
    let (stat, df) = chi_square(&from_engine, &from_server);
    assert!(df >= 3, "the prompt must spread its first token: {from_engine:?}");
    assert!(stat < critical(df), "engine and llama-server differ: chi-square {stat:.1} > {:.1} (df {df})", critical(df));

    // The test has the power to see the difference issue 15 found: llama-server with its
    // own sampling defaults, which ponder used to leave in place.
    let model = http.caps().model.clone();
    let url = format!("{}/completions", server.url());
    let client = reqwest::Client::new();
    let with_defaults: Vec<String> = stream::iter(0..N)
        .map(|i| {
            let body = json!({ "model": model, "prompt": prompt, "max_tokens": 1, "temperature": 1.5, "seed": 1000 + i });
            let (client, url) = (client.clone(), url.clone());
            async move {
                let v: Value = client.post(url).json(&body).send().await.unwrap().json().await.unwrap();
                v["choices"][0]["text"].as_str().unwrap_or("").to_string()
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let (stat, df) = chi_square(&from_engine, &with_defaults);
    assert!(stat > critical(df), "llama-server's defaults went unnoticed: chi-square {stat:.1} (df {df})");
}
