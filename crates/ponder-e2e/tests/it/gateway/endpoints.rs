//! Strategies through the gateway on the engine: answers, exact usage, streams, endpoints.

use super::*;

/// An SSE body as (comments, data payloads) in order.
pub(super) fn sse(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for event in text.split("\n\n") {
        for line in event.lines() {
            if let Some(c) = line.strip_prefix(':') {
                out.push((true, c.trim().to_string()));
            } else if let Some(d) = line.strip_prefix("data:") {
                out.push((false, d.trim().to_string()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc_usage_is_the_sum_over_samples() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    // One plain sample gives the prompt's length.
    let (s, one) = post(&chat, &ask("single:smollm2-135m", 8)).await;
    assert_eq!(s, 200, "{one}");
    let prompt_len = one["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_len > 5);

    let mut body = ask("sc-4:smollm2-135m", 32);
    body["ponder"] = json!({ "return_candidates": true });
    let (s, v) = post(&chat, &body).await;
    assert_eq!(s, 200, "{v}");
    let p = &v["ponder"];
    assert_eq!(p["strategy"], "sc");
    let cands = p["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 4);
    let sum: u64 = cands.iter().map(|c| c["n_tokens"].as_u64().unwrap()).sum();
    assert_eq!(v["usage"]["completion_tokens"], sum, "{v}");
    // Four samples of one prompt: what a backend without sharing would have prefilled.
    assert_eq!(v["usage"]["prompt_tokens"], 4 * prompt_len, "{v}");
    let u = &p["usage"];
    assert_eq!(u["prompt_computed"].as_u64().unwrap() + u["prompt_reused"].as_u64().unwrap(), 4 * prompt_len);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], u["prompt_reused"]);
    assert_eq!(
        v["usage"]["total_tokens"].as_u64().unwrap(),
        v["usage"]["prompt_tokens"].as_u64().unwrap() + v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    // The content is the chosen candidate's text.
    let chosen = p["chosen"].as_u64().unwrap() as usize;
    let text = cands.iter().find(|c| c["index"] == chosen).unwrap()["text"].as_str().unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], text);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "sc-4:smollm2-135m");
    let share = p["votes"][0]["count"].as_f64().unwrap() / p["votes"].as_array().unwrap().iter().map(|x| x["count"].as_f64().unwrap()).sum::<f64>();
    assert_eq!(p["confidence"].as_f64(), Some(share), "{p}");

    // Abstention: only a unanimous vote answers at abstain_below = 1.
    let mut body = ask(MODEL, 32);
    body["ponder"] = json!({ "strategy": "sc@4{abstain_below = 1.0}" });
    let (s, v) = post(&chat, &body).await;
    assert_eq!(s, 200, "{v}");
    let p = &v["ponder"];
    let unanimous = p["confidence"].as_f64() == Some(1.0);
    assert_eq!(p["abstained"], !unanimous && !p["votes"].as_array().unwrap().is_empty(), "{p}");
    if p["abstained"] == true {
        assert!(p["answer"].is_null() && v["choices"][0]["message"]["content"] == "", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_progress_then_the_answer_then_usage() {
    let base = start(ServerConfig::default()).await;
    let mut body = ask("sc-3:smollm2-135m", 24);
    body["stream"] = json!(true);
    body["ponder"] = json!({ "return_candidates": true });
    let r = client().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), &(false, "[DONE]".to_string()));
    let progress: Vec<Value> =
        events.iter().filter(|(c, _)| *c).filter_map(|(_, t)| t.strip_prefix("ponder ")).map(|t| serde_json::from_str(t).unwrap()).collect();
    let samples = progress.iter().filter(|p| p["event"] == "sample").count();
    assert_eq!(samples, 3, "{progress:?}");
    assert_eq!(progress.last().unwrap()["event"], "decided");
    // Progress comes before any content.
    let first_content = events.iter().position(|(c, d)| !c && d.contains("\"content\":\"") && !d.contains("\"role\"")).unwrap();
    let last_progress = events.iter().rposition(|(c, _)| *c).unwrap();
    assert!(last_progress < first_content);
    let chunks: Vec<Value> = events.iter().filter(|(c, d)| !c && d != "[DONE]").map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let fin = chunks.iter().find(|c| c["choices"][0]["finish_reason"].is_string()).unwrap();
    let p = &fin["ponder"];
    let chosen = p["chosen"].as_u64().unwrap();
    let cands = p["candidates"].as_array().unwrap();
    assert_eq!(content, cands.iter().find(|c| c["index"] == chosen).unwrap()["text"].as_str().unwrap());
    let usage = &chunks.last().unwrap();
    assert!(usage["choices"].as_array().unwrap().is_empty());
    let sum: u64 = cands.iter().map(|c| c["n_tokens"].as_u64().unwrap()).sum();
    assert_eq!(usage["usage"]["completion_tokens"], sum);
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_as_chunks_and_an_early_stop() {
    let base = start(ServerConfig::default()).await;
    // Greedy samples agree, so adaptive-sc stops after its first round of 4 out of 16.
    let mut body = ask("adaptive-sc-16:smollm2-135m", 16);
    body["temperature"] = json!(0.0);
    body["stream"] = json!(true);
    body["ponder"] = json!({ "progress": "chunks" });
    let r = client().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    let events = sse(&r.text().await.unwrap());
    assert!(events.iter().all(|(c, _)| !c), "no comments in chunks mode");
    let chunks: Vec<Value> = events.iter().filter(|(_, d)| d != "[DONE]").map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let progress: Vec<&Value> = chunks.iter().filter(|c| c["choices"].as_array().unwrap().is_empty() && c.get("usage").is_none()).collect();
    assert!(progress.iter().all(|c| c["ponder"]["event"].is_string()));
    let decided = progress.iter().find(|c| c["ponder"]["event"] == "decided").unwrap();
    assert_eq!(decided["ponder"]["stopped_early"], true, "{decided}");
    assert_eq!(decided["ponder"]["samples"], 4);
    let samples: Vec<&&Value> = progress.iter().filter(|c| c["ponder"]["event"] == "sample").collect();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[3]["ponder"]["leader_votes"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_models_health_metrics() {
    let base = start(ServerConfig::default()).await;
    let (s, v) = post(
        &format!("{base}/v1/completions"),
        &json!({ "model": "single:smollm2-135m", "prompt": "The capital of France is", "max_tokens": 6, "n": 2, "logprobs": 1, "seed": 3 }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    let lp: usize = choices.iter().map(|c| c["logprobs"]["token_logprobs"].as_array().unwrap().len()).sum();
    assert_eq!(v["usage"]["completion_tokens"], lp as u64);
    for c in choices {
        // The tokens spell the text, and each offset is where its token starts.
        let tokens: Vec<&str> = c["logprobs"]["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(tokens.concat(), c["text"].as_str().unwrap(), "{c}");
        let offsets: Vec<u64> = c["logprobs"]["text_offset"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
        let starts: Vec<u64> = tokens.iter().scan(0, |at, t| { let s = *at; *at += t.len() as u64; Some(s) }).collect();
        assert_eq!(offsets, starts);
    }
    // A strategy on a raw prompt.
    let (s, v) = post(
        &format!("{base}/v1/completions"),
        &json!({ "model": "sc-2:smollm2-135m", "prompt": "Question: 2 + 2 = ?\nAnswer:", "max_tokens": 8, "stop": ["\n"] }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ponder"]["n_candidates"], 2);

    let models: Value = client().get(format!("{base}/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);
    let health: Value = client().get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["server"], "ponder");
    let (s, v) = post(&format!("{base}/apply-template"), &json!({ "messages": [{ "role": "user", "content": "Hi" }] })).await;
    assert_eq!(s, 200);
    assert!(v["prompt"].as_str().unwrap().contains("Hi"));
    let (s, v) = post(
        &format!("{base}/v1/ponder/probe"),
        &json!({ "prompts": ["Is the sky blue?"], "suffix": " Answer:", "candidates": [" Yes", " No"] }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["logprobs"][0][0].as_f64().unwrap() < 0.0);

    let m = client().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("ponder_requests_total{endpoint=\"completions\",status=\"200\"} 2"), "{m}");
    assert!(m.contains("ponder_request_duration_seconds_count{endpoint=\"completions\"} 2"), "{m}");
    assert!(m.contains("ponder_samples_total 4"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_the_engine() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    let calls = (0..8).map(|i| {
        let chat = chat.clone();
        async move {
            let mut body = ask("sc-2:smollm2-135m", 12);
            body["seed"] = json!(i);
            post(&chat, &body).await
        }
    });
    for (s, v) in futures::future::join_all(calls).await {
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["ponder"]["n_candidates"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_strategy_runs_with_self_evaluation() {
    let base = start(ServerConfig::default()).await;
    let (s, v) = post(&format!("{base}/v1/chat/completions"), &ask("beam-2:smollm2-135m", 24)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ponder"]["strategy"], "beam");
    assert!(v["ponder"]["usage"]["scorer_passes"].as_u64().unwrap() > 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bon_with_a_reward_model_over_http() {
    use axum::routing::post as route_post;
    // A reward model that prefers longer answers (vLLM's /score shape).
    let app = axum::Router::new().route(
        "/v1/score",
        route_post(|axum::Json(b): axum::Json<Value>| async move {
            let texts: Vec<String> = serde_json::from_value(b["text_2"].clone()).unwrap();
            let data: Vec<Value> = texts.iter().enumerate().map(|(i, t)| json!({ "index": i, "score": t.len() as f64 })).collect();
            axum::Json(json!({ "data": data }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let cfg = ServerConfig {
        reward: Some(ponder_server::config::RewardConfig {
            url: format!("http://{addr}/v1"),
            model: "rm".into(),
            api: ponder_http::RewardApi::Score,
            api_key: None,
            timeout_s: 30,
        }),
        ..ServerConfig::default()
    };
    let base = start(cfg).await;
    let mut body = ask("bon-3:smollm2-135m", 24);
    body["ponder"] = json!({ "scorer": "reward", "return_candidates": true });
    let (s, v) = post(&format!("{base}/v1/chat/completions"), &body).await;
    assert_eq!(s, 200, "{v}");
    let cands = v["ponder"]["candidates"].as_array().unwrap();
    let longest = cands.iter().max_by_key(|c| c["text"].as_str().unwrap().len()).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], longest["text"], "{v}");
    assert_eq!(v["ponder"]["usage"]["scorer_passes"], 3);
    // Without a configured reward model the scorer is refused before generation.
    let base = start(ServerConfig::default()).await;
    let (s, v) = post(&format!("{base}/v1/chat/completions"), &body).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "ponder.scorer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revise_runs_through_the_gateway_with_its_base() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    let mut body = ask(MODEL, 24);
    body["ponder"] = json!({ "strategy": { "strategy": "revise", "n": 1, "base": "sc@2" }, "return_candidates": true });
    let (s, v) = post(&chat, &body).await;
    assert_eq!(s, 200, "{v}");
    let p = &v["ponder"];
    assert_eq!((&p["strategy"], &p["budget"]), (&json!("revise"), &json!(3)), "{p}");
    let cands = p["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 3, "two base samples and a revision: {p}");
    let generated: u64 = cands.iter().map(|c| c["n_tokens"].as_u64().unwrap()).sum();
    assert_eq!(v["usage"]["completion_tokens"].as_u64(), Some(generated), "{v}");
    // Its token ceiling counts every layer's samples: 3 x 24 > 60.
    body["ponder"]["max_total_tokens"] = json!(60);
    let got = post(&chat, &body).await;
    assert_eq!(got.0, 400, "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_pattern_decides_what_the_vote_groups() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    let mut body = ask("sc-4:smollm2-135m", 24);
    // The last word of letters in each sample is its answer.
    body["ponder"] = json!({ "answer_pattern": "([A-Za-z]+)", "return_candidates": true });
    let (s, v) = post(&chat, &body).await;
    assert_eq!(s, 200, "{v}");
    let last_word = |t: &str| -> Option<String> {
        let words: Vec<String> = t.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).map(str::to_string).collect();
        words.last().cloned()
    };
    let cands = v["ponder"]["candidates"].as_array().unwrap();
    for c in cands {
        assert_eq!(c["answer"].as_str().map(str::to_string), last_word(c["text"].as_str().unwrap()), "{c}");
    }
    let voted: u64 = v["ponder"]["votes"].as_array().unwrap().iter().map(|x| x["count"].as_u64().unwrap()).sum();
    assert_eq!(voted as usize, cands.iter().filter(|c| !c["answer"].is_null()).count());

    body["ponder"] = json!({ "answer_pattern": "([" });
    let (s, v) = post(&chat, &body).await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("ponder.answer_pattern")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("not a regular expression"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critique_fuse_and_rank_run_through_the_gateway() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    for (strategy, budget, n_candidates) in [
        (json!({ "strategy": "critique", "n": 1, "base": "sc@2" }), 4, 3),
        (json!({ "strategy": "fuse", "base": { "strategy": "sc", "n": 2 }, "max_chars": 300 }), 3, 3),
        (json!({ "strategy": "rank", "base": "sc@2", "mode": "pairwise" }), 4, 2),
    ] {
        let mut body = ask(MODEL, 24);
        body["ponder"] = json!({ "strategy": strategy, "return_candidates": true });
        let (s, v) = post(&chat, &body).await;
        assert_eq!(s, 200, "{v}");
        let p = &v["ponder"];
        assert_eq!((&p["strategy"], &p["budget"]), (&strategy["strategy"], &json!(budget)), "{p}");
        let cands = p["candidates"].as_array().unwrap();
        assert_eq!(cands.len(), n_candidates, "{p}");
        // Every call's tokens: the critique's and the judgements' too, which are no candidates.
        let generated: u64 = cands.iter().map(|c| c["n_tokens"].as_u64().unwrap()).sum();
        let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
        assert!(completion >= generated, "{v}");
        assert_eq!(completion, p["usage"]["completion"].as_u64().unwrap(), "{v}");
        assert!(p["counts"].is_object(), "what the layer counted: {p}");
    }
    // A bad field of a nested base is named, as on the CLI.
    let mut body = ask(MODEL, 24);
    body["ponder"] = json!({ "strategy": { "strategy": "rank", "base": { "strategy": "sc", "n": 0 } } });
    let (s, v) = post(&chat, &body).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("base"), "{v}");
}

/// Issue 14: `ponder.thinking_budget` on the engine. The question opens a span the model
/// never closes by itself (as templates that write `<think>` into the prompt do), so the
/// budget closes it after 6 tokens; usage reports them as OpenAI's `reasoning_tokens`.
#[tokio::test]
async fn issue_14_a_thinking_budget_reports_reasoning_tokens() {
    let base = start(ServerConfig::default()).await;
    let chat = format!("{base}/v1/chat/completions");
    let mut body = ask("single:smollm2-135m", 24);
    body["messages"] = json!([{ "role": "user", "content": "What is 2 + 3? <think>" }]);
    body["temperature"] = json!(0);
    body["ponder"] = json!({ "think_markers": "<think>,</think>", "thinking_budget": 6, "return_candidates": true });
    let (s, v) = post(&chat, &body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"], 6,
        "{v}"
    );
    let text = v["ponder"]["candidates"][0]["text"].as_str().unwrap();
    assert!(text.contains("</think>\n\nFinal answer: "), "{text}");
    // Without markers there is nothing to budget; a bad budget is the request's fault.
    body["ponder"] = json!({ "think_markers": "none", "thinking_budget": 6 });
    assert_error(&post(&chat, &body).await, 400, None);
    body["ponder"] = json!({ "thinking_budget": 0 });
    assert_error(&post(&chat, &body).await, 400, None);
}
