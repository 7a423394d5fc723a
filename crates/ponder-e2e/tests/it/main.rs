//! The crates end to end, as a user runs them: `ponder serve`'s gateway over real HTTP on
//! the real engine (SmolLM2-135M, one thread) and on upstreams the tests control
//! (`gateway`), ponder-http's backend against that gateway, directly and through a
//! fault-injecting proxy (`http`); ponder-http against llama.cpp's own `llama-server`
//! (`llama`); and the workspace's tidy rules (`tidy`). One harness serves them all: a
//! loaded engine, shared, gateways on free ports, and llama-servers on the same model.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ponder_engine::{Engine, EngineConfig};
use ponder_server::{AppState, Backend, ServerConfig};

mod gateway;
mod http;
mod llama;
mod tidy;

const MODEL: &str = "smollm2-135m";

/// The default model's GGUF file, fetched on first use.
fn model_path() -> std::path::PathBuf {
    let mut fetcher = ponder_models::Fetcher::from_env().expect("cache dir");
    fetcher.allow_download = true;
    let spec = ponder_models::find(MODEL).expect("registry model");
    fetcher.resolve(&ponder_models::ModelRef::Named(spec)).expect("model is fetchable")
}

/// The default model, loaded once per test binary and shared.
fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            // One thread: tests run in parallel on two cores.
            Engine::load(model_path(), EngineConfig { n_ctx: 8192, n_threads: 1, ..EngineConfig::default() }).expect("model loads")
        })
        .clone()
}

/// A gateway and its state, listening on a free port until the test's runtime ends;
/// returns its base URL (without `/v1`).
async fn start_state(backend: Backend, cfg: ServerConfig) -> (String, Arc<AppState>) {
    let state = Arc::new(AppState::new(backend, MODEL.into(), cfg).expect("valid config"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(ponder_server::serve(listener, state.clone(), std::future::pending()));
    (format!("http://{addr}"), state)
}

/// A gateway on `backend`; returns its base URL.
async fn start_with(backend: Backend, cfg: ServerConfig) -> String {
    start_state(backend, cfg).await.0
}

/// A gateway on the engine; returns its base URL.
async fn start(cfg: ServerConfig) -> String {
    start_with(Backend::Engine(engine()), cfg).await
}
