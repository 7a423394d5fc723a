//! Fault injection: a proxy between the HTTP backend and a real gateway fails a chosen
//! fraction of generation calls (500, a hang past the timeout, a truncated body, invalid
//! JSON). Results come from the survivors; when every call fails the strategy reports
//! insufficient_candidates; nothing outlives its deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ponder_core::strategy::StrategyError;
use ponder_core::SampleRequest;

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Status500,
    Hang,
    Truncated,
    BadJson,
}

const ALL: [Fault; 4] = [Fault::Status500, Fault::Hang, Fault::Truncated, Fault::BadJson];

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    armed: AtomicBool,
    /// Percentage of generation calls that fail.
    percent: AtomicUsize,
    calls: AtomicUsize,
    failed: AtomicUsize,
    kinds: std::sync::Mutex<Vec<Fault>>,
}

impl Proxy {
    /// Evenly spread failures: call i fails when floor((i+1)p/100) > floor(ip/100).
    fn pick(&self) -> Option<Fault> {
        if !self.armed.load(Ordering::SeqCst) {
            return None;
        }
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        let p = self.percent.load(Ordering::SeqCst);
        if (i + 1) * p / 100 > i * p / 100 {
            let k = self.failed.fetch_add(1, Ordering::SeqCst);
            let kinds = self.kinds.lock().unwrap();
            Some(kinds[k % kinds.len()])
        } else {
            None
        }
    }

    fn arm(&self, percent: usize, kinds: &[Fault]) {
        *self.kinds.lock().unwrap() = kinds.to_vec();
        self.percent.store(percent, Ordering::SeqCst);
        self.calls.store(0, Ordering::SeqCst);
        self.failed.store(0, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 24).await.unwrap_or_default();
    let generation = path.ends_with("/completions") || path.ends_with("/probe");
    let fault = if generation { p.pick() } else { None };
    match fault {
        Some(Fault::Status500) => return (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":{\"message\":\"injected\"}}").into_response(),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(Fault::BadJson) => return (StatusCode::OK, [("content-type", "application/json")], "{\"choices\": [ {\"tex").into_response(),
        _ => {}
    }
    let url = format!("{}{path}", p.upstream);
    let r = p.http.request(method, url).header("content-type", "application/json").body(body).send().await;
    let Ok(r) = r else { return StatusCode::BAD_GATEWAY.into_response() };
    let status = r.status();
    let bytes = r.bytes().await.unwrap_or_default();
    if fault == Some(Fault::Truncated) {
        // The headers promise the whole body; half of it arrives, then the connection breaks.
        let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let parts = futures::stream::unfold(0, move |step| {
            let half = half.clone();
            async move {
                match step {
                    0 => Some((Ok::<_, std::io::Error>(half), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Err(std::io::Error::other("injected truncation")), 2))
                    }
                    _ => None,
                }
            }
        });
        let len = bytes.len().to_string();
        return (StatusCode::OK, [("content-type", "application/json".to_string()), ("content-length", len)], Body::from_stream(parts))
            .into_response();
    }
    (StatusCode::from_u16(status.as_u16()).unwrap(), [("content-type", "application/json")], bytes).into_response()
}

/// A proxy in front of a fresh gateway; returns its `/v1` URL and its controls.
async fn proxy() -> (String, Arc<Proxy>) {
    let upstream = gateway().await;
    let root = upstream.trim_end_matches("/v1").to_string();
    let p = Arc::new(Proxy {
        upstream: root,
        http: reqwest::Client::new(),
        armed: AtomicBool::new(false),
        percent: AtomicUsize::new(0),
        calls: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        kinds: std::sync::Mutex::new(ALL.to_vec()),
    });
    let app = Router::new().fallback(forward).with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), p)
}

/// Parallel single-sample requests (so faults hit samples one by one), no retries, a
/// 3 s attempt timeout.
fn strict(c: &mut HttpConfig) {
    c.use_n = false;
    c.retries = 0;
    c.timeout_ms = 3_000;
    c.deadline_ms = 5_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_decide_when_half_the_calls_fail() {
    let (url, p) = proxy().await;
    let g = connect(&url, strict).await;
    p.arm(50, &ALL);
    let t = Instant::now();
    let o = build("sc", 8, 12).solve(&problem(), &question(), &ctx(&g)).await.unwrap();
    assert_eq!(o.n_failed, 4, "{o:?}");
    assert_eq!(o.candidates.len(), 4);
    assert_eq!(p.failed.load(Ordering::SeqCst), 4);
    // Usage counts the survivors only: failed calls reported nothing.
    assert_eq!(o.usage.completion as usize, o.candidates.iter().map(|c| c.n_tokens).sum::<usize>());
    // The hung call was given up at its timeout, not waited for.
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_kind_alone_leaves_the_survivors() {
    let (url, p) = proxy().await;
    let g = connect(&url, strict).await;
    for kind in ALL {
        p.arm(25, &[kind]);
        let req = SampleRequest { messages: question(), n: 4, params: sampling(8), first_index: 0 };
        let got = g.sample(req).await.unwrap().collect().await.unwrap();
        assert_eq!((got.samples.len(), got.failures.len()), (3, 1), "{kind:?}");
        let msg = got.failures[0].1.to_string();
        let expect = match kind {
            Fault::Status500 => "500",
            Fault::Hang => "deadline",
            Fault::Truncated => "body",
            Fault::BadJson => "invalid JSON",
        };
        assert!(msg.contains(expect) || (kind == Fault::Hang && msg.contains("timed out")), "{kind:?}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_failing_is_insufficient_candidates() {
    let (url, p) = proxy().await;
    let g = connect(&url, strict).await;
    p.arm(100, &[Fault::Status500, Fault::Truncated, Fault::BadJson]);
    for name in ["sc", "adaptive-sc", "bon"] {
        let mut c = ctx(&g);
        let scorer = ponder_core::scorer::MeanLogprob;
        c.scorer = Some(&scorer);
        let e = build(name, 4, 8).solve(&problem(), &question(), &c).await.unwrap_err();
        assert!(matches!(e, StrategyError::InsufficientCandidates { .. }), "{name}: {e}");
        assert!(e.to_string().contains("insufficient_candidates"));
        // And why: the first failure, naming the server.
        assert!(e.to_string().contains("(the first: ") && e.to_string().contains("127.0.0.1"), "{name}: {e}");
    }
    // Through a gateway whose upstream always fails: a 502 that says so.
    let front = gateway_on(Backend::Http(g)).await;
    let r = reqwest::Client::new()
        .post(format!("{front}/chat/completions"))
        .json(&serde_json::json!({ "model": "sc-4:smollm2-135m", "messages": [{ "role": "user", "content": "2+3?" }], "max_tokens": 8 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "insufficient_candidates", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_heal_transient_failures() {
    let (url, p) = proxy().await;
    let g = connect(&url, |c| {
        strict(c);
        c.retries = 2;
        c.backoff_ms = 20;
    })
    .await;
    p.arm(50, &[Fault::Status500, Fault::BadJson, Fault::Truncated]);
    let o = build("sc", 6, 8).solve(&problem(), &question(), &ctx(&g)).await.unwrap();
    assert_eq!((o.candidates.len(), o.n_failed), (6, 0));
    assert!(p.failed.load(Ordering::SeqCst) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_hangs_past_its_deadline() {
    let (url, p) = proxy().await;
    let g = connect(&url, |c| {
        c.use_n = false;
        c.timeout_ms = 400;
        c.deadline_ms = 1_200;
        c.retries = 10;
        c.backoff_ms = 10;
    })
    .await;
    p.arm(100, &[Fault::Hang]);
    let t = Instant::now();
    let req = SampleRequest { messages: question(), n: 3, params: sampling(8), first_index: 0 };
    let got = g.sample(req).await.unwrap().collect().await.unwrap();
    assert_eq!(got.failures.len(), 3);
    assert!(t.elapsed() < Duration::from_millis(2_500), "{:?}", t.elapsed());
    // Step sessions too: an extend fails at the deadline instead of waiting.
    p.armed.store(false, Ordering::SeqCst);
    let mut s = g.open(&question(), 1).await.unwrap();
    p.arm(100, &[Fault::Hang]);
    let t = Instant::now();
    let root = s.root();
    let params = ponder_core::StepParams { sampling: sampling(8), ..ponder_core::StepParams::default() };
    assert!(s.extend(&[root], &params).await.is_err());
    assert!(t.elapsed() < Duration::from_millis(2_500), "{:?}", t.elapsed());
}
