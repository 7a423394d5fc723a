//! DeepConf's token statistics over HTTP: llama-server's `top_logprobs` give the same
//! per-token confidence as the engine computes from its logits, and online termination
//! cuts a trace where its own statistics say, on both.

use ponder_core::confidence::{first_low_group, group_confidences};
use ponder_core::{ConfidenceStop, FinishReason, Generator, Message, Sample, SampleRequest, SamplingParams};
use ponder_engine::{Engine, EngineConfig};
use ponder_http::Api;

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
enum Cold {
    Engine,
    Server,
}

impl Cold {
    async fn greedy(&self, messages: &[Message], stop: Option<ConfidenceStop>) -> Sample {
        match self {
            Cold::Engine => {
                let cfg = EngineConfig { n_ctx: 2048, n_threads: 1, prefix_cache_entries: 0, ..EngineConfig::default() };
                greedy(&Engine::load(model_path(), cfg).expect("model loads"), messages, stop).await
            }
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
