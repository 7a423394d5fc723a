//! Issue 17 §4: what a strict client notices. Every refusal has OpenAI's error shape and
//! names its parameter; nothing malformed is accepted silently.

use ponder_server::config::KeyConfig;

use super::*;

/// The error's `param`, after checking the status and the shape.
#[track_caller]
fn param_of(got: &(u16, Value), status: u16) -> String {
    assert_error(got, status, None);
    got.1["error"]["param"].as_str().unwrap_or_else(|| panic!("no param in {}", got.1)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_method_not_allowed_has_an_error_body() {
    let base = start(ServerConfig::default()).await;
    for (method, path) in [("GET", "/v1/chat/completions"), ("PUT", "/v1/completions"), ("POST", "/v1/models"), ("DELETE", "/health")] {
        let r = client().request(method.parse().unwrap(), format!("{base}{path}")).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(r.headers().contains_key("allow"), "{method} {path}: {:?}", r.headers());
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path} -> {status}: {text:?}"));
        assert_error(&(status, v.clone()), 405, Some("method_not_allowed"));
        assert!(v["error"]["message"].as_str().unwrap().contains(path), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_only_a_bearer_key_sent_as_issued_is_accepted() {
    let cfg = ServerConfig { keys: vec![KeyConfig { key: "sk-open".into(), token_budget: None }], ..ServerConfig::default() };
    let base = start(cfg).await;
    let models = format!("{base}/v1/models");
    let with = |value: &'static str| {
        let models = models.clone();
        async move {
            let r = client().get(&models).header("authorization", value).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Trailing whitespace never arrives: HTTP strips it from every header value.
    for bad in ["sk-open", "Basic sk-open", "Bearer  sk-open", "Bearer \tsk-open", "Bearer sk-open \tx", "Bearer ", "Bearersk-open"] {
        let got = with(bad).await;
        assert_eq!(got.0, 401, "{bad:?}: {}", got.1);
        assert_error(&got, 401, Some("invalid_api_key"));
    }
    for good in ["Bearer sk-open", "bearer sk-open"] {
        let (s, v) = with(good).await;
        assert_eq!(s, 200, "{good:?}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_malformed_fields_are_refused_by_name() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    let with = |field: &str, value: Value| {
        let mut body = ask(MODEL, 4);
        body[field] = value;
        body
    };
    let function = |f: Value| json!([{ "type": "function", "function": f }]);
    let cases = [
        (with("tools", json!([1])), "tools[0]"),
        (with("tools", json!([{ "function": {} }])), "tools[0].type"),
        (with("tools", function(json!({}))), "tools[0].function.name"),
        (with("tools", function(json!({ "name": "f", "parameters": "oops" }))), "tools[0].function.parameters"),
        (with("tools", json!([])), "tools"),
        (with("stream_options", json!("x")), "stream_options"),
        (with("stream_options", json!({ "include_usage": true })), "stream_options"),
        (with("temperature", json!(-1)), "temperature"),
        (with("top_p", json!(7)), "top_p"),
        (with("min_p", json!(2)), "min_p"),
        (with("logprobs", json!(3)), "logprobs"),
    ];
    for (body, param) in &cases {
        assert_eq!(param_of(&post(&chat, body).await, 400), *param, "{body}");
    }
    let mut body = with("stream_options", json!({ "include_usage": "yes" }));
    body["stream"] = json!(true);
    assert_eq!(param_of(&post(&chat, &body).await, 400), "stream_options.include_usage");

    // Token logprobs exist for plain sampling only: a voted answer does not keep them.
    let mut body = ask("sc-2:smollm2-135m", 4);
    body["logprobs"] = json!(true);
    let got = post(&chat, &body).await;
    assert_eq!(param_of(&got, 400), "logprobs");
    assert_eq!(got.1["error"]["code"], "unsupported_parameter");
    let got = post(&format!("{base}/v1/completions"), &json!({ "model": "sc-2:smollm2-135m", "prompt": "2 + 2 =", "logprobs": 1 })).await;
    assert_eq!(param_of(&got, 400), "logprobs");

    // What is well formed still works.
    let mut body = ask("single:smollm2-135m", 4);
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    body["tools"] = function(json!({ "name": "get_time", "description": "The time.", "parameters": { "type": "object" } }));
    let r = client().post(&chat).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_probe_errors_name_their_parameter() {
    let base = start(ServerConfig::default()).await;
    let probe = format!("{base}/v1/ponder/probe");
    let ok = json!({ "prompts": ["Is the sky blue?"], "suffix": " Answer:", "candidates": [" Yes", " No"] });
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let cases = [
        (json!({}), "prompts"),
        (with("prompts", json!([])), "prompts"),
        (with("prompts", json!(vec!["q"; 257])), "prompts"),
        (with("prompts", json!(["q", 3])), "prompts[1]"),
        (with("prompts", json!(["q", ""])), "prompts[1]"),
        (with("prompts", json!(["apple ".repeat(9000)])), "prompts[0]"),
        (with("candidates", json!([])), "candidates"),
        (with("candidates", json!(vec![" a"; 17])), "candidates"),
        (with("candidates", json!([" Yes", ""])), "candidates[1]"),
        (with("suffix", json!(3)), "suffix"),
    ];
    for (body, param) in &cases {
        let got = post(&probe, body).await;
        assert_eq!(param_of(&got, 400), *param, "{}", got.1);
    }
    let (s, v) = post(&probe, &ok).await;
    assert_eq!(s, 200, "{v}");
}
