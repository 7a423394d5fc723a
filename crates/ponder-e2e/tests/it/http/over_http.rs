//! Sampling, strategies and step-wise sessions over real HTTP against `ponder serve`.

use std::time::Instant;

use ponder_core::{FinishReason, GenError, SampleRequest, StepParams};
use ponder_http::{Api, ProbeMode, StepMode};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_detected() {
    let url = gateway().await;
    let g = connect(&url, |_| {}).await;
    let c = g.caps();
    assert_eq!(c.model, MODEL);
    assert!(c.chat && c.completions && c.n && c.chat_logprobs && c.completion_logprobs && c.template && c.ponder, "{c:?}");
    assert_eq!(c.probe, ProbeMode::Ponder);
    assert_eq!(g.step_mode(), StepMode::Completions);
    assert_eq!(g.info().context_len, 8192);
    // A model the server does not have, an address nothing listens on: clear errors.
    let mut cfg = HttpConfig::single(&url);
    cfg.model = Some("gpt-17".into());
    let e = HttpGenerator::connect(cfg).await.err().unwrap().to_string();
    assert!(e.contains("gpt-17") && e.contains(MODEL), "{e}");
    let mut cfg = HttpConfig::single("http://127.0.0.1:9/v1");
    cfg.probe_timeout_ms = 2000;
    let e = HttpGenerator::connect(cfg).await.err().unwrap().to_string();
    assert!(e.contains("127.0.0.1:9"), "{e}");
    assert!(HttpGenerator::connect(HttpConfig::single("ftp://x")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_with_n_and_in_parallel() {
    let url = gateway().await;
    for use_n in [true, false] {
        let g = connect(&url, |c| c.use_n = use_n).await;
        let req = SampleRequest { messages: question(), n: 3, params: sampling(16), first_index: 0 };
        let got = g.sample(req).await.unwrap().collect().await.unwrap();
        assert_eq!(got.samples.len(), 3, "use_n {use_n}");
        assert!(got.failures.is_empty());
        let sum: usize = got.samples.iter().map(|s| s.n_tokens).sum();
        assert_eq!(got.usage.completion as usize, sum);
        assert!(got.samples.iter().all(|s| s.token_logprobs.len() == s.n_tokens && s.n_tokens > 0));
        // Token bytes travel through the gateway's chat logprobs and spell the text.
        for s in &got.samples {
            assert_eq!(s.token_bytes.len(), s.n_tokens, "{s:?}");
            assert_eq!(s.token_bytes.concat(), s.text.as_bytes(), "{s:?}");
        }
        assert_eq!(got.samples.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    }
    // The raw completions endpoint.
    let g = connect(&url, |_| {}).await.with_api(Api::Completions).unwrap();
    let req = SampleRequest { messages: vec![Message::user("The capital of France is")], n: 2, params: sampling(6), first_index: 0 };
    let got = g.sample(req).await.unwrap().collect().await.unwrap();
    assert_eq!(got.samples.len(), 2);
    assert!(got.samples.iter().all(|s| s.finish == FinishReason::Length || s.n_tokens < 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_run_over_http() {
    let url = gateway().await;
    let g = connect(&url, |_| {}).await;
    for name in ["sc", "adaptive-sc", "bon"] {
        let s = build(name, 3, 16);
        let mut c = ctx(&g);
        let scorer = ponder_core::scorer::MeanLogprob;
        c.scorer = Some(&scorer);
        let o = s.solve(&problem(), &question(), &c).await.unwrap();
        assert!(!o.candidates.is_empty() && o.candidates.len() <= 3, "{name}");
        assert_eq!(o.usage.completion as usize, o.candidates.iter().map(|c| c.n_tokens).sum::<usize>(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_stream_stops_the_rest() {
    let url = gateway().await;
    let g = connect(&url, |c| c.use_n = false).await;
    let req = SampleRequest { messages: question(), n: 6, params: SamplingParams { ignore_eos: true, ..sampling(48) }, first_index: 0 };
    let t = Instant::now();
    let mut stream = g.sample(req).await.unwrap();
    let first = stream.next().await.unwrap();
    assert!(first.is_ok());
    stream.cancel();
    let usage = stream.finish().await.unwrap();
    assert!(usage.completion >= 48);
    assert!(t.elapsed().as_secs() < 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_sessions_over_http() {
    let url = gateway().await;
    let g = connect(&url, |_| {}).await;
    let mut s = g.open(&question(), 5).await.unwrap();
    let root = s.root();
    let kids = s.fork(root, 2).await.unwrap();
    assert_eq!(kids.len(), 2);
    let params = StepParams { sampling: sampling(48), delimiter: Some(" ".into()), max_step_tokens: 8, max_total_tokens: 24 };
    let steps = s.extend(&kids, &params).await.unwrap();
    assert_eq!(steps.len(), 2);
    for st in &steps {
        assert!(st.n_tokens > 0 && st.n_tokens <= 8, "{st:?}");
        if st.finish == FinishReason::StepEnd {
            assert!(st.text.ends_with(' ') || st.n_tokens == 8, "{st:?}");
        }
    }
    let u1 = s.usage();
    assert_eq!(u1.completion as usize, steps.iter().map(|s| s.n_tokens).sum::<usize>());
    // Extend once more, then roll back to the first step's boundary and go on.
    let first = steps[0].n_tokens;
    let more = s.extend(&kids[..1], &params).await.unwrap();
    if !steps[0].is_final() && more[0].n_tokens > 0 {
        s.rollback(kids[0], first).await.unwrap();
    }
    let again = s.extend(&kids[..1], &params).await.unwrap();
    assert_eq!(again.len(), 1);
    // Probes: one log-probability per candidate per branch.
    let (lps, pu) = s.probe(&kids, "\nIs this right? Answer Yes or No:", &[" Yes".into(), " No".into()]).await.unwrap();
    assert_eq!(lps.len(), 2);
    assert!(lps.iter().all(|r| r.len() == 2 && r.iter().all(|x| *x <= 0.0)));
    assert!(pu.prompt_computed + pu.prompt_reused > 0);
    s.append(kids[1], " The answer is 5.").await.unwrap();
    // Released branches are unknown.
    s.release(&kids).await.unwrap();
    assert!(matches!(s.extend(&kids, &params).await, Err(GenError::UnknownBranch(_))));
    assert!(matches!(s.fork(kids[0], 1).await, Err(GenError::UnknownBranch(_))));
}

/// Chat requests a gateway answered so far.
async fn chat_requests(v1: &str) -> u64 {
    let root = v1.trim_end_matches("/v1");
    let m = reqwest::get(format!("{root}/metrics")).await.unwrap().text().await.unwrap();
    m.lines()
        .filter(|l| l.starts_with("ponder_requests_total{endpoint=\"chat\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_endpoints_keep_a_prompt_on_one() {
    let (a, b) = (gateway().await, gateway().await);
    let mut cfg = HttpConfig::single(&a);
    cfg.endpoints.push(ponder_http::EndpointConfig::new(&b));
    cfg.use_n = false;
    let g = HttpGenerator::connect(cfg).await.unwrap();
    for (k, q) in ["What is 2 + 3?", "What is 7 - 4?", "Name a colour."].into_iter().enumerate() {
        let before = (chat_requests(&a).await, chat_requests(&b).await);
        let req = SampleRequest { messages: vec![Message::user(q)], n: 4, params: sampling(6), first_index: 0 };
        let got = g.sample(req).await.unwrap().collect().await.unwrap();
        assert_eq!(got.samples.len(), 4);
        let after = (chat_requests(&a).await, chat_requests(&b).await);
        let delta = (after.0 - before.0, after.1 - before.1);
        assert!(delta == (4, 0) || delta == (0, 4), "prompt {k}: all samples on one endpoint, got {delta:?}");
    }
}
