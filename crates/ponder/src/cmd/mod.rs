//! One module per subcommand.

pub mod bench;
pub mod eval;
pub mod flaws;
pub mod grade;
pub mod models;
pub mod plan;
pub mod report;
pub mod runs;
pub mod serve;
pub mod solve;
pub mod strategies;
