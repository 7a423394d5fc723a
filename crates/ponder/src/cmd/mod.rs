//! One module per subcommand.

pub mod bench;
pub mod bench_search;
pub mod bench_serve;
pub mod eval;
pub mod flaws;
pub mod grade;
pub mod models;
pub mod plan;
pub mod report;
pub mod runs;
pub mod serve;
pub mod solve;
