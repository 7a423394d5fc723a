//! Math grader throughput: `cargo run --release -p ponder-verify --example math_bench`.
//! Prints checks per second over MATH-500 pairs and the worst time per check on
//! pathological inputs (the same numbers `ponder_verify::math::bench::run` returns).

fn main() {
    let report = ponder_verify::math::bench::run();
    println!("{report}");
}
