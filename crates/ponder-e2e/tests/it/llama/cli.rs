//! `ponder eval --upstream` against a real llama-server: the run's stored usage is what the
//! server counted (a fleet of them: `fleet.rs`).

use std::process::{Command, Output};

use serde_json::Value;

use super::*;
use crate::http::connect;

/// The `ponder` binary of this build: beside the test binary's `deps/` folder (`cargo test
/// --workspace` builds it before any test runs).
pub(super) fn ponder_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target/<profile>/deps").join("ponder");
    assert!(bin.exists(), "{} is not built: run the workspace's tests (cargo test --workspace) or cargo build -p ponder", bin.display());
    bin
}

/// `ponder eval` on `upstreams` (with `extra` arguments), in a blocking task; its JSON records.
pub(super) async fn eval(upstreams: &[String], store: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let json = store.with_extension("json");
    let mut args: Vec<String> = ["eval", "--dataset", "arith:1", "--strategy", "sc", "--budget", "3", "--max-tokens", "48"].map(String::from).to_vec();
    for u in upstreams {
        args.extend(["--upstream".to_string(), u.clone()]);
    }
    args.extend(["--store".to_string(), store.display().to_string(), "--json".to_string(), json.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let out = tokio::task::spawn_blocking(move || Command::new(ponder_bin()).args(&args).envs(env).output().expect("ponder runs"))
        .await
        .unwrap();
    let records = std::fs::read_to_string(&json).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    (out, records)
}

/// The summed usage of every record of the first strategy.
pub(super) fn summed(v: &Value) -> Usage {
    let mut u = Usage::default();
    for r in v[0]["records"].as_array().expect("records") {
        u += serde_json::from_value::<Usage>(r["usage"].clone()).expect("a usage");
    }
    u
}

pub(super) fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_over_llama_server_stores_what_the_server_counted() {
    let server = LlamaServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // What connecting costs (the capability checks generate a token or two): the run pays
    // it once more before its first unit, outside any unit's usage.
    let c0 = server.counters().await;
    drop(connect(&server.url(), |_| {}).await);
    let c1 = server.counters().await;
    let connecting = c0.until(c1);
    let (out, v) = eval(&[server.url()], &dir.path().join("runs.sqlite"), &["--limit", "4"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let server_side = c1.until(server.counters().await);
    let ponder = summed(&v);
    assert_eq!(v[0]["records"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(ponder.unreported, 0, "{ponder:?}");
    assert!(ponder.completion > 0);
    // Prompt tokens as computed + cached: the split moves with the server's cache, the sum does not.
    let prompt = |u: &Usage| u.prompt_computed + u.prompt_reused;
    assert_eq!(prompt(&ponder) + prompt(&connecting), prompt(&server_side), "ponder {ponder:?} server {server_side:?}");
    assert_eq!(ponder.completion + connecting.completion, server_side.completion, "ponder {ponder:?} server {server_side:?}");
}
