//! Prints sample `arith` problems per level: `cargo run --release -p ponder-eval --example arith_samples`.

fn main() {
    for level in ponder_eval::tasks::arith::LEVELS {
        for p in ponder_eval::tasks::arith::generate(level, 0, 4).expect("levels come from LEVELS") {
            println!("[{}] {}\n   steps {:?} gold {}", p.id, p.question, p.steps, p.gold);
        }
    }
}
