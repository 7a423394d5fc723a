//! `ponder serve` as a real process, and as the client of another `ponder serve` (two
//! processes, real HTTP): self-consistency and a step-wise search end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::*;

/// A running `ponder serve`; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ponder serve ARGS --listen 127.0.0.1:0` and waits for its address.
fn serve(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ponder"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("PONDER_THREADS", "1")
        .env("PONDER_MODEL", FAST_MODEL)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ponder serve starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("on http://").nth(1) {
                let _ = tx.send(Ok(rest.trim_end_matches("/v1").to_string()));
            } else if line.starts_with("ponder: error") {
                let _ = tx.send(Err(line));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(addr)) => Server { child, addr },
        other => {
            let _ = child.kill();
            panic!("ponder serve did not start: {other:?}");
        }
    }
}

/// A minimal HTTP/1.1 client: (status, body).
fn http(addr: &str, method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, after)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            r = &after[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (status, body)
}

fn chat(addr: &str, model: &str, max_tokens: u32) -> serde_json::Value {
    let body = serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?" }],
        "max_tokens": max_tokens,
        "seed": 1,
    });
    let (status, text) = http(addr, "POST", "/v1/chat/completions", Some(&body));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn serve_as_a_client_of_another_serve() {
    let engine = serve(&[]);
    let upstream = format!("http://{}/v1", engine.addr);
    let front = serve(&["--upstream", &upstream]);
    let (status, models) = http(&front.addr, "GET", "/v1/models", None);
    assert_eq!(status, 200);
    assert!(models.contains("smollm2-135m"), "{models}");

    let v = chat(&front.addr, "sc-3:smollm2-135m", 24);
    let p = &v["ponder"];
    assert_eq!(p["strategy"], "sc");
    assert_eq!(p["n_candidates"], 3);
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // A step-wise search: branches continue through the upstream's completions endpoint
    // on prompts it rendered, scored by self-evaluation probes over HTTP.
    let v = chat(&front.addr, "beam-2:smollm2-135m", 24);
    let p = &v["ponder"];
    assert_eq!(p["strategy"], "beam");
    assert!(p["usage"]["scorer_passes"].as_u64().unwrap() > 0, "{v}");
    assert!(p["n_candidates"].as_u64().unwrap() >= 1);

    // The upstream did the work: its metrics count the calls.
    let (_, m) = http(&engine.addr, "GET", "/metrics", None);
    assert!(m.contains("ponder_requests_total{endpoint=\"completions\",status=\"200\"}"), "{m}");
}

#[test]
fn serve_refuses_bad_setups() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[defaults]\nstrategy = \"telepathy\"\n").unwrap();
    assert_fails_with(&ponder(&["serve", "--config", cfg.to_str().unwrap()]), "telepathy");
    assert_fails_with(&ponder(&["serve", "--config", "/nonexistent/ponder.toml"]), "/nonexistent/ponder.toml");
    assert_fails_with(&ponder(&["serve", "--upstream", "http://127.0.0.1:9/v1"]), "127.0.0.1:9");
    assert_fails_with(&ponder(&["serve", "--upstream", "localhost:9"]), "http://");
    assert_fails_with(&ponder(&["serve", "--budget", "0"]), "budget");
}

/// Issue 13: one spec type behind the CLI, the config file and the gateway, so a bad spec
/// gives the same message from each (the gateway's as an OpenAI-shaped 400 naming the field).
#[test]
fn issue13_a_bad_spec_gives_the_same_error_everywhere() {
    let want = "strategy pf: ess_threshold must be in [0, 1], got 2";
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "pf@8{ess_threshold = 2}", "--scorer", "self-eval"]), want);
    assert_fails_with(&ponder(&["eval", "--strategy", "sc,pf@8{ess_threshold = 2}", "--scorer", "self-eval", "--no-store"]), want);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("spec.toml");
    std::fs::write(&cfg, "[defaults]\nstrategy = { strategy = \"pf\", n = 8, ess_threshold = 2.0 }\n").unwrap();
    assert_fails_with(&ponder(&["serve", "--config", cfg.to_str().unwrap()]), want);

    let server = serve(&[]);
    let request = |strategy: serde_json::Value| {
        let body = serde_json::json!({
            "model": FAST_MODEL, "max_tokens": 4,
            "messages": [{"role": "user", "content": "2+2?"}],
            "ponder": {"strategy": strategy, "scorer": "self-eval"},
        });
        let (status, text) = http(&server.addr, "POST", "/v1/chat/completions", Some(&body));
        (status, serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
    };
    for bad in [serde_json::json!({"strategy": "pf", "n": 8, "ess_threshold": 2}), serde_json::json!("pf@8{ess_threshold = 2}")] {
        let (status, v) = request(bad);
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["message"], want, "{v}");
        assert_eq!(v["error"]["param"], "ponder.strategy.ess_threshold", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["code"], "invalid_strategy", "{v}");
    }
    // Every strategy the CLI takes, the gateway takes with its parameters; one it cannot
    // serve (no verifier) is a 400 saying why.
    let (status, v) = request(serde_json::json!({"strategy": "adaptive-sc", "n": 4, "threshold": 0.6, "round_size": 2}));
    assert_eq!(status, 200, "{v}");
    assert!(v["ponder"]["strategy"].as_str().is_some(), "{v}");
    let (status, v) = request(serde_json::json!("bon@2"));
    assert_eq!(status, 200, "self-eval scores bon's candidates in the gateway too: {v}");
    let (status, v) = request(serde_json::json!("verify-resample@2"));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("needs a verifier"), "{v}");
}

/// The gateway's `ponder` object takes the issue-14 strategies like any other.
#[test]
fn rpc_and_adaptive_itc_run_through_the_gateway() {
    let server = serve(&[]);
    for strategy in [serde_json::json!("rpc@2"), serde_json::json!({"strategy": "adaptive-itc", "n": 2, "mode": "prune", "prune_after": 4})] {
        let body = serde_json::json!({
            "model": FAST_MODEL, "max_tokens": 16,
            "messages": [{"role": "user", "content": "2+2?"}],
            "ponder": {"strategy": strategy},
        });
        let (status, text) = http(&server.addr, "POST", "/v1/chat/completions", Some(&body));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
        assert_eq!(status, 200, "{v}");
        let p = &v["ponder"];
        assert_eq!(p["n_candidates"], 2, "{v}");
        if p["strategy"] == "adaptive-itc" {
            assert_eq!(p["usage"]["scorer_passes"], 2 + 1, "both partials, then the survivor: {v}");
        } else {
            assert_eq!(p["strategy"], "rpc", "{v}");
        }
    }
}
