//! The reward-model scorer against a server with vLLM's pooling / classify / score shapes.

use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use ponder_core::scorer::OutcomeScorer;
use ponder_core::strategy::Candidate;
use ponder_core::FinishReason;
use ponder_http::{RewardApi, RewardScorer};
use serde_json::{json, Value};

use super::*;

/// Scores a text by how many times it says "5"; data returned in reverse order (the
/// scorer must sort by index).
fn score(text: &str) -> f64 {
    text.matches('5').count() as f64
}

async fn reward_server() -> String {
    let app = Router::new()
        .route(
            "/v1/pooling",
            post(|Json(b): Json<Value>| async move {
                let input: Vec<String> = serde_json::from_value(b["input"].clone()).unwrap();
                let data: Vec<Value> =
                    input.iter().enumerate().rev().map(|(i, t)| json!({ "index": i, "data": [[0.0, score(t)]] })).collect();
                Json(json!({ "data": data, "usage": { "prompt_tokens": 40 } }))
            }),
        )
        .route(
            "/v1/classify",
            post(|Json(b): Json<Value>| async move {
                let input: Vec<String> = serde_json::from_value(b["input"].clone()).unwrap();
                let data: Vec<Value> = input.iter().enumerate().map(|(i, t)| json!({ "index": i, "probs": [0.1, score(t) / 10.0] })).collect();
                Json(json!({ "data": data }))
            }),
        )
        .route(
            "/v1/score",
            post(|Json(b): Json<Value>| async move {
                assert!(b["text_1"].is_string());
                let t2: Vec<String> = serde_json::from_value(b["text_2"].clone()).unwrap();
                let data: Vec<Value> = t2.iter().enumerate().map(|(i, t)| json!({ "index": i, "score": score(t) })).collect();
                Json(json!({ "data": data }))
            }),
        )
        .route("/v1/broken", post(|| async { "not json" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

fn cand(i: usize, text: &str) -> Candidate {
    Candidate { index: i, text: text.into(), answer: None, key: None, n_tokens: 3, mean_logprob: None, finish: FinishReason::Eos, score: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooling_classify_and_score() {
    let url = reward_server().await;
    let cands = [cand(0, "it is 4"), cand(1, "5, surely 5"), cand(2, "5")];
    for (api, want) in [(RewardApi::Pooling, [0.0, 2.0, 1.0]), (RewardApi::Classify, [0.0, 0.2, 0.1]), (RewardApi::Score, [0.0, 2.0, 1.0])] {
        let s = RewardScorer::new(&url, "rm", api, Duration::from_secs(5)).unwrap();
        let got = s.score(&problem(), &cands).await.unwrap();
        for (g, w) in got.values.iter().zip(want) {
            // The question ("2 + 3") is part of each pooled/classified text but has no 5.
            assert!((g - w).abs() < 1e-9, "{api:?}: {:?}", got.values);
        }
        assert_eq!(got.usage.scorer_passes, 3);
    }
    // weighted-bon with it picks the answer the reward model likes.
    let s = RewardScorer::new(&url, "rm", RewardApi::Score, Duration::from_secs(5)).unwrap();
    assert!(s.score(&problem(), &[]).await.unwrap().values.is_empty());
    let broken = RewardScorer::new(format!("{url}/broken-root"), "rm", RewardApi::Pooling, Duration::from_secs(5)).unwrap();
    assert!(broken.score(&problem(), &cands).await.is_err());
}
