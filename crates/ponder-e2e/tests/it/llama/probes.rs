//! Next-token probes over llama-server's top log-probabilities: self-evaluation scores a
//! partial solution over HTTP as the engine scores it in-process, and a search strategy
//! with self-evaluation runs end to end against the server.

use ponder_core::process::{Partial, ProcessScorer, SelfEval};
use ponder_core::strategy::{BeamConfig, Ctx, StepConfig, StrategySpec};
use ponder_core::Generator;

use super::*;
use crate::http::{connect, ctx, problem, question, sampling};

/// p(Yes) of self-evaluation on `text` as the last step of a partial solution.
async fn self_eval(g: &dyn Generator, text: &str) -> (f64, Usage) {
    let mut s = g.open(&question(), 1).await.unwrap();
    let b = s.fork(s.root(), 1).await.unwrap()[0];
    s.append(b, text).await.unwrap();
    let steps = [text.to_string()];
    let parts = [Partial { branch: b, steps: &steps, finished: false }];
    let got = SelfEval::default().score_steps(&problem(), &parts, Some(s.as_mut())).await.unwrap();
    (got.values[0], got.usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_evaluation_over_llama_server_matches_the_engine() {
    let server = LlamaServer::start().await;
    let g = connect(&server.url(), |_| {}).await;
    for text in ["2 + 3 = 5, so the answer is 5.", "2 + 3 = 7, so the answer is 7."] {
        let before = server.counters().await;
        let (over_http, usage) = self_eval(&g, text).await;
        let (in_process, _) = self_eval(&engine(), text).await;
        // Same model, same text, but not the same numbers: Q4 matrix products round
        // differently with the batch's shape. Measured on the first text: the server gives
        // the engine's 0.5011 to 7 digits on a fresh prompt and 0.5227 with 76 of its 77
        // tokens cached; through a session (prefix cached in other pieces) 0.535.
        assert!((over_http - in_process).abs() < 0.05, "{text}: http {over_http} engine {in_process}");
        assert_eq!(usage.scorer_passes, 1);
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
