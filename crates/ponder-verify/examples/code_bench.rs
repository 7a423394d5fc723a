//! Sandbox throughput on HumanEval canonical solutions: `cargo run --release -p ponder-verify
//! --example code_bench [N_CHECKS]` prints one JSON `BenchReport`.

fn main() {
    let n_checks = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(328);
    match ponder_verify::code::bench::run(n_checks) {
        Ok(report) => println!("{}", serde_json::json!(report)),
        Err(e) => {
            eprintln!("code_bench: error: {e}");
            std::process::exit(1);
        }
    }
}
