//! Bad requests get the right 4xx with an OpenAI-style body, before any generation.

use ponder_server::config::KeyConfig;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_request_gets_its_4xx() {
    let mut cfg = ServerConfig::default();
    cfg.limits.max_body_bytes = 4096;
    let base = start(cfg).await;
    let chat = format!("{base}/v1/chat/completions");

    // Malformed JSON.
    let r = client().post(&chat).header("content-type", "application/json").body("{\"model\": ").send().await.unwrap();
    let got = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_error(&got, 400, Some("invalid_json"));

    // Unknown strategy, by prefix and by the ponder object.
    assert_error(&post(&chat, &ask("telepathy-4:smollm2-135m", 8)).await, 400, Some("unknown_strategy"));
    let mut body = ask(MODEL, 8);
    body["ponder"] = json!({ "strategy": "telepathy" });
    let got = post(&chat, &body).await;
    assert_error(&got, 400, Some("unknown_strategy"));
    assert_eq!(got.1["error"]["param"], "ponder.strategy");

    // A field of the spec out of range, named to the field.
    let mut body = ask(MODEL, 8);
    body["ponder"] = json!({ "strategy": "sc@4{abstain_below = 1.5}" });
    let got = post(&chat, &body).await;
    assert_error(&got, 400, None);
    assert!(got.1["error"]["param"].as_str().unwrap_or("").ends_with("abstain_below"), "{}", got.1);

    // Budget above the ceiling (default 64), both ways.
    assert_error(&post(&chat, &ask("sc-65:smollm2-135m", 8)).await, 400, Some("budget_too_large"));
    let mut body = ask(MODEL, 8);
    body["ponder"] = json!({ "strategy": "sc", "budget": 1000 });
    assert_error(&post(&chat, &body).await, 400, Some("budget_too_large"));

    // Tokens: per sample, and the request's own ceiling on budget x max_tokens.
    assert_error(&post(&chat, &ask(MODEL, 100_000)).await, 400, Some("max_tokens_too_large"));
    let mut body = ask("sc-8:smollm2-135m", 48);
    body["ponder"] = json!({ "max_total_tokens": 100 });
    assert_error(&post(&chat, &body).await, 400, Some("token_ceiling_exceeded"));

    // Missing or empty messages, a bad role.
    assert_error(&post(&chat, &json!({ "model": MODEL })).await, 400, Some("missing_required_parameter"));
    assert_error(&post(&chat, &json!({ "model": MODEL, "messages": [] })).await, 400, None);
    let got = post(&chat, &json!({ "model": MODEL, "messages": [{ "role": "wizard", "content": "hi" }] })).await;
    assert_error(&got, 400, None);
    assert_eq!(got.1["error"]["param"], "messages[0].role");

    // Unknown model, unknown ponder field, wrong types.
    assert_error(&post(&chat, &ask("gpt-17", 8)).await, 404, Some("model_not_found"));
    let mut body = ask(MODEL, 8);
    body["ponder"] = json!({ "budgett": 3 });
    assert_error(&post(&chat, &body).await, 400, None);
    let mut body = ask(MODEL, 8);
    body["temperature"] = json!("hot");
    assert_error(&post(&chat, &body).await, 400, None);

    // Oversize body: the declared length, and a chunked body that grows past the limit.
    let mut body = ask(MODEL, 8);
    body["messages"][0]["content"] = json!("x".repeat(10_000));
    assert_error(&post(&chat, &body).await, 413, Some("request_too_large"));
    let big = format!("{{\"model\": \"{MODEL}\", \"pad\": \"{}\"}}", "y".repeat(10_000));
    let stream = futures::stream::iter(big.into_bytes().chunks(1000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = client().post(&chat).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    let got = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_error(&got, 413, Some("request_too_large"));

    // Unknown route.
    let r = client().get(format!("{base}/v1/nothing")).send().await.unwrap();
    assert_error(&(r.status().as_u16(), r.json::<Value>().await.unwrap()), 404, None);

    // None of these generated anything.
    let m = client().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("ponder_samples_total 0"), "{m}");
    assert!(m.contains("ponder_tokens_total{kind=\"completion\"} 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_longer_than_the_context() {
    let base = start(ServerConfig::default()).await;
    let mut body = ask(MODEL, 8);
    body["messages"][0]["content"] = json!("apple ".repeat(9000));
    assert_error(&post(&format!("{base}/v1/chat/completions"), &body).await, 400, Some("context_length_exceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_token_budgets() {
    let cfg = ServerConfig {
        keys: vec![
            KeyConfig { key: "sk-open".into(), token_budget: None },
            KeyConfig { key: "sk-small".into(), token_budget: Some(40) },
            KeyConfig { key: "sk-two".into(), token_budget: Some(70) },
        ],
        ..ServerConfig::default()
    };
    let base = start(cfg).await;
    let chat = format!("{base}/v1/chat/completions");
    let send = |key: Option<&'static str>, body: Value| {
        let chat = chat.clone();
        async move {
            let mut r = client().post(&chat).json(&body);
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_error(&send(None, ask(MODEL, 8)).await, 401, Some("invalid_api_key"));
    assert_error(&send(Some("sk-wrong"), ask(MODEL, 8)).await, 401, Some("invalid_api_key"));
    let r = client().get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The small key cannot afford even one sample's worst case (prompt + 8 tokens > 40).
    assert_error(&send(Some("sk-small"), ask("single:smollm2-135m", 8)).await, 429, Some("insufficient_quota"));
    let (status, v) = send(Some("sk-open"), ask("single:smollm2-135m", 4)).await;
    assert_eq!(status, 200, "{v}");
    // A budget spent by what was actually used: the first request fits, the second does not.
    let (status, v) = send(Some("sk-two"), ask("single:smollm2-135m", 4)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 35, "{v}");
    assert_error(&send(Some("sk-two"), ask("single:smollm2-135m", 4)).await, 429, Some("insufficient_quota"));
    // Health and metrics stay open.
    assert_eq!(client().get(format!("{base}/health")).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_panics() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    let bodies = [
        "", "null", "[]", "42", "\"x\"", "{}", "{\"model\":null}", "{\"model\":1,\"messages\":1}",
        "{\"model\":\"smollm2-135m\",\"messages\":[1,2]}", "{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":{}}]}",
        "{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
        "{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}",
        "{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":0}",
        "{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":7}",
        "{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":-1,\"max_tokens\":0}",
        "{\"model\":\":smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"sc-99999999999999999999999:smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"sc-0:smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "\u{0}\u{1}\u{2}",
    ];
    for b in bodies {
        for url in [&chat, &format!("{base}/v1/completions"), &format!("{base}/apply-template"), &format!("{base}/v1/ponder/probe")] {
            let r = client().post(url.as_str()).body(b).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status < 500, "{url} {b:?} -> {status} {v}");
            // Generation endpoints refuse every one of these; the others may find a body valid.
            if url.contains("/v1/c") || status >= 400 {
                assert!((400..500).contains(&status), "{url} {b:?} -> {status} {v}");
                assert!(v["error"]["message"].is_string(), "{url} {b:?} -> {v}");
            }
        }
    }
    assert_eq!(client().get(format!("{base}/health")).send().await.unwrap().status().as_u16(), 200);
}
