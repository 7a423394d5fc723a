//! The task families: vendored benchmarks and generated tasks.

pub mod arith;
pub mod code;
pub mod competition;
pub mod gsm8k;
pub mod jsonl;
