//! Sandbox throughput on HumanEval canonical solutions: `cargo run --release -p ponder-eval
//! --example code_bench [N_CHECKS]` prints one JSON `BenchReport`.

fn main() {
    let n_checks = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(328);
    match ponder_verify::code::bench::run(ponder_eval::tasks::code::canonical_checks(n_checks)) {
        Ok(report) => println!("{}", serde_json::json!(report)),
        Err(e) => {
            eprintln!("code_bench: error: {e}");
            std::process::exit(1);
        }
    }
}
