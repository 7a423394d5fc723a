//! Issue 17 §3: every key pays for the work it causes, on every route and however the
//! request ends (answered, refused by a timeout, abandoned by its client), and `/metrics`
//! counts the same tokens.

use std::time::Duration;

use ponder_server::config::KeyConfig;

use super::*;

fn keys(list: &[(&str, Option<u64>)]) -> ServerConfig {
    let keys = list.iter().map(|(k, b)| KeyConfig { key: (*k).into(), token_budget: *b }).collect();
    ServerConfig { keys, ..ServerConfig::default() }
}

async fn post_key(url: &str, key: &str, body: &Value) -> (u16, Value) {
    let r = client().post(url).bearer_auth(key).json(body).send().await.expect("request sent");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// Waits until no request of `key` holds a reservation, then returns what the key spent.
async fn settled(st: &AppState, key: &str) -> u64 {
    for _ in 0..1200 {
        if st.keys.reserved(key) == Some(0) {
            return st.keys.used(key).expect("a configured key");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{key} still holds {:?} tokens in reserve after 60 s", st.keys.reserved(key));
}

/// prompt computed + prompt reused + completion, as `/metrics` counts them.
async fn metered_tokens(base: &str) -> u64 {
    let m = client().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    ["prompt_computed", "prompt_reused", "completion"]
        .iter()
        .map(|k| {
            let line = format!("ponder_tokens_total{{kind=\"{k}\"}} ");
            let v = m.lines().find_map(|l| l.strip_prefix(line.as_str())).unwrap_or_else(|| panic!("no {k} in {m}"));
            v.parse::<u64>().unwrap()
        })
        .sum()
}

fn total(v: &Value) -> u64 {
    v["usage"]["total_tokens"].as_u64().unwrap_or_else(|| panic!("no usage in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_probe_is_charged_to_the_key() {
    let (base, st) = start_state(Backend::Engine(engine()), keys(&[("sk-small", Some(40)), ("sk-probe", Some(400))])).await;
    let probe = format!("{base}/v1/ponder/probe");
    // A key that chat refuses cannot make the server prefill thousands of tokens either.
    let chat = format!("{base}/v1/chat/completions");
    assert_error(&post_key(&chat, "sk-small", &ask("single:smollm2-135m", 8)).await, 429, Some("insufficient_quota"));
    let long = json!({ "prompts": vec!["apple ".repeat(500); 3], "suffix": " Answer:", "candidates": [" Yes", " No"] });
    assert_error(&post_key(&probe, "sk-small", &long).await, 429, Some("insufficient_quota"));
    assert_eq!(st.keys.used("sk-small"), Some(0));
    assert_eq!(metered_tokens(&base).await, 0);

    // A probe the key can afford is charged exactly its usage, and counted in the metrics.
    let body = json!({ "prompts": ["Is the sky blue?", "Is grass red?"], "suffix": " Answer:", "candidates": [" Yes", " No"] });
    let (s, v) = post_key(&probe, "sk-probe", &body).await;
    assert_eq!(s, 200, "{v}");
    let first = total(&v);
    assert!(first > 10, "{v}");
    assert_eq!(settled(&st, "sk-probe").await, first);
    assert_eq!(metered_tokens(&base).await, first);

    // Probing again spends the budget down until the key is refused; it never overspends.
    let mut spent = first;
    let mut refused = false;
    for _ in 0..100 {
        let got = post_key(&probe, "sk-probe", &body).await;
        if got.0 == 429 {
            assert_error(&got, 429, Some("insufficient_quota"));
            refused = true;
            break;
        }
        assert_eq!(got.0, 200, "{}", got.1);
        spent += total(&got.1);
        assert_eq!(settled(&st, "sk-probe").await, spent);
    }
    assert!(refused, "400 tokens paid for more than 100 probes");
    assert!(spent <= 400, "spent {spent} of 400");
    assert_eq!(metered_tokens(&base).await, spent);
}

/// Reads a stream until its first progress event of `kind`, then hangs up; returns that event.
async fn abandon_after(url: &str, key: &str, body: &Value, kind: &str) -> Value {
    let mut r = client().post(url).bearer_auth(key).json(body).send().await.expect("request sent");
    assert_eq!(r.status().as_u16(), 200);
    let mut text = String::new();
    let needle = format!("\"event\":\"{kind}\"");
    while let Some(bytes) = r.chunk().await.expect("stream readable") {
        text.push_str(&String::from_utf8_lossy(&bytes));
        if let Some(line) = text.lines().find(|l| l.contains(&needle) && l.ends_with('}')) {
            let json = &line[line.find('{').unwrap()..];
            return serde_json::from_str(json).unwrap();
        }
        assert!(!text.contains("[DONE]"), "the request ended before any {kind} event: {text}");
    }
    panic!("the stream ended before any {kind} event: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_an_abandoned_stream_is_charged_what_it_computed() {
    let (base, st) = start_state(Backend::Engine(engine()), keys(&[("sk-a", None), ("sk-cal", None)])).await;
    let chat = format!("{base}/v1/chat/completions");
    let (s, one) = post_key(&chat, "sk-cal", &ask("single:smollm2-135m", 4)).await;
    assert_eq!(s, 200, "{one}");
    let prompt_len = one["usage"]["prompt_tokens"].as_u64().unwrap();

    // Sampling strategies: the client leaves after the first sample's progress line.
    let mut before = 0;
    for seed in 0..3 {
        let mut body = ask("sc-8:smollm2-135m", 200);
        body["temperature"] = json!(1.0);
        body["seed"] = json!(seed);
        body["stream"] = json!(true);
        let sample = abandon_after(&chat, "sk-a", &body, "sample").await;
        let used = settled(&st, "sk-a").await;
        let seen = prompt_len + sample["tokens"].as_u64().unwrap();
        assert!(used - before >= seen, "seed {seed}: charged {} after a sample of {seen} tokens was delivered", used - before);
        before = used;
    }
    // Search strategies: the client leaves after the first step.
    let mut body = ask("beam-2:smollm2-135m", 200);
    body["stream"] = json!(true);
    let step = abandon_after(&chat, "sk-a", &body, "step").await;
    let used = settled(&st, "sk-a").await;
    assert!(used - before >= prompt_len + step["tokens"].as_u64().unwrap(), "charged {} after {step}", used - before);
    let before = used;

    // A stream read to the end is charged what its usage chunk says.
    let mut body = ask("sc-3:smollm2-135m", 16);
    body["stream"] = json!(true);
    let text = client().post(&chat).bearer_auth("sk-a").json(&body).send().await.unwrap().text().await.unwrap();
    let usage: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(settled(&st, "sk-a").await - before, total(&usage));
    // So is a search answered in full, self-evaluation probes included.
    let before = settled(&st, "sk-a").await;
    let (s, v) = post_key(&chat, "sk-a", &ask("beam-2:smollm2-135m", 24)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["ponder"]["usage"]["scorer_passes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(settled(&st, "sk-a").await - before, total(&v));

    // The metrics count every token charged to a key, the abandoned requests' included.
    let charged = settled(&st, "sk-a").await + settled(&st, "sk-cal").await;
    assert_eq!(metered_tokens(&base).await, charged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_cancelled_requests_are_charged_and_counted() {
    let mut cfg = keys(&[("sk-t", None)]);
    cfg.limits.request_timeout_s = 1;
    let (base, st) = start_state(Backend::Engine(engine()), cfg).await;
    let chat = format!("{base}/v1/chat/completions");
    // Eight samples of 512 tokens each take seconds on one thread; both cuts come earlier.
    let mut body = ask("sc-8:smollm2-135m", 512);
    body["ignore_eos"] = json!(true);
    assert_error(&post_key(&chat, "sk-t", &body).await, 504, Some("timeout"));
    let after_timeout = settled(&st, "sk-t").await;
    assert!(after_timeout > 0, "a request cut by the timeout was charged nothing");
    assert_eq!(metered_tokens(&base).await, after_timeout);

    // A client that gives up on a plain (non-streamed) request.
    let mut cfg = keys(&[("sk-t", None)]);
    cfg.limits.request_timeout_s = 600;
    let (base, st) = start_state(Backend::Engine(engine()), cfg).await;
    let chat = format!("{base}/v1/chat/completions");
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build().unwrap();
    let r = impatient.post(&chat).bearer_auth("sk-t").json(&body).send().await;
    assert!(r.is_err(), "the request finished within 1.5 s: {r:?}");
    let used = settled(&st, "sk-t").await;
    assert!(used > 0, "a request its client gave up on was charged nothing");
    assert_eq!(metered_tokens(&base).await, used);
}
