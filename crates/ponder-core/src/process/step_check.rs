//! An exact step checker for problems that know their intermediate results
//! ([`Problem::steps`], as the generated arithmetic task records them).
//!
//! Reads every equation `a op b = c` in the partial solution: each must be arithmetically
//! true, and their results, in order, must be the reference intermediate results so far.
//! A stated final answer ("The answer is N") must be the gold answer. The score of the
//! newest step is 1 when the whole partial passes, else 0: a perfect verifier, to separate
//! search quality from scorer quality.

use async_trait::async_trait;

use super::{Partial, ProcessScorer};
use crate::generator::StepSession;
use crate::scorer::{ScoreError, Scores};
use crate::{Problem, Usage};

#[derive(Debug, Clone, Copy, Default)]
pub struct StepCheck;

/// Whether `text` is a correct partial (or complete) solution of `problem`.
pub fn check_chain(problem: &Problem, text: &str) -> bool {
    let mut expected = problem.steps.iter();
    for eq in equations(text) {
        if !eq.holds() {
            return false;
        }
        match expected.next() {
            Some(want) if parse_int(want) == Some(eq.result) => {}
            _ => return false,
        }
    }
    match stated_answer(text) {
        Some(a) => parse_int(&problem.gold) == Some(a),
        None => true,
    }
}

fn parse_int(s: &str) -> Option<i128> {
    s.trim().replace(',', "").parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Equation {
    /// `None` when the left side is not a simple `a op b`: only the result is checked.
    lhs: Option<(i128, char, i128)>,
    result: i128,
}

impl Equation {
    fn holds(&self) -> bool {
        let Some((a, op, b)) = self.lhs else { return true };
        let v = match op {
            '+' => a.checked_add(b),
            '-' => a.checked_sub(b),
            '*' | 'x' | '×' => a.checked_mul(b),
            '/' | '÷' => (b != 0 && a % b == 0).then(|| a / b),
            _ => None,
        };
        v == Some(self.result)
    }
}

/// The number at the start of `s` (digits with optional thousands commas), and its length.
fn leading_number(s: &str) -> Option<(i128, usize)> {
    let mut digits = String::new();
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() {
            digits.push(c);
            end = i + 1;
        } else if c == ',' && !digits.is_empty() && s[i + 1..].starts_with(|d: char| d.is_ascii_digit()) {
            end = i + 1;
        } else {
            break;
        }
    }
    digits.parse().ok().map(|n| (n, end))
}

/// The number at the end of `s`, ignoring trailing spaces.
fn trailing_number(s: &str) -> Option<(i128, usize)> {
    let t = s.trim_end();
    let start = t.rfind(|c: char| !(c.is_ascii_digit() || c == ',')).map_or(0, |i| i + t[i..].chars().next().map_or(1, char::len_utf8));
    let digits: String = t[start..].chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok().map(|n| (n, start))
}

fn equations(text: &str) -> Vec<Equation> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices('=') {
        let Some((result, _)) = leading_number(text[i + 1..].trim_start()) else { continue };
        let left = &text[..i];
        let lhs = trailing_number(left).and_then(|(b, at)| {
            let before = left[..at].trim_end();
            let op = before.chars().next_back()?;
            if !"+-*x×/÷".contains(op) {
                return None;
            }
            let (a, _) = trailing_number(&before[..before.len() - op.len_utf8()])?;
            Some((a, op, b))
        });
        out.push(Equation { lhs, result });
    }
    out
}

/// N in the last "answer is N".
fn stated_answer(text: &str) -> Option<i128> {
    let lower = text.to_ascii_lowercase();
    let at = lower.rfind("answer is")?;
    leading_number(text[at + "answer is".len()..].trim_start()).map(|(n, _)| n)
}

#[async_trait]
impl ProcessScorer for StepCheck {
    fn name(&self) -> &str {
        "step-check"
    }

    fn needs_session(&self) -> bool {
        false
    }

    async fn score_steps(
        &self,
        problem: &Problem,
        partials: &[Partial<'_>],
        _session: Option<&mut dyn StepSession>,
    ) -> Result<Scores, ScoreError> {
        if problem.steps.is_empty() {
            return Err(ScoreError::Unavailable {
                scorer: "step-check".into(),
                problem: problem.id.clone(),
                reason: "it has no reference steps (only the generated arithmetic task has them)".into(),
            });
        }
        let values = partials.iter().map(|p| if check_chain(problem, &p.text()) { 1.0 } else { 0.0 }).collect();
        // No model runs, but each partial checked is one pass of the judge.
        Ok(Scores { values, usage: Usage { scorer_passes: partials.len() as u64, ..Usage::default() } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            id: "t".into(),
            question: "Tom has 3 apples. He buys 4 more, then gives 2 away.".into(),
            gold: "5".into(),
            level: Some(2),
            steps: vec!["7".into(), "5".into()],
        }
    }

    #[test]
    fn accepts_the_right_chain_step_by_step() {
        let p = problem();
        assert!(check_chain(&p, "Tom starts with 3 apples."));
        assert!(check_chain(&p, "Tom starts with 3 apples.\n\nAfter buying 4 more he has 3 + 4 = 7."));
        assert!(check_chain(&p, "3 + 4 = 7.\n\n7 - 2 = 5.\n\nThe answer is 5."));
        assert!(check_chain(&p, "3+4=7, then 7-2=5. The answer is 5."));
    }

    #[test]
    fn rejects_wrong_arithmetic_wrong_results_and_wrong_answers() {
        let p = problem();
        assert!(!check_chain(&p, "3 + 4 = 8."), "false equation");
        assert!(!check_chain(&p, "3 * 4 = 12."), "true but not the reference result");
        assert!(!check_chain(&p, "3 + 4 = 7. 7 - 2 = 5. 5 + 1 = 6."), "more results than steps");
        assert!(!check_chain(&p, "3 + 4 = 7. 7 - 2 = 5. The answer is 7."), "wrong final answer");
        assert!(!check_chain(&p, "The answer is 4."));
        assert!(!check_chain(&p, "12 / 5 = 2"), "inexact division");
    }

    #[test]
    fn parses_numbers_with_commas_and_unusual_operators() {
        let p = Problem { steps: vec!["1,200".into()], gold: "1200".into(), ..problem() };
        assert!(check_chain(&p, "400 × 3 = 1,200. The answer is 1,200."));
        assert!(!check_chain(&p, "400 x 3 = 1,300."));
    }
}
