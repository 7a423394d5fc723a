//! Math grader throughput: `cargo run --release -p ponder-eval --example math_bench`.
//! Prints checks per second over MATH-500 pairs and the worst time per check on
//! pathological inputs (the same numbers `ponder bench verify` reports).

fn main() {
    match ponder_eval::tasks::competition::math500_solutions() {
        Ok(records) => println!("{}", ponder_verify::math::bench::run(&records)),
        Err(e) => {
            eprintln!("math_bench: error: {e}");
            std::process::exit(1);
        }
    }
}
