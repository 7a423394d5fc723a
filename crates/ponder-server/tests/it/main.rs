//! The gateway over real HTTP on the real engine (SmolLM2-135M, one thread), and on HTTP
//! upstreams that the tests control.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ponder_engine::{Engine, EngineConfig};
use ponder_server::{AppState, Backend, ServerConfig};
use serde_json::{json, Value};

mod charges;
mod errors;
mod gateway;
mod strict;
mod tools;

const MODEL: &str = "smollm2-135m";

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut fetcher = ponder_models::Fetcher::from_env().expect("cache dir");
            fetcher.allow_download = true;
            let spec = ponder_models::find(MODEL).expect("registry model");
            let path = fetcher.resolve(&ponder_models::ModelRef::Named(spec)).expect("model is fetchable");
            // One thread: tests run in parallel on two cores.
            Engine::load(path, EngineConfig { n_ctx: 8192, n_threads: 1, ..EngineConfig::default() }).expect("model loads")
        })
        .clone()
}

/// A gateway on `backend` listening on a free port; runs until the test's runtime ends.
async fn start_with(backend: Backend, cfg: ServerConfig) -> String {
    start_state(backend, cfg).await.0
}

/// A gateway and its state, for tests that look at the keys' accounts.
async fn start_state(backend: Backend, cfg: ServerConfig) -> (String, Arc<AppState>) {
    let state = Arc::new(AppState::new(backend, MODEL.into(), cfg).expect("valid config"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(ponder_server::serve(listener, state.clone(), std::future::pending()));
    (format!("http://{addr}"), state)
}

async fn start(cfg: ServerConfig) -> String {
    start_with(Backend::Engine(engine()), cfg).await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// POSTs JSON, returns (status, body as JSON).
async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = client().post(url).json(body).send().await.expect("request sent");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

fn ask(model: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "messages": [{ "role": "user", "content": "What is 2 + 3?" }],
        "max_tokens": max_tokens,
        "seed": 7,
    })
}

/// An OpenAI-style error body with this status, type and code.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: Option<&str>) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    if let Some(c) = code {
        assert_eq!(e["code"], c, "{v}");
    }
}
