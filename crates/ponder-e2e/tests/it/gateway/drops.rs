//! Samples and branches dropped before their end (issue 14): the progress stream names
//! each with its tokens and why, and `ponder.usage.dropped` is their sum; OpenAI's own
//! `usage` fields stay as OpenAI defines them.

use super::endpoints::sse;
use super::*;

/// A streamed request with progress as chunks: the progress events and the final chunk.
async fn streamed(base: &str, mut body: Value) -> (Vec<Value>, Value, Value) {
    body["stream"] = json!(true);
    let r = client().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let events = sse(&r.text().await.unwrap());
    let chunks: Vec<Value> = events.iter().filter(|(_, d)| d != "[DONE]").map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let progress: Vec<Value> = chunks
        .iter()
        .filter(|c| c["choices"].as_array().is_some_and(Vec::is_empty) && c.get("usage").is_none())
        .map(|c| c["ponder"].clone())
        .collect();
    let fin = chunks.iter().find(|c| c["choices"][0]["finish_reason"].is_string()).expect("a final chunk").clone();
    let usage = chunks.last().unwrap()["usage"].clone();
    (progress, fin, usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_confidence_stops_are_reported_as_dropped_samples() {
    let base = start(ServerConfig::default()).await;
    // DeepConf-low: the threshold is near the best warm-up trace's confidence, so most
    // later traces are ended by the engine mid-generation.
    let mut body = ask("smollm2-135m", 48);
    // No answer is ever read (the pattern never matches), so the vote never settles and
    // all 8 traces are drawn whatever the model writes; none ends before 48 tokens but by
    // the confidence stop.
    body["messages"] = json!([{ "role": "user", "content": "Pick a random number between 1 and 1000." }]);
    body["temperature"] = json!(1.0);
    body["ignore_eos"] = json!(true);
    body["ponder"] = json!({
        "strategy": { "strategy": "deepconf", "n": 8, "mode": "online", "keep": 0.1, "warmup": 2, "window": 8, "consensus": 1.0 },
        "progress": "chunks",
        "answer_pattern": "<<never in a sample>>",
    });
    let (progress, fin, usage) = streamed(&base, body).await;
    let dropped: Vec<&Value> = progress.iter().filter(|p| p["event"] == "dropped").collect();
    assert!(!dropped.is_empty(), "no trace was stopped: {progress:?}");
    assert!(dropped.iter().all(|p| p["why"] == "low_confidence" || p["why"] == "cancelled"), "{dropped:?}");
    assert!(dropped.iter().any(|p| p["why"] == "low_confidence"), "{dropped:?}");
    let tokens: u64 = dropped.iter().map(|p| p["tokens"].as_u64().unwrap()).sum();
    assert_eq!(fin["ponder"]["usage"]["dropped"], tokens, "{fin}");
    // Dropped samples are counted apart from the finished ones and do not vote.
    let last = progress.iter().rfind(|p| p["event"] == "dropped").unwrap();
    assert_eq!(last["dropped"], dropped.len());
    let samples = progress.iter().filter(|p| p["event"] == "sample").count();
    assert_eq!(samples + dropped.len(), 8, "{progress:?}");
    // Ponder's count is an extension: OpenAI's usage object has no such field.
    assert!(usage.get("dropped").is_none() && usage["completion_tokens_details"].get("dropped").is_none(), "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() >= tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_branches_are_reported_with_their_dropped_tokens() {
    let base = start(ServerConfig::default()).await;
    // Adaptive-ITC prunes half of 4 samples after their first 8 tokens.
    let mut body = ask("smollm2-135m", 32);
    body["temperature"] = json!(0.8);
    // No branch ends before the probe, so both pruned ones are dropped unfinished.
    body["ignore_eos"] = json!(true);
    body["ponder"] = json!({
        "strategy": { "strategy": "adaptive-itc", "n": 4, "mode": "prune", "prune_after": 8, "keep": 0.5 },
        "progress": "chunks",
        "return_candidates": true,
    });
    let (progress, fin, _) = streamed(&base, body).await;
    let pruned: Vec<&Value> = progress.iter().filter(|p| p["event"] == "dropped").collect();
    assert_eq!(pruned.len(), 1, "one release: {progress:?}");
    assert_eq!((pruned[0]["why"].as_str(), pruned[0]["branches"].as_array().map(Vec::len)), (Some("pruned"), Some(2)));
    // Forked at the prompt, a pruned branch shares none of its tokens: all of them are dropped.
    let cands = fin["ponder"]["candidates"].as_array().unwrap();
    let lost: u64 = cands.iter().filter(|c| c["answer"].is_null() && c["finish"] == "step_end").map(|c| c["n_tokens"].as_u64().unwrap()).sum();
    assert_eq!(pruned[0]["tokens"], lost, "{cands:?}");
    assert_eq!(fin["ponder"]["usage"]["dropped"], lost);
}
