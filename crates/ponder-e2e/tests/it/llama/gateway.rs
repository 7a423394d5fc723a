//! `ponder serve --upstream` on a real llama-server, as issue 15 ran it: the `usage` the
//! gateway answers with (JSON and the stream's usage chunk) equals what the server counted,
//! for self-consistency and for beam search with self-evaluation.

use serde_json::{json, Value};

use super::*;
use crate::http::connect;

/// prompt computed, prompt reused and completion tokens of an OpenAI `usage` object.
fn openai_tokens(u: &Value) -> (u64, u64, u64) {
    let prompt = u["prompt_tokens"].as_u64().expect("prompt_tokens");
    let cached = u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
    (prompt - cached, cached, u["completion_tokens"].as_u64().expect("completion_tokens"))
}

/// The usage chunk of an SSE body.
fn stream_usage(body: &str) -> Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .unwrap_or_else(|| panic!("no usage chunk in the stream:\n{body}"))["usage"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_usage_over_llama_server_equals_the_servers_counters() {
    let server = LlamaServer::start().await;
    let front = format!("{}/v1", start_with(Backend::Http(connect(&server.url(), |_| {}).await), ServerConfig::default()).await);
    let http = reqwest::Client::new();
    let ask = |model: &str, stream: bool| {
        json!({ "model": model, "messages": [{ "role": "user", "content": "What is 2 + 3? Answer with the number." }],
            "max_tokens": 24, "temperature": 0.8, "seed": 3, "stream": stream })
    };
    for (model, stream) in [("sc-8:smollm2-135m", false), ("sc-4:smollm2-135m", true), ("beam-4:smollm2-135m", false)] {
        let mut body = ask(model, stream);
        if model.starts_with("beam") {
            body["ponder"] = json!({ "scorer": "self-eval" });
        }
        let before = server.counters().await;
        let r = http.post(format!("{front}/chat/completions")).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{model}");
        let usage = if stream { stream_usage(&r.text().await.unwrap()) } else { r.json::<Value>().await.unwrap()["usage"].clone() };
        let counted = before.until(server.counters().await);
        assert_eq!(openai_tokens(&usage), tokens(&counted), "{model} stream {stream}: gateway {usage} server {counted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_picks_its_upstream_by_header_where_the_gateway_allows_it() {
    let servers = [LlamaServer::start().await, LlamaServer::start().await];
    let urls: Vec<String> = servers.iter().map(LlamaServer::url).collect();
    let fleet = || async {
        let mut cfg = ponder_http::HttpConfig::single(&urls[0]);
        cfg.endpoints.push(ponder_http::EndpointConfig::new(urls[1].clone()));
        Backend::Http(ponder_http::HttpGenerator::connect(cfg).await.expect("connects"))
    };
    let allowed = ServerConfig { allow_upstream_header: true, ..ServerConfig::default() };
    let front = format!("{}/v1/chat/completions", start_with(fleet().await, allowed).await);
    let http = reqwest::Client::new();
    let body = json!({ "model": "sc-2:smollm2-135m", "messages": [{ "role": "user", "content": "Say hi." }], "max_tokens": 8 });
    // By index, then by URL: only the named server generates.
    for (name, which) in [("1".to_string(), 1usize), (urls[0].clone(), 0)] {
        let before = [servers[0].counters().await.predicted, servers[1].counters().await.predicted];
        let r = http.post(&front).header("x-ponder-upstream", &name).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let after = [servers[0].counters().await.predicted, servers[1].counters().await.predicted];
        assert!(after[which] > before[which], "server {which} generated for {name:?}");
        assert_eq!(after[1 - which], before[1 - which], "server {} stayed idle for {name:?}", 1 - which);
    }
    let r = http.post(&front).header("x-ponder-upstream", "7").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "x-ponder-upstream", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("no upstream \"7\""), "{v}");

    // Off by default: the header is ignored, the request goes by its prompt.
    let front = format!("{}/v1/chat/completions", start_with(fleet().await, ServerConfig::default()).await);
    let r = http.post(&front).header("x-ponder-upstream", "7").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
