//! Tool calls and multi-turn messages through the gateway to an upstream: messages arrive
//! intact, the vote goes to the tool name first, then to its arguments, ignoring the
//! arguments the request marks as non-semantic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::extract::State;
use axum::routing::{get, post as route_post};
use axum::{Json, Router};
use ponder_http::{HttpConfig, HttpGenerator};

use super::*;

#[derive(Default)]
struct Upstream {
    calls: AtomicUsize,
    seen: Mutex<Vec<Value>>,
}

fn answer(i: usize) -> Value {
    let call = |name: &str, args: Value| {
        json!({ "role": "assistant", "content": null, "tool_calls": [{ "id": format!("u{i}"), "type": "function",
            "function": { "name": name, "arguments": args.to_string() } }] })
    };
    let message = match i % 5 {
        0 => call("get_weather", json!({ "city": "Paris", "trace": "a1" })),
        1 => call("get_weather", json!({ "trace": "b2", "city": "Paris" })),
        2 => call("get_weather", json!({ "city": "Rome", "trace": "c3" })),
        3 => call("get_time", json!({ "tz": "UTC" })),
        _ => json!({ "role": "assistant", "content": "It is sunny." }),
    };
    json!({ "id": "x", "object": "chat.completion", "choices": [{ "index": 0, "message": message, "finish_reason": "tool_calls" }],
            "usage": { "prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30 } })
}

async fn chat(State(u): State<Arc<Upstream>>, Json(body): Json<Value>) -> Json<Value> {
    u.seen.lock().unwrap().push(body);
    Json(answer(u.calls.fetch_add(1, Ordering::SeqCst)))
}

async fn fake_upstream() -> (String, Arc<Upstream>) {
    let u = Arc::new(Upstream::default());
    let app = Router::new()
        .route("/v1/models", get(|| async { Json(json!({ "object": "list", "data": [{ "id": "toolbot", "object": "model" }] })) }))
        .route("/v1/chat/completions", route_post(chat))
        .with_state(u.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), u)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_on_tool_name_then_arguments() {
    let (url, upstream) = fake_upstream().await;
    let gen = HttpGenerator::connect(HttpConfig { retries: 0, ..HttpConfig::single(url) }).await.unwrap();
    assert!(!gen.caps().n && !gen.caps().completions);
    let cfg = ServerConfig { model: Some(MODEL.into()), ..ServerConfig::default() };
    let base = start_with(Backend::Http(gen), cfg).await;
    upstream.calls.store(0, Ordering::SeqCst);
    upstream.seen.lock().unwrap().clear();
    let tools = json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object",
        "properties": { "city": { "type": "string" }, "trace": { "type": "string", "x-ponder-non-semantic": true } } } } },
        { "type": "function", "function": { "name": "get_time", "parameters": { "type": "object", "properties": { "tz": {} } } } }]);
    let body = json!({
        "model": "sc-5:smollm2-135m",
        "messages": [
            { "role": "system", "content": "You are a helper." },
            { "role": "user", "content": "Weather in Paris?" },
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "c0", "type": "function",
                "function": { "name": "get_time", "arguments": "{\"tz\":\"CET\"}" } }] },
            { "role": "tool", "tool_call_id": "c0", "content": "12:00" },
            { "role": "user", "content": "And the weather?" },
        ],
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 32,
    });
    let (s, v) = post(&format!("{base}/v1/chat/completions"), &body).await;
    assert_eq!(s, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Paris", "{v}");
    assert_eq!(call["type"], "function");
    let vote = &v["ponder"]["tool_vote"];
    assert_eq!(vote["tool"], "get_weather");
    assert_eq!(vote["arguments"][0]["count"], 2, "{vote}");
    assert_eq!(vote["arguments"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(v["ponder"]["votes"][0]["count"], 3);
    // Usage: five upstream calls of 20 + 10 tokens.
    assert_eq!(v["usage"]["prompt_tokens"], 100);
    assert_eq!(v["usage"]["completion_tokens"], 50);

    // Every upstream request carried the tools and the conversation intact.
    let seen = upstream.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    for b in &seen {
        assert_eq!(b["tools"], tools);
        assert_eq!(b["tool_choice"], "auto");
        let ms = b["messages"].as_array().unwrap();
        assert_eq!(ms.len(), 5);
        assert_eq!(ms[2]["tool_calls"][0]["function"]["name"], "get_time");
        assert_eq!(ms[2]["tool_calls"][0]["id"], "c0");
        assert_eq!(ms[3]["role"], "tool");
        assert_eq!(ms[3]["tool_call_id"], "c0");
        assert_eq!(ms[3]["content"], "12:00");
    }

    // Streamed: the tool call arrives as a delta.
    upstream.calls.store(0, Ordering::SeqCst);
    let mut body = body;
    body["stream"] = json!(true);
    let text = client().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let delta = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .expect("a tool-call delta");
    assert_eq!(delta["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(delta["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_messages_reach_the_engine_as_text() {
    let base = start(ServerConfig::default()).await;
    let body = json!({
        "model": "single:smollm2-135m",
        "messages": [
            { "role": "user", "content": "What time is it?" },
            { "role": "assistant", "content": "", "tool_calls": [{ "id": "c0", "type": "function",
                "function": { "name": "get_time", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "c0", "content": "12:00" },
        ],
        "tools": [{ "type": "function", "function": { "name": "get_time", "parameters": {} } }],
        "max_tokens": 8,
    });
    let (s, v) = post(&format!("{base}/v1/chat/completions"), &body).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string() || v["choices"][0]["message"]["tool_calls"].is_array());
}
