//! Servers other than ponder, as far as a test can stand in for them: a vLLM-like server
//! (continue_final_message, no completions endpoint) and a bare chat-only server (no
//! step-wise continuation at all: search strategies are refused with a clear error).

use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ponder_core::{FinishReason, GenError, StepParams};
use ponder_http::StepMode;
use serde_json::{json, Value};

use super::*;

#[derive(Default)]
struct Seen(Mutex<Vec<Value>>);

async fn chat(State(seen): State<Arc<Seen>>, Json(b): Json<Value>) -> Json<Value> {
    seen.0.lock().unwrap().push(b.clone());
    let usage = json!({ "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "prompt_tokens_details": { "cached_tokens": 4 } });
    if b["continue_final_message"] == true {
        let so_far = b["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
        let (text, stop_reason) = if so_far.is_empty() { ("Step one.", json!("\n\n")) } else { ("The answer is 5.", Value::Null) };
        return Json(json!({ "choices": [{ "index": 0, "message": { "role": "assistant", "content": text },
            "finish_reason": "stop", "stop_reason": stop_reason }], "usage": usage }));
    }
    let n = b["n"].as_u64().unwrap_or(1);
    let choices: Vec<Value> = (0..n)
        .map(|i| json!({ "index": i, "message": { "role": "assistant", "content": "5" }, "finish_reason": "stop",
            "logprobs": { "content": [{ "token": "5", "logprob": -0.1 }] } }))
        .collect();
    Json(json!({ "choices": choices, "usage": { "prompt_tokens": 10 * n, "completion_tokens": n, "total_tokens": 11 * n } }))
}

async fn server(vllm: bool) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let mut app = Router::new()
        .route("/v1/models", get(|| async { Json(json!({ "data": [{ "id": "fake", "max_model_len": 4096 }] })) }))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(|| async { (StatusCode::NOT_FOUND, "no completions here") }));
    if vllm {
        app = app.route("/version", get(|| async { Json(json!({ "version": "0.0-fake" })) }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_style_continue_final_message() {
    let (url, seen) = server(true).await;
    let g = connect(&url, |_| {}).await;
    let c = g.caps();
    assert!(c.chat && !c.completions && c.n && c.chat_logprobs && c.continue_final_message && !c.ponder, "{c:?}");
    assert_eq!(c.context_len, 4096);
    assert_eq!(g.step_mode(), StepMode::ContinueFinalMessage);
    // n with logprobs: one request for all samples.
    seen.0.lock().unwrap().clear();
    let req = ponder_core::SampleRequest { messages: question(), n: 3, params: sampling(8), first_index: 0 };
    let got = g.sample(req).await.unwrap().collect().await.unwrap();
    assert_eq!(got.samples.len(), 3);
    assert_eq!(seen.0.lock().unwrap().len(), 1);
    assert_eq!(got.usage.completion, 3);

    seen.0.lock().unwrap().clear();
    let mut s = g.open(&question(), 0).await.unwrap();
    let root = s.root();
    let params = StepParams { sampling: sampling(64), ..StepParams::default() };
    let a = s.extend(&[root], &params).await.unwrap();
    assert_eq!((a[0].text.as_str(), &a[0].finish), ("Step one.\n\n", &FinishReason::StepEnd));
    let b = s.extend(&[root], &params).await.unwrap();
    assert_eq!((b[0].text.as_str(), &b[0].finish), ("The answer is 5.", &FinishReason::Eos));
    let bodies = seen.0.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let last = bodies[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last, json!({ "role": "assistant", "content": "Step one.\n\n" }));
    assert_eq!(bodies[1]["add_generation_prompt"], false);
    assert_eq!(bodies[1]["stop"][0], "\n\n");
    // Usage as the server reported it: cached prompt tokens count as reused.
    let u = s.usage();
    assert_eq!((u.prompt_computed, u.prompt_reused, u.completion), (12, 8, 6));
    // Rollback to a step boundary works without token texts; inside a step it is refused.
    s.rollback(root, 3).await.unwrap();
    assert!(matches!(s.rollback(root, 1).await, Err(GenError::Unsupported(_))));
    // No rendered prompt: no probes, and the error says why.
    let e = s.probe(&[root], "?", &[" Yes".into()]).await.unwrap_err();
    assert!(e.to_string().contains("continue_final_message"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_continuation_search_is_refused_clearly() {
    let (url, _) = server(false).await;
    let g = connect(&url, |_| {}).await;
    assert_eq!(g.step_mode(), StepMode::None);
    let e = g.open(&question(), 0).await.err().unwrap();
    assert!(matches!(e, GenError::Unsupported(_)));
    assert!(e.to_string().contains("search strategies need"), "{e}");
    // What a gateway on this backend answers is ponder-e2e's `http::upstream` test.
}

/// A server that renders prompts (`/apply-template`) and answers completions in OpenAI's
/// legacy logprobs shape (`top_logprobs` as a map, as vLLM does) without `stop_reason`.
/// The real llama-server (which answers in the chat shape) is tested in ponder-e2e.
async fn llama_like() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let completions = |State(seen): State<Arc<Seen>>, Json(b): Json<Value>| async move {
        seen.0.lock().unwrap().push(b.clone());
        let top = json!([{ " Yes": -0.25, " No": -1.5, "Y": -3.0 }]);
        Json(json!({ "choices": [{ "index": 0, "text": " Yes", "finish_reason": "stop",
            "logprobs": { "tokens": [" Yes"], "token_logprobs": [-0.25], "top_logprobs": top } }],
            "usage": { "prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8 } }))
    };
    let app = Router::new()
        .route("/v1/models", get(|| async { Json(json!({ "data": [{ "id": "llama" }] })) }))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route(
            "/apply-template",
            post(|Json(b): Json<Value>| async move {
                let text: String = b["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap_or("").to_string()).collect();
                Json(json!({ "prompt": format!("<s>[INST] {text} [/INST]") }))
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_prompts_and_top_logprob_probes() {
    let (url, seen) = llama_like().await;
    let g = connect(&url, |_| {}).await;
    assert_eq!(g.step_mode(), StepMode::Completions);
    assert_eq!(g.caps().probe, ponder_http::ProbeMode::TopLogprobs);
    let mut s = g.open(&question(), 0).await.unwrap();
    let root = s.root();
    let kids = s.fork(root, 2).await.unwrap();
    seen.0.lock().unwrap().clear();
    let steps = s.extend(&kids, &StepParams { sampling: sampling(16), ..StepParams::default() }).await.unwrap();
    // No stop_reason from this server: a non-empty step that stopped ended at the delimiter.
    assert_eq!(steps[0].text, " Yes\n\n");
    assert_eq!(steps[0].finish, FinishReason::StepEnd);
    let bodies = seen.0.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one request per branch");
    assert!(bodies[0]["prompt"].as_str().unwrap().starts_with("<s>[INST] What is 2 + 3?"), "{}", bodies[0]);
    let (lps, u) = s.probe(&kids, "\nCorrect?", &[" Yes".into(), " No".into(), " Maybe".into()]).await.unwrap();
    assert_eq!(lps[0][..2], [-0.25, -1.5]);
    assert_eq!(lps[1][2], f32::NEG_INFINITY);
    assert_eq!(u.scorer_passes, 2);
    // Token texts came back, so rollback inside a step works.
    s.rollback(kids[0], 0).await.unwrap();
    let again = s.extend(&kids[..1], &StepParams { sampling: sampling(16), ..StepParams::default() }).await.unwrap();
    assert_eq!(again[0].text, " Yes\n\n");
}
