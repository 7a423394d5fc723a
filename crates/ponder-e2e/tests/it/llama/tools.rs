//! Tool calls through the gateway on a real llama-server (issue 15): a request's tool
//! definitions and its earlier tool calls and results reach the server's own chat template
//! (`--jinja`), and the call the model writes comes back as OpenAI `tool_calls`.
//!
//! Qwen2.5-Coder 0.5B and 1.5B write a call as the bare JSON object, without the
//! `<tool_call>` tags their template asks for; this llama-server build parses calls only
//! inside the tags, and its grammar for `tool_choice: "required"` lets text come first, so it
//! returns the call as content. ponder reads it from there (`answer::tools::parse`), which is
//! what these tests check against the real server.

use serde_json::{json, Value};

use super::*;
use crate::http::connect;

pub(super) fn qwen_path() -> PathBuf {
    let mut fetcher = ponder_models::Fetcher::from_env().expect("cache dir");
    fetcher.allow_download = true;
    let spec = ponder_models::find("qwen2.5-coder-0.5b").expect("registry model");
    fetcher.resolve(&ponder_models::ModelRef::Named(spec)).expect("model is fetchable")
}

fn weather_tool() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "Get the weather for a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_from_llama_server_comes_back_as_openai_tool_calls() {
    let server = LlamaServer::start_model(free_port(), &qwen_path(), &["--jinja"]).await;
    let front = format!("{}/v1/chat/completions", start_with(Backend::Http(connect(&server.url(), |_| {}).await), ServerConfig::default()).await);
    let http = reqwest::Client::new();
    let ask = |tools: Option<Value>| {
        let mut body = json!({ "model": "single:smollm2-135m", "temperature": 0, "max_tokens": 48,
            "messages": [{ "role": "user", "content": "What is the weather in Paris?" }] });
        if let Some(t) = tools {
            body["tools"] = t;
        }
        body
    };
    let post = |body: Value| {
        let (http, front) = (http.clone(), front.clone());
        async move {
            let r = http.post(&front).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{v}");
            v
        }
    };
    let plain = post(ask(None)).await;
    let v = post(ask(Some(weather_tool()))).await;
    // The definitions reached the server's template: the prompt it counted grew by them.
    let prompt = |v: &Value| v["usage"]["prompt_tokens"].as_u64().expect("prompt_tokens");
    assert!(prompt(&v) > prompt(&plain) + 40, "tools did not reach the template: {} vs {}", prompt(&v), prompt(&plain));
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function", "{v}");
    assert_eq!(call["function"]["name"], "get_weather", "{v}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments are a string")).expect("arguments are JSON");
    assert!(args["city"].as_str().is_some_and(|c| c.contains("Paris")), "{args}");

    // The question, the call and its result: the server renders the whole exchange (the
    // call's arguments as the string OpenAI sends) and counts it as the prompt. What the
    // model does next is its own affair (this one calls the tool again).
    let mut body = ask(Some(weather_tool()));
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(json!({ "role": "assistant", "content": null, "tool_calls": [call.clone()] }));
    messages.push(json!({ "role": "tool", "tool_call_id": call["id"].clone(), "content": "18 C and sunny" }));
    let after = post(body).await;
    assert!(prompt(&after) > prompt(&v) + 20, "the exchange did not reach the template: {} vs {}", prompt(&after), prompt(&v));
}
