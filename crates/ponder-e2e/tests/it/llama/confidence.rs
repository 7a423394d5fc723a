//! DeepConf's token statistics over HTTP: llama-server's `top_logprobs` give the same
//! per-token confidence as the engine computes from its logits, and online termination
//! cuts a trace where its own statistics say, on both. And the `top_logprobs` ponder itself
//! answers with (the gateway on the engine, the HTTP backend) equal llama-server's own.

use ponder_core::confidence::{first_low_group, group_confidences};
use ponder_core::{ConfidenceStop, FinishReason, Generator, Message, Sample, SampleRequest, SamplingParams};
use ponder_engine::{Engine, EngineConfig};
use ponder_http::Api;
use serde_json::{json, Value};

use super::*;
use crate::http::connect;

async fn greedy(g: &dyn Generator, messages: &[Message], stop: Option<ConfidenceStop>) -> Sample {
    let params = SamplingParams { temperature: 0.0, max_tokens: 40, token_stats_k: 20, confidence_stop: stop, ..SamplingParams::default() };
    let got = g.sample(SampleRequest { messages: messages.to_vec(), n: 1, params, first_index: 0 }).await.unwrap().collect().await.unwrap();
    assert!(got.failures.is_empty(), "{:?}", got.failures);
    got.samples.into_iter().next().expect("one sample")
}

/// A greedy trace on a backend that starts cold, so that the same request gives the same
/// trace: a prompt computed in other pieces (a prefix cache) rounds differently, and a
/// near-tie between two tokens can go the other way.
fn cold_engine() -> Engine {
    let cfg = EngineConfig { n_ctx: 2048, n_threads: 1, prefix_cache_entries: 0, ..EngineConfig::default() };
    Engine::load(model_path(), cfg).expect("model loads")
}

enum Cold {
    Engine,
    Server,
}

impl Cold {
    async fn greedy(&self, messages: &[Message], stop: Option<ConfidenceStop>) -> Sample {
        match self {
            Cold::Engine => greedy(&cold_engine(), messages, stop).await,
            Cold::Server => {
                let server = LlamaServer::start().await;
                let http = connect(&server.url(), |_| {}).await.with_api(Api::Completions).unwrap();
                greedy(&http, messages, stop).await
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_confidence_over_llama_server_matches_the_engine() {
    let messages = vec![Message::user("Name three colours of the rainbow, then count to ten.")];
    // One prompt text for both (the engine's rendering, sent raw to completions).
    let raw = vec![Message::user(engine().render(&messages).unwrap())];
    let e = Cold::Engine.greedy(&messages, None).await;
    let h = Cold::Server.greedy(&raw, None).await;
    assert_eq!(e.token_stats.len(), e.token_logprobs.len());
    assert_eq!(h.token_stats.len(), h.token_logprobs.len());
    // Greedy on both: the same tokens, until rounding breaks a near-tie.
    let same = e.token_bytes.iter().zip(&h.token_bytes).take_while(|(a, b)| a == b).count();
    assert!(same >= 10, "engine {:?} vs server {:?}", e.text, h.text);
    for i in 0..same {
        let (a, b) = (e.token_stats[i], h.token_stats[i]);
        assert!((a.confidence - b.confidence).abs() < 0.1, "token {i}: engine {a:?} server {b:?}");
        // The server's entropy counts only its top 20 tokens: a lower bound.
        assert!(b.entropy <= a.entropy + 0.05, "token {i}: engine {a:?} server {b:?}");
    }

    // Online termination at the median group confidence (window 4) of each side's uncut
    // trace: the same request, cut at the first token whose group falls under it.
    for (name, side, uncut, msgs) in [("engine", Cold::Engine, &e, &messages), ("llama-server", Cold::Server, &h, &raw)] {
        let conf: Vec<f32> = uncut.token_stats.iter().map(|t| t.confidence).collect();
        let mut groups = group_confidences(&conf, 4);
        groups.sort_by(f32::total_cmp);
        let stop = ConfidenceStop { window: 4, threshold: groups[groups.len() / 2] };
        let at = first_low_group(&conf, 4, stop.threshold).expect("a group under the median");
        let s = side.greedy(msgs, Some(stop)).await;
        assert_eq!((s.n_tokens, &s.finish), (at + 1, &FinishReason::LowConfidence), "{name}: {s:?}");
        assert_eq!((s.token_stats.len(), s.token_logprobs.len()), (at + 1, at + 1), "{name}");
        assert_eq!(s.token_bytes[..], uncut.token_bytes[..=at], "{name}");
        assert_eq!(s.text.as_bytes(), s.token_bytes.concat(), "{name}: the text is the kept tokens");
    }
}

/// Per position, the listed (token text, logprob), most likely first: llama-server's shape
/// (`content[].top_logprobs`, chat and completions) or OpenAI's legacy completions maps.
fn tops_of(choice: &Value) -> Vec<Vec<(String, f64)>> {
    let lp = &choice["logprobs"];
    let pair = |t: &str, x: &Value| (t.to_string(), x.as_f64().expect("a logprob"));
    let mut out: Vec<Vec<(String, f64)>> = match lp["content"].as_array() {
        Some(content) => content
            .iter()
            .map(|t| t["top_logprobs"].as_array().expect("top_logprobs").iter().map(|x| pair(x["token"].as_str().unwrap(), &x["logprob"])).collect())
            .collect(),
        None => lp["top_logprobs"]
            .as_array()
            .unwrap_or_else(|| panic!("no top_logprobs in {choice}"))
            .iter()
            .map(|m| m.as_object().expect("a map").iter().map(|(t, x)| pair(t, x)).collect())
            .collect(),
    };
    for t in &mut out {
        t.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    out
}

/// The chosen tokens' texts and logprobs, in either shape.
fn chosen_of(choice: &Value) -> Vec<(String, f64)> {
    let lp = &choice["logprobs"];
    match lp["content"].as_array() {
        Some(content) => content.iter().map(|t| (t["token"].as_str().unwrap().to_string(), t["logprob"].as_f64().unwrap())).collect(),
        None => lp["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .zip(lp["token_logprobs"].as_array().expect("token_logprobs"))
            .map(|(t, x)| (t.as_str().unwrap().to_string(), x.as_f64().unwrap()))
            .collect(),
    }
}

/// Every token `got` lists clearly inside its top k (above the k-th by a margin, so that a
/// near-tie at the edge may fall either way) is in `want`'s list with the same logprob.
fn same_tops(what: &str, got: &[Vec<(String, f64)>], want: &[Vec<(String, f64)>], positions: usize, tol: f64) {
    for i in 0..positions {
        let edge = want[i].last().expect("a listed token").1;
        for (t, lp) in got[i].iter().filter(|(t, lp)| !t.is_empty() && *lp > edge + tol) {
            let other = want[i].iter().find(|w| &w.0 == t).unwrap_or_else(|| panic!("{what}, position {i}: {t:?} ({lp}) not in {:?}", want[i]));
            assert!((other.1 - lp).abs() < tol, "{what}, position {i}, {t:?}: {lp} vs {}", other.1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_logprobs_from_the_gateway_and_over_http_equal_llama_servers_own() {
    let messages = vec![Message::user("Name three colours of the rainbow, then count to ten.")];
    let raw = engine().render(&messages).unwrap();
    let k = 5;
    let ask = json!({ "model": format!("single:{MODEL}"), "prompt": raw, "max_tokens": 16, "temperature": 0.0, "logprobs": k });
    let http = reqwest::Client::new();
    let post = |url: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http.post(&url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let v = r.json::<Value>().await.unwrap();
            assert_eq!(status, 200, "{url}: {v}");
            v["choices"][0].clone()
        }
    };

    let server = LlamaServer::start().await;
    let own = post(format!("{}/completions", server.url()), ask.clone()).await;
    let (own_tops, own_chosen) = (tops_of(&own), chosen_of(&own));
    let gateway = start_with(Backend::Engine(cold_engine()), ServerConfig::default()).await;
    let ours = post(format!("{gateway}/v1/completions"), ask.clone()).await;
    let (tops, chosen) = (tops_of(&ours), chosen_of(&ours));
    assert_eq!((tops.len(), chosen.len()), (16, 16), "{ours}");
    for (i, (t, c)) in tops.iter().zip(&chosen).enumerate() {
        assert!(!t.is_empty() && t.len() <= k, "position {i}: {t:?}");
        // Greedy: the likeliest listed token is the one chosen, with the same logprob.
        assert_eq!(t[0].0, c.0, "position {i}");
        assert!((t[0].1 - c.1).abs() < 1e-4, "position {i}: {t:?} vs {c:?}");
    }
    // The same tokens as llama-server until rounding breaks a near-tie, and the same lists.
    let same = chosen.iter().zip(&own_chosen).take_while(|(a, b)| a.0 == b.0).count();
    assert!(same >= 8, "gateway {chosen:?} vs llama-server {own_chosen:?}");
    same_tops("gateway completions vs llama-server", &tops, &own_tops, same, 0.1);

    // Chat on the gateway renders the same prompt: the same lists in the chat shape.
    let chat = json!({ "model": format!("single:{MODEL}"), "messages": [{ "role": "user", "content": messages[0].content }],
        "max_tokens": 16, "temperature": 0.0, "logprobs": true, "top_logprobs": k });
    let c = post(format!("{gateway}/v1/chat/completions"), chat).await;
    let chat_tops = tops_of(&c);
    let same_chat = chosen_of(&c).iter().zip(&chosen).take_while(|(a, b)| a.0 == b.0).count();
    assert!(same_chat >= 8, "chat {:?} vs completions {chosen:?}", chosen_of(&c));
    same_tops("gateway chat vs completions", &chat_tops, &tops, same_chat, 0.05);

    // ponder's HTTP backend reads llama-server's lists into the sample.
    let over_http = connect(&server.url(), |_| {}).await.with_api(Api::Completions).unwrap();
    let params = SamplingParams { temperature: 0.0, max_tokens: 16, top_logprobs: k as u32, ..SamplingParams::default() };
    let got = over_http.sample(SampleRequest { messages: vec![Message::user(raw)], n: 1, params, first_index: 0 }).await.unwrap().collect().await.unwrap();
    let s = &got.samples[0];
    let read: Vec<Vec<(String, f64)>> =
        s.top_logprobs.iter().map(|t| t.iter().map(|x| (String::from_utf8_lossy(&x.bytes).into_owned(), f64::from(x.logprob))).collect()).collect();
    assert_eq!(read.len(), s.token_logprobs.len());
    let same_http = s.token_bytes.iter().zip(&own_chosen).take_while(|(a, b)| String::from_utf8_lossy(a) == b.0).count();
    assert!(same_http >= 8, "over HTTP {:?} vs {own_chosen:?}", s.text);
    same_tops("HTTP backend vs llama-server", &read, &own_tops, same_http, 0.1);
    same_tops("llama-server vs HTTP backend", &own_tops, &read, same_http, 0.1);
}
