//! One module per subcommand.

pub mod bench;
pub mod eval;
pub mod grade;
pub mod models;
pub mod solve;
