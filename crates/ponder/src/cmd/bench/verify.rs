//! `ponder bench verify`: math grader checks per second over MATH-500's answer pairs (and
//! the worst case on pathological inputs); sandboxed code checks per second at the pool's
//! default size, on HumanEval's canonical solutions. The data is ponder-eval's, the
//! measuring ponder-verify's.

use anyhow::Result;
use clap::Args as ClapArgs;

use super::report::ReportArgs;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// HumanEval canonical solutions to run in the sandbox
    #[arg(long, default_value_t = 164)]
    pub code_checks: usize,
    #[command(flatten)]
    pub report: ReportArgs,
}

pub fn run(a: Args) -> Result<()> {
    let code_checks = a.code_checks;
    eprintln!("grading MATH-500 answer pairs and pathological inputs ...");
    let math = ponder_verify::math::bench::run(&ponder_eval::tasks::competition::math500_solutions()?);
    eprintln!("running {code_checks} HumanEval canonical solutions in the sandbox ...");
    let code = ponder_verify::code::bench::run(ponder_eval::tasks::code::canonical_checks(code_checks))?;
    let mut table = String::from("| verifier | checks | checks/s | notes |\n|---|---:|---:|---|\n");
    table.push_str(&format!(
        "| math grader (1 thread) | {} | {:.0} | mean {:.1} µs, worst {:.0} µs per check; worst pathological input {:.1} ms |\n",
        math.n_checks,
        math.checks_per_sec,
        math.mean_check_us,
        math.worst_check_us,
        math.pathological.iter().map(|p| p.micros).fold(0.0, f64::max) / 1000.0
    ));
    table.push_str(&format!(
        "| code sandbox (pool of {}) | {} | {:.1} | {} passed; bubblewrap isolation: {} |\n",
        code.n_workers, code.n_checks, code.checks_per_s, code.n_passed, code.isolated
    ));
    a.report.write("verify", &serde_json::json!({ "math": &math, "code": &code }), &table)
}
