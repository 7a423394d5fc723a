//! Judges programs from JSONL: each stdin line is a `CheckRequest`
//! (`{"program": "...", "tests": {"asserts": "..."} | {"io": [{"stdin", "expected_stdout"}]}, "limits": {...}}`),
//! each stdout line its `Outcome`. `--python PATH` picks the interpreter; `--allow-unsandboxed`
//! runs without bubblewrap if it is missing (unsafe).
//!
//!     cargo run --release -p ponder-verify --example code_check < requests.jsonl

use ponder_verify::code::{CheckRequest, Pool, Sandbox, SandboxConfig};
use std::io::BufRead;

fn main() {
    let mut config = SandboxConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--allow-unsandboxed" => config.allow_unsandboxed = true,
            "--python" => config.python = args.next().unwrap_or_default().into(),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let sandbox = Sandbox::new(config).unwrap_or_else(|e| fail(&e.to_string()));
    let pool = Pool::with_default_size(sandbox);
    let requests: Vec<Result<CheckRequest, String>> = std::io::stdin()
        .lock()
        .lines()
        .map(|line| {
            line.map_err(|e| e.to_string())
                .and_then(|l| serde_json::from_str(&l).map_err(|e| e.to_string()))
        })
        .collect();
    let valid: Vec<CheckRequest> = requests
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut outcomes = pool.check_many(valid).into_iter();
    for request in &requests {
        let line = match request {
            Ok(_) => serde_json::to_string(&outcomes.next()), // check_many returns one per request
            Err(e) => serde_json::to_string(
                &serde_json::json!({"status": "invalid_request", "detail": e}),
            ),
        };
        println!("{}", line.unwrap_or_default());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("code_check: error: {message}");
    std::process::exit(2)
}
