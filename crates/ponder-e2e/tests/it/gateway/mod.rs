//! The gateway over real HTTP on the real engine (SmolLM2-135M, one thread), and on HTTP
//! upstreams that the tests control (moved from ponder-server's tests, issue 16).

use serde_json::{json, Value};

use super::*;

mod charges;
mod drops;
mod endpoints;
mod errors;
mod strict;
mod tools;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// POSTs JSON, returns (status, body as JSON).
async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = client().post(url).json(body).send().await.expect("request sent");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

fn ask(model: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "messages": [{ "role": "user", "content": "What is 2 + 3?" }],
        "max_tokens": max_tokens,
        "seed": 7,
    })
}

/// An OpenAI-style error body with this status, type and code.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: Option<&str>) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    if let Some(c) = code {
        assert_eq!(e["code"], c, "{v}");
    }
}
