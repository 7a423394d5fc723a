//! Final answers: extraction from model output and equivalence classes for voting.
//!
//! Equivalence is pluggable ([`Equivalence`]) so the full math grader (ponder-verify) can
//! replace the v1 numeric rules without touching any strategy.

mod equivalence;
mod extract;

pub use equivalence::{numeric_value, Equivalence, NumericEquivalence, MAX_DIGITS};
pub use extract::extract_answer;
