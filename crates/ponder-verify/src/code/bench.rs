//! Sandbox throughput: checks per second at the pool's default size, on HumanEval
//! canonical solutions (what `ponder bench verify` reports).

use super::{humaneval, pool, Error, Limits, Pool, Sandbox, SandboxConfig};
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

/// Runs `n` checks (HumanEval canonical solutions, cycling) through a default-size pool
/// with the default sandbox. `Err` when the sandbox cannot be created.
pub fn run(n: usize) -> Result<BenchReport, Error> {
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let pool = Pool::new(sandbox, pool::default_size());
    Ok(run_on(&pool, n))
}

/// [`run`] on a given pool.
pub fn run_on(pool: &Pool, n: usize) -> BenchReport {
    let problems = humaneval();
    let requests = problems
        .iter()
        .cycle()
        .take(n)
        .map(|p| p.request(p.reference_solution.clone(), Limits::default()))
        .collect();
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
