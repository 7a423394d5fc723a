//! The `ponder` binary end to end: real model, real downloads, real errors.

use std::process::{Command, Output};

mod cli;
mod eval_store;
mod models_pull;
mod real_models;
mod serve;
mod search;

/// The model tests run on when they do not name one (the product's default is larger).
const FAST_MODEL: &str = "smollm2-135m";

fn ponder(args: &[&str]) -> Output {
    ponder_env(args, &[])
}

fn ponder_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ponder"));
    // One llama.cpp thread per process: tests run in parallel on two cores and spinning
    // OpenMP threads slow down badly when oversubscribed.
    // SmolLM2 wherever a test needs a real model, not a good one; the Qwen tests name theirs.
    cmd.args(args).env("NO_COLOR", "1").env("PONDER_THREADS", "1").env("PONDER_MODEL", FAST_MODEL);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("ponder runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless the command exited non-zero with one `ponder: error:` line containing `needle`.
#[track_caller]
fn assert_fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stdout: {}", stdout(o));
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("ponder: error:")).collect();
    assert_eq!(lines.len(), 1, "want one error line, got stderr: {err}");
    assert!(lines[0].contains(needle), "error {:?} does not mention {needle:?}", lines[0]);
}
