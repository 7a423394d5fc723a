//! A gateway whose backend is an HTTP upstream without step-wise continuation (a bare
//! chat-only server): search strategies get a 400 naming the missing capability, and
//! sampling strategies still work (ponder-http's own tests check the backend alone).

use axum::routing::{get, post};
use axum::{Json, Router};
use ponder_http::StepMode;
use serde_json::{json, Value};

use super::*;

/// Answers every chat request with `n` choices of "5" (one token each), and nothing else.
async fn chat_only() -> String {
    let chat = |Json(b): Json<Value>| async move {
        let n = b["n"].as_u64().unwrap_or(1);
        let choices: Vec<Value> = (0..n)
            .map(|i| json!({ "index": i, "message": { "role": "assistant", "content": "5" }, "finish_reason": "stop",
                "logprobs": { "content": [{ "token": "5", "logprob": -0.1 }] } }))
            .collect();
        Json(json!({ "choices": choices, "usage": { "prompt_tokens": 10 * n, "completion_tokens": n, "total_tokens": 11 * n } }))
    };
    let app = Router::new()
        .route("/v1/models", get(|| async { Json(json!({ "data": [{ "id": "fake", "max_model_len": 4096 }] })) }))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(|| async { (axum::http::StatusCode::NOT_FOUND, "no completions here") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_continuation_search_is_refused_clearly() {
    let g = connect(&chat_only().await, |_| {}).await;
    assert_eq!(g.step_mode(), StepMode::None);
    // Through a gateway: a 400 that names the missing capability, and sampling still works.
    let front = gateway_on(Backend::Http(g)).await;
    let http = reqwest::Client::new();
    let ask = |model: &str| json!({ "model": model, "messages": [{ "role": "user", "content": "2+3?" }], "max_tokens": 8 });
    let r = http.post(format!("{front}/chat/completions")).json(&ask("beam-2:smollm2-135m")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("step-wise"), "{v}");
    let r = http.post(format!("{front}/chat/completions")).json(&ask("sc-3:smollm2-135m")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ponder"]["answer"], "5");
    assert_eq!(v["usage"]["completion_tokens"], 3);
}
