//! Math answer grading: pure Rust, in-process, bounded time, never panics.
//!
//! 1 [`extract`] the final answer from a model output (boxed, "final answer is", `####`,
//!   math spans, choice letters, last number).
//! 2 normalise both answers (wrappers, `\left`/`\right`, `\text{}`, degrees, percent,
//!   currency, thousands separators, spacing, digits of other scripts); multiple-choice
//!   letters compare as letters.
//! 3 parse each into a small expression tree (hand-written recursive descent with a depth
//!   limit).
//! 4 compare, gold first: identical text; exact rational arithmetic (sizes capped); else
//!   floating point at seeded random points within a relative tolerance; tuples, intervals,
//!   sets, lists, matrices, equations, inequalities, `\pm`; then units: two different
//!   units (`6 \text{ minutes}`, `6 \text{ hours}`) are two different answers.
//!
//! Every check is bounded: inputs are capped in length (100 kB), the parser in depth and
//! size, exact numbers in bits, and all evaluation draws from a fixed work budget (the
//! private `limits` module lists every cap). Reaching a cap yields a verdict
//! ([`Reason::TooLarge`]), never a hang or a panic. No threads, no signals.
//!
//! Conventions worth knowing (each is a choice a grader has to make):
//! - gold first: an inequality gold (`x > 2`) accepts an interval (`(2, \infty)`); an
//!   interval gold rejects an inequality unless [`GraderOptions::interval_accepts_inequality`];
//! - `x = 3`, `(p, q) = (3, 2)`, `|AB| = 4` grade as their value; `7 = 11a + c` does not;
//!   `a = b = c` grades as its last `=` value;
//! - lists and sets are unordered and duplicates collapse; a tuple against a set compares in
//!   written order; brackets of intervals must match;
//! - `50\%` matches `50` and `0.5`; a rounded decimal does not answer an exact gold
//!   (`0.33` is not `\frac13`, issue 17) unless it agrees to the comparison tolerance
//!   (about six significant digits), while a decimal gold accepts the exact value it rounds
//!   (`0.33` gold, `\frac13` pred); `0.\overline{3}` is `\frac13`;
//! - a unit on one side only is presentation; units are not converted;
//! - `0^0` is undefined, so it equals nothing but itself;
//! - `1,234` is one number only when no space follows the comma (`1, 234` is a list);
//!   `2,74` may be a decimal comma when the other side is a number;
//! - `15\frac{39}{40}` is a mixed number; `\log` is natural; `i` is a variable.
//!
//! ```
//! use ponder_verify::math::{extract, grade};
//! let pred = extract("... so the answer is $\\boxed{\\dfrac{1}{2}}$.").unwrap();
//! assert!(grade("0.5", &pred).equivalent);
//! assert!(grade("x > 2", "(2, \\infty)").equivalent);
//! assert!(!grade("(2, \\infty)", "x > 2").equivalent); // interval gold: interval wanted
//! ```

pub mod bench;
mod choice;
mod compare;
mod eval;
mod extract;
mod lex;
mod limits;
mod normalize;
mod parse;
mod render;
mod rewrite;
mod units;

use std::fmt;

use ponder_core::answer::Equivalence;
use serde::Serialize;

pub use extract::extract;

use choice::Choice;
use compare::{answers, Ctx};
use limits::{MAX_ANSWER_BYTES, MAX_PARSE_BYTES, MAX_STEPS};
use parse::Node;

/// Why the grader decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The same answer after normalisation (or the same text answer).
    SameText,
    /// Equal as exact rationals (elementwise for collections).
    Exact,
    /// Equal in floating point at every sample point, within the relative tolerance.
    Numeric,
    /// One side is a decimal that is the other rounded to its written places.
    Rounded,
    /// Both parse, and the values differ.
    Different,
    /// The answers have different shapes (a tuple and a number, lengths, brackets).
    ShapeMismatch,
    /// One side could not be parsed, and the texts differ.
    Unparsed,
    /// No sample point where both sides were defined and finite.
    Undecided,
    /// An input or the work budget exceeded its limit.
    TooLarge,
    /// An answer is empty.
    Empty,
    /// No answer could be extracted from the model output.
    NoAnswer,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SameText => "same_text",
            Reason::Exact => "exact",
            Reason::Numeric => "numeric",
            Reason::Rounded => "rounded",
            Reason::Different => "different",
            Reason::ShapeMismatch => "shape_mismatch",
            Reason::Unparsed => "unparsed",
            Reason::Undecided => "undecided",
            Reason::TooLarge => "too_large",
            Reason::Empty => "empty",
            Reason::NoAnswer => "no_answer",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The grader's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub equivalent: bool,
    pub reason: Reason,
}

impl Verdict {
    fn new(equivalent: bool, reason: Reason) -> Verdict {
        Verdict { equivalent, reason }
    }
}

/// Knobs of the comparison. The defaults suit MATH-style grading.
#[derive(Debug, Clone, PartialEq)]
pub struct GraderOptions {
    /// Relative tolerance of floating-point comparison.
    pub rel_tol: f64,
    /// Sample points for expressions with free variables.
    pub n_points: usize,
    /// Seed of the sample points (fixed, so verdicts are reproducible).
    pub seed: u64,
    /// A gold decimal with at least this many places accepts a non-decimal pred that
    /// rounds to it (gold `0.33`, pred `\frac13`: the question asked for a rounded value);
    /// `None` turns this off.
    pub min_rounded_decimals: Option<u32>,
    /// A pred decimal with at least this many places matches a non-decimal gold that
    /// rounds to it (gold `\frac13`, pred `0.33`). Off by default: a rounded decimal is not
    /// the exact answer (issue 17). Math-Verify's `precision` below 6 is this option.
    pub rounded_pred_decimals: Option<u32>,
    /// A percent on one side matches the plain number or the fraction on the other
    /// (`50\%` ≡ `50` ≡ `0.5`); when false, only the plain number.
    pub percent_matches_fraction: bool,
    /// An interval gold accepts an inequality pred (`[1, 2]` vs `1 \le x \le 2`). An
    /// inequality gold always accepts the interval.
    pub interval_accepts_inequality: bool,
    /// Work units per check (see the `limits` module).
    pub max_steps: u64,
}

impl Default for GraderOptions {
    fn default() -> Self {
        GraderOptions {
            rel_tol: 1e-6,
            n_points: 6,
            seed: 0x5e_ed0f_9a7e,
            min_rounded_decimals: Some(2),
            rounded_pred_decimals: None,
            percent_matches_fraction: true,
            interval_accepts_inequality: false,
            max_steps: MAX_STEPS,
        }
    }
}

/// Grades answers under fixed [`GraderOptions`].
#[derive(Debug, Clone, Default)]
pub struct Grader {
    options: GraderOptions,
}

/// A normalised, parsed answer (or why not).
enum Prepared {
    /// The tree and the canonical units written after its values.
    Parsed(Node, Vec<String>),
    /// Could not be parsed: the canonical text stands in.
    Unparsed,
    Empty,
    TooLarge,
}

impl Grader {
    pub fn new(options: GraderOptions) -> Grader {
        Grader { options }
    }

    pub fn options(&self) -> &GraderOptions {
        &self.options
    }

    /// Whether `pred` is an acceptable answer where `gold` is correct. Both are answers,
    /// not whole model outputs (see [`Grader::grade_output`]). The gold goes first: the
    /// relation is not symmetric (see the `compare` module: interval vs inequality).
    pub fn grade(&self, gold: &str, pred: &str) -> Verdict {
        if gold.len() > MAX_ANSWER_BYTES || pred.len() > MAX_ANSWER_BYTES {
            return Verdict::new(gold.trim() == pred.trim(), Reason::TooLarge);
        }
        let gc = normalize::clean(gold);
        let pc = normalize::clean(pred);
        if gc.is_empty() || pc.is_empty() {
            return Verdict::new(false, Reason::Empty);
        }
        if normalize::canonical_text(&gc) == normalize::canonical_text(&pc) {
            return Verdict::new(true, Reason::SameText);
        }
        match (choice::choice(&gc), choice::choice(&pc)) {
            (Some(g), Some(p)) if g.marked || p.marked => {
                let reason = if g.letter == p.letter { Reason::SameText } else { Reason::Different };
                return Verdict::new(g.letter == p.letter, reason);
            }
            // `\textbf{(D)}\ 24` against `24`: the option's value.
            (Some(Choice { value: Some(v), .. }), None) => return self.grade(&v, pred),
            (None, Some(Choice { value: Some(v), .. })) => return self.grade(gold, &v),
            _ => {}
        }
        let g = prepare(&gc);
        let p = prepare(&pc);
        let ((g, g_units), (p, p_units)) = match (g, p) {
            (Prepared::Parsed(g, gu), Prepared::Parsed(p, pu)) => ((g, gu), (p, pu)),
            (Prepared::TooLarge, _) | (_, Prepared::TooLarge) => return Verdict::new(false, Reason::TooLarge),
            (Prepared::Empty, _) | (_, Prepared::Empty) => return Verdict::new(false, Reason::Empty),
            _ => return Verdict::new(false, Reason::Unparsed),
        };
        let mut cx = Ctx::new(&self.options);
        match answers(&mut cx, &g, &p) {
            Ok(o) if o.equal && !units::compatible(&g_units, &p_units) => Verdict::new(false, Reason::Different),
            Ok(o) => Verdict::new(o.equal, o.reason),
            Err(_) => Verdict::new(false, Reason::TooLarge),
        }
    }

    /// Extracts the answer from a whole model output, then grades it against `gold`.
    pub fn grade_output(&self, gold: &str, output: &str) -> Verdict {
        match extract(output) {
            Some(pred) => self.grade(gold, &pred),
            None => Verdict::new(false, Reason::NoAnswer),
        }
    }

    /// A canonical key: answers with equal keys are equivalent (the converse need not
    /// hold: gold `0.33` accepts `\frac13` by rounding but they key apart, and so do `6`
    /// and `6 \text{ min}`). Numbers key by their exact value (`\frac{1}{2}`, `0.5`, `1/2`
    /// → `1/2`), lists and sets sorted, a unit after the value, a choice by its letter.
    pub fn key(&self, answer: &str) -> String {
        if answer.len() > MAX_ANSWER_BYTES {
            return answer.trim().to_string();
        }
        let cleaned = normalize::clean(answer);
        if let Some(c) = choice::choice(&cleaned) {
            return format!("({})", c.letter);
        }
        match prepare(&cleaned) {
            Prepared::Parsed(node, units) => {
                let mut cx = Ctx::new(&self.options);
                let key = render::key(&mut cx, &node).unwrap_or_else(|_| normalize::canonical_text(&cleaned));
                if units.is_empty() {
                    key
                } else {
                    format!("{key} [{}]", units.join(", "))
                }
            }
            _ => normalize::canonical_text(&cleaned),
        }
    }
}

impl Prepared {
    #[cfg(test)]
    fn parsed(&self) -> Option<&Node> {
        match self {
            Prepared::Parsed(n, _) => Some(n),
            _ => None,
        }
    }
}

fn prepare(cleaned: &str) -> Prepared {
    if cleaned.is_empty() {
        return Prepared::Empty;
    }
    if cleaned.len() > MAX_PARSE_BYTES {
        return Prepared::TooLarge;
    }
    match lex::lex(cleaned).map_err(|_| parse::ParseError).and_then(parse::parse_with_units) {
        Ok((node, units)) => Prepared::Parsed(node, units),
        Err(_) => Prepared::Unparsed,
    }
}

/// [`Grader::grade`] with default options.
pub fn grade(gold: &str, pred: &str) -> Verdict {
    Grader::default().grade(gold, pred)
}

/// The grader as a voting [`Equivalence`]: `key` is [`Grader::key`], `equivalent` is
/// [`Grader::grade`] (gold first).
#[derive(Debug, Clone, Default)]
pub struct MathEquivalence {
    grader: Grader,
}

impl MathEquivalence {
    pub fn new(grader: Grader) -> MathEquivalence {
        MathEquivalence { grader }
    }
}

impl Equivalence for MathEquivalence {
    fn key(&self, answer: &str) -> String {
        self.grader.key(answer)
    }

    fn equivalent(&self, gold: &str, pred: &str) -> bool {
        self.grader.grade(gold, pred).equivalent
    }
}

#[cfg(test)]
mod tests;
