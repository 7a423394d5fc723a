//! Next-token probes over llama-server's top log-probabilities: self-evaluation scores a
//! partial solution over HTTP as the engine scores it in-process, and a search strategy
//! with self-evaluation runs end to end against the server.

use ponder_core::process::{Partial, ProcessScorer, SelfEval};
use ponder_core::strategy::{BeamConfig, Ctx, StepConfig, StrategySpec};
use ponder_core::Generator;

use super::*;
use crate::http::{connect, ctx, problem, question, sampling};

/// p(Yes) of self-evaluation on `text` as the last step of a partial solution, and the raw
/// log-probabilities of " 5" and " 7" after "So 2 + 3 =" on the same branch: far apart, so
/// a candidate read from the wrong place cannot pass for the other.
async fn self_eval(g: &dyn Generator, text: &str) -> (f64, Vec<f32>, Usage) {
    let mut s = g.open(&question(), 1).await.unwrap();
    let b = s.fork(s.root(), 1).await.unwrap()[0];
    s.append(b, text).await.unwrap();
    let steps = [text.to_string()];
    let parts = [Partial { branch: b, steps: &steps, finished: false }];
    let got = SelfEval::default().score_steps(&problem(), &parts, Some(s.as_mut())).await.unwrap();
    let words = [" Yes", " No", " Maybe", " The"].map(String::from);
    let (raw, raw_usage) = s.probe(&[b], &SelfEval::default().question, &words).await.unwrap();
    (got.values[0], raw[0].clone(), got.usage + raw_usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_evaluation_over_llama_server_matches_the_engine() {
    // Each side starts cold for each text, so the numbers do not depend on which tests ran
    // first (the shared test engine's prefix cache, a server's slots). They still differ a
    // little: Q4 matrix products round differently with the shape of the batches a prompt
    // is computed in (the engine: question, step, probe; the server: 24 tokens cached by
    // its capability check, then the rest). Measured: log-odds 0.004 vs 0.140 and
    // 0.211 vs 0.393 — a constant gap of 0.13–0.18 on both texts.
    let engine = Engine::load(model_path(), EngineConfig { n_ctx: 2048, n_threads: 1, prefix_cache_entries: 0, ..EngineConfig::default() })
        .expect("model loads");
    let log_odds = |p: f64| (p / (1.0 - p)).ln();
    for text in ["2 + 3 = 5, so the answer is 5.", "2 + 3 = 7, so the answer is 7."] {
        let server = LlamaServer::start().await;
        let g = connect(&server.url(), |_| {}).await;
        let before = server.counters().await;
        let (over_http, raw_http, usage) = self_eval(&g, text).await;
        let (in_process, raw_engine, _) = self_eval(&engine, text).await;
        let gap = (log_odds(over_http) - log_odds(in_process)).abs();
        assert!(gap < 0.3, "{text}: p(Yes) over http {over_http}, in the engine {in_process}");
        // Each candidate's own first token, not a shorter one that begins it (" M" for
        // " Maybe"); outside the server's top 20 it is -inf, where the engine ranks it low.
        for (h, e) in raw_http.iter().zip(&raw_engine) {
            let same = if h.is_finite() { (h - e).abs() < 0.3 } else { *e < -5.0 };
            assert!(same, "{text}: over http {raw_http:?}, in the engine {raw_engine:?}");
        }
        assert_eq!(usage.scorer_passes, 2);
        assert_eq!(tokens(&usage), tokens(&before.until(server.counters().await)), "{usage:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_search_with_self_evaluation_runs_over_llama_server() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    let step = StepConfig { max_step_tokens: 16, max_steps: 3, ..StepConfig::default() };
    let beam = StrategySpec::Beam(BeamConfig { n: 4, step, ..BeamConfig::default() }).build(sampling(48)).unwrap();
    let scorer = SelfEval::default();
    let before = server.counters().await;
    let c = Ctx { process: Some(&scorer), ..ctx(&g) };
    let out = beam.solve(&problem(), &question(), &c).await.unwrap();
    assert!(!out.candidates.is_empty());
    assert!(out.usage.scorer_passes > 0, "{:?}", out.usage);
    assert_eq!(tokens(&out.usage), tokens(&before.until(server.counters().await)), "{:?}", out.usage);
}
