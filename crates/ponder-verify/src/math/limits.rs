//! Every bound that keeps a check finite, in one place.
//!
//! The grader runs in-process on untrusted model output, so nothing may depend on the input
//! being reasonable: lengths, nesting, number sizes and the total work are all capped, and
//! a check that reaches a cap answers (not equivalent, or by text) instead of running on.

/// Longest model output `extract` reads; longer text is cut to its last this many bytes,
/// where final answers live.
pub(crate) const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Longest answer the grader parses; longer answers are compared as normalised text.
pub(crate) const MAX_ANSWER_BYTES: usize = 100_000;

/// Longest answer given to the parser (after normalisation); beyond it, text comparison.
pub(crate) const MAX_PARSE_BYTES: usize = 20_000;

/// Tokens per answer.
pub(crate) const MAX_TOKENS: usize = 10_000;

/// Nesting depth of the parser: brackets, braces, command arguments, exponents and sign
/// chains each count one level (MATH answers nest at most a handful). It also bounds every
/// later recursion over the tree. The deepest accepted answers need under 0.4 MiB of
/// stack (measured, release build); the tests grade them on a 1 MiB thread, half of Rust's and
/// tokio's default thread stack.
pub(crate) const MAX_DEPTH: u32 = 40;

/// Syntax-tree nodes per answer.
pub(crate) const MAX_NODES: u32 = 10_000;

/// Digits in one literal: a longer "number" is not an answer anyone computed by hand.
pub(crate) const MAX_LITERAL_DIGITS: usize = 400;

/// Bits of a numerator or denominator in exact arithmetic; beyond it, floating point.
pub(crate) const MAX_BITS: u64 = 4096;

/// Items in one list, set, tuple or matrix row compared.
pub(crate) const MAX_ITEMS: usize = 256;

/// Units of work per check (one unit is about one node evaluated at one point).
pub(crate) const MAX_STEPS: u64 = 500_000;

/// `±` signs expanded per answer (2^k variants).
pub(crate) const MAX_PLUS_MINUS: u32 = 4;
