//! Sandbox throughput: checks per second at the pool's default size, on checks the caller
//! brings (`ponder bench verify` brings HumanEval's canonical solutions from ponder-eval).

use super::{pool, CheckRequest, Error, Pool, Sandbox, SandboxConfig};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub n_checks: usize,
    pub n_passed: usize,
    pub n_workers: usize,
    /// Whether checks ran under bubblewrap (false only with `allow_unsandboxed`).
    pub isolated: bool,
    pub wall_s: f64,
    pub checks_per_s: f64,
}

/// Runs `requests` through a default-size pool with the default sandbox. `Err` when the
/// sandbox cannot be created.
pub fn run(requests: Vec<CheckRequest>) -> Result<BenchReport, Error> {
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let pool = Pool::new(sandbox, pool::default_size());
    Ok(run_on(&pool, requests))
}

/// [`run`] on a given pool.
pub fn run_on(pool: &Pool, requests: Vec<CheckRequest>) -> BenchReport {
    let n = requests.len();
    let started = Instant::now();
    let outcomes = pool.check_many(requests);
    let wall_s = started.elapsed().as_secs_f64();
    BenchReport {
        n_checks: n,
        n_passed: outcomes.iter().filter(|o| o.is_passed()).count(),
        n_workers: pool.size(),
        isolated: pool.sandbox().is_isolated(),
        wall_s,
        checks_per_s: if wall_s > 0.0 { n as f64 / wall_s } else { 0.0 },
    }
}
