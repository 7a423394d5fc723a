//! ponder-verify: what "correct" means. A math answer grader (pure Rust, bounded time,
//! never panics) and a code sandbox (bubblewrap, resource limits, a pool).

pub mod code;
pub mod math;
