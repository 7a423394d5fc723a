//! Code answers behind ponder-core's contracts: [`extract_code`] reads the program out of a
//! model's output, [`CodeEquivalence`] groups programs, and the sandbox judges them either
//! as a [`Verifier`] ([`SandboxVerifier`], what verified resampling sees) or as the truth a
//! run is graded by ([`SandboxChecker`]). Which tests a problem's code runs against is the
//! caller's ([`TestsFor`]): ponder-eval's HumanEval/MBPP pass their visible half to the
//! verifier and their hidden half to the checker; `ponder solve --tests FILE` passes a file.

use std::sync::Arc;

use async_trait::async_trait;
use ponder_core::answer::Equivalence;
use ponder_core::scorer::ScoreError;
use ponder_core::strategy::Candidate;
use ponder_core::verifier::{Verification, Verifier};
use ponder_core::{Checker, Problem, Usage};

use super::{CheckRequest, Outcome, Pool};

/// The check a problem's code is judged by: program and tests (with limits), or why the
/// problem has none. Called with the problem and the answer's code (already extracted).
pub type TestsFor = Arc<dyn Fn(&Problem, &str) -> Result<CheckRequest, String> + Send + Sync>;

/// The code in a model's output: the last ```` ```python ```` block (also `py`, `python3`),
/// else the last fenced block of any language, else the whole text. A block the output
/// ends inside (cut at the token limit) counts, up to the end. The text is kept as it is,
/// leading indentation included: a base model continuing a HumanEval prompt writes an
/// indented function body. `None` when there is no code at all.
pub fn extract_code(text: &str) -> Option<String> {
    let mut blocks: Vec<(bool, String)> = Vec::new(); // (is python, code)
    let mut open: Option<(bool, String)> = None;
    for line in text.split_inclusive('\n') {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(lang)) => {
                let lang = lang.trim().to_ascii_lowercase();
                open = Some((matches!(lang.as_str(), "python" | "py" | "python3"), String::new()));
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, code)), None) => code.push_str(line),
            (None, None) => {}
        }
    }
    blocks.extend(open);
    let code = match blocks.iter().rposition(|(python, _)| *python).or(blocks.len().checked_sub(1)) {
        Some(i) => blocks.swap_remove(i).1,
        None => text.to_string(),
    };
    (!code.trim().is_empty()).then_some(code)
}

/// Code answers are grouped by their text with trailing spaces and blank lines dropped:
/// voting over programs is rarely useful, but it must not merge different programs.
#[derive(Debug, Default, Clone, Copy)]
pub struct CodeEquivalence;

impl Equivalence for CodeEquivalence {
    fn key(&self, answer: &str) -> String {
        answer.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
    }
}

/// A few words on an outcome, for [`Verification::detail`].
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Passed => "passed".into(),
        Outcome::Failed { test, .. } => format!("failed test {test}"),
        Outcome::Timeout => "timeout".into(),
        Outcome::MemoryLimit => "memory limit".into(),
        Outcome::OutputLimit => "output limit".into(),
        Outcome::Crashed { exit_code, signal, .. } => match (exit_code, signal) {
            (_, Some(s)) => format!("crashed (signal {s})"),
            (Some(c), None) => format!("crashed (exit code {c})"),
            (None, None) => "crashed".into(),
        },
        Outcome::SandboxError { detail } => format!("sandbox error: {detail}"),
    }
}

/// A verifier for verified resampling: the candidate's code run on the tests [`TestsFor`]
/// gives (for a dataset, the problem's VISIBLE tests). Checks run on the pool's threads;
/// the async caller waits on a oneshot channel, so no async thread blocks. A sandbox error
/// is an error, not a failed check: counting it as a wrong program would bias the measured
/// rates.
#[derive(Clone)]
pub struct SandboxVerifier {
    name: String,
    pool: Arc<Pool>,
    tests: TestsFor,
}

impl SandboxVerifier {
    /// `name` is what [`Verifier::name`] reports: `visible-tests`, `tests`.
    pub fn new(name: impl Into<String>, pool: Arc<Pool>, tests: TestsFor) -> Self {
        Self { name: name.into(), pool, tests }
    }
}

#[async_trait]
impl Verifier for SandboxVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(&self, problem: &Problem, candidate: &Candidate) -> Result<Verification, ScoreError> {
        let code = candidate.answer.clone().or_else(|| extract_code(&candidate.text));
        let Some(code) = code else {
            return Ok(Verification { passed: false, detail: "no code".into(), usage: Usage::default() });
        };
        let request = (self.tests)(problem, &code).map_err(|reason| ScoreError::Unavailable {
            scorer: self.name().into(),
            problem: problem.id.clone(),
            reason,
        })?;
        let (reply, outcome) = futures::channel::oneshot::channel();
        let pool = Arc::clone(&self.pool);
        // A short-lived thread waits on the pool so that the async caller only awaits;
        // `Pool::check` blocks until a worker is free.
        std::thread::Builder::new()
            .name("ponder-verify-wait".into())
            .spawn(move || {
                let _ = reply.send(pool.check(request)); // the caller may have been cancelled
            })
            .map_err(|e| ScoreError::Failed { scorer: self.name().into(), reason: format!("spawning a thread: {e}") })?;
        let started = std::time::Instant::now();
        let outcome = outcome
            .await
            .map_err(|_| ScoreError::Failed { scorer: self.name().into(), reason: "the check was dropped".into() })?;
        if let Outcome::SandboxError { detail } = &outcome {
            return Err(ScoreError::Failed { scorer: self.name().into(), reason: format!("sandbox error: {detail}") });
        }
        Ok(Verification {
            passed: outcome.is_passed(),
            detail: describe(&outcome),
            usage: Usage { wall_ms: started.elapsed().as_millis() as u64, ..Usage::default() },
        })
    }
}

/// The truth for code answers: the answer's code on the tests [`TestsFor`] gives (for a
/// dataset, the problem's HIDDEN tests). Blocks the calling thread for one sandbox check;
/// call it off async threads.
#[derive(Clone)]
pub struct SandboxChecker {
    pool: Arc<Pool>,
    tests: TestsFor,
}

impl SandboxChecker {
    pub fn new(pool: Arc<Pool>, tests: TestsFor) -> Self {
        Self { pool, tests }
    }

    /// The sandbox's verdict on `answer` (already extracted code), or why there is none.
    pub fn check(&self, problem: &Problem, answer: &str) -> Result<Outcome, String> {
        let request = (self.tests)(problem, answer)?;
        Ok(self.pool.check(request))
    }
}

impl Checker for SandboxChecker {
    fn is_correct(&self, problem: &Problem, answer: Option<&str>) -> bool {
        answer.is_some_and(|code| self.check(problem, code).is_ok_and(|o| o.is_passed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Option<&str>) {
        assert_eq!(extract_code(text).as_deref(), expected, "text: {text:?}");
    }

    #[test]
    fn extract_code_cases() {
        check("Here:\n```python\ndef f():\n    return 1\n```\nDone.", Some("def f():\n    return 1\n"));
        // The last python block wins over a later block in another language.
        check("```python\na = 1\n```\n```python\nb = 2\n```\n```text\nout\n```", Some("b = 2\n"));
        // Any fenced block when none is python.
        check("```\nx = 3\n```", Some("x = 3\n"));
        check("```py\nx = 4\n```", Some("x = 4\n"));
        // Cut off at the token limit inside the block.
        check("```python\ndef g():\n    return", Some("def g():\n    return"));
        // No fence: the text itself, indentation kept (a base model's body).
        check("    return a + b\n", Some("    return a + b\n"));
        check("   \n", None);
        check("```python\n```", None);
    }

    #[test]
    fn code_equivalence_ignores_trailing_space_only() {
        let e = CodeEquivalence;
        assert!(e.equivalent("def f():\n    return 1  \n\n", "def f():\n    return 1"));
        assert!(!e.equivalent("def f():\n    return 1", "def f():\n  return 1"));
    }
}
