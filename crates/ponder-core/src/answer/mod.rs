//! Final answers: extraction from model output, equivalence classes for voting, and tool
//! calls as answers ([`tools`]).
//!
//! Equivalence is pluggable ([`Equivalence`]) so the full math grader (ponder-verify) can
//! replace the v1 numeric rules without touching any strategy.

mod equivalence;
mod extract;
mod latex;
mod pattern;
pub mod tools;

pub use equivalence::{numeric_value, Equivalence, NumericEquivalence, MAX_DIGITS};
pub use extract::extract_answer;
pub use latex::unwrap_wrappers;
pub use pattern::AnswerPattern;
