//! HumanEval and MBPP as verifiers: a candidate's code run on a problem's visible tests
//! ([`SandboxVerifier`], what verified resampling sees) or on its hidden tests
//! ([`HiddenTestsChecker`], the truth a run is graded by). The split is [`split_tests`]'s,
//! so a verifier's false-positive rate can be measured from real runs (issue 4).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use ponder_core::answer::Equivalence;
use ponder_core::scorer::ScoreError;
use ponder_core::strategy::Candidate;
use ponder_core::verifier::{Verification, Verifier};
use ponder_core::{Checker, Problem, Usage};

use super::{humaneval, mbpp, split_tests, CheckRequest, CodeProblem, Limits, Outcome, Pool, TestSpec};

/// The id of `problem` as a ponder [`Problem`]: `humaneval/HumanEval/0`, `mbpp/11`.
pub fn problem_id(problem: &CodeProblem) -> String {
    if problem.task_id.starts_with("mbpp/") {
        problem.task_id.clone()
    } else {
        format!("humaneval/{}", problem.task_id)
    }
}

/// Every HumanEval and MBPP problem by [`problem_id`], parsed once.
pub fn code_problems() -> &'static HashMap<String, CodeProblem> {
    static PROBLEMS: OnceLock<HashMap<String, CodeProblem>> = OnceLock::new();
    PROBLEMS.get_or_init(|| humaneval().into_iter().chain(mbpp()).map(|p| (problem_id(&p), p)).collect())
}

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

/// The program to run for `code` written for `problem`. MBPP: the code itself. HumanEval:
/// the prompt followed by the code. When the code defines the entry point itself (a chat
/// model writes the whole function), it goes after the prompt on its own line, so its
/// definition replaces the prompt's body-less one while the prompt's imports and helper
/// functions stay (taking the code alone would lose them: `List` in 30 prompts).
pub fn program(problem: &CodeProblem, code: &str) -> String {
    if problem.task_id.starts_with("mbpp/") {
        return code.to_string();
    }
    if defines(code, &problem.entry_point) {
        format!("{}\n{}\n", problem.prompt, code)
    } else {
        format!("{}{}\n", problem.prompt, code)
    }
}

/// Whether `code` has a top-level `def name(`.
fn defines(code: &str, name: &str) -> bool {
    code.lines().any(|l| {
        l.strip_prefix("def ").or_else(|| l.strip_prefix("async def ")).is_some_and(|rest| {
            rest.strip_prefix(name).is_some_and(|after| after.trim_start().starts_with('('))
        })
    })
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

/// Which half of a problem's tests a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Visible,
    Hidden,
}

/// Checks code answers to HumanEval/MBPP problems in a shared [`Pool`].
#[derive(Clone)]
struct Judge {
    pool: Arc<Pool>,
    limits: Limits,
}

impl Judge {
    fn request(&self, problem: &Problem, code: &str, half: Half) -> Result<CheckRequest, String> {
        let Some(code_problem) = code_problems().get(&problem.id) else {
            return Err(format!("{} is not a HumanEval or MBPP problem", problem.id));
        };
        let (visible, hidden) = split_tests(code_problem);
        let tests: TestSpec = match half {
            Half::Visible => visible,
            Half::Hidden => hidden,
        };
        Ok(CheckRequest { program: program(code_problem, code), tests, limits: self.limits.clone() })
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

/// Verifier of verified resampling for code: the candidate's code on the problem's
/// VISIBLE tests. Checks run on the pool's threads; the async caller waits on a oneshot
/// channel, so no async thread blocks. A sandbox error is an error, not a failed check:
/// counting it as a wrong program would bias the measured rates.
#[derive(Clone)]
pub struct SandboxVerifier {
    judge: Judge,
}

impl SandboxVerifier {
    pub fn new(pool: Arc<Pool>, limits: Limits) -> Self {
        Self { judge: Judge { pool, limits } }
    }
}

#[async_trait]
impl Verifier for SandboxVerifier {
    fn name(&self) -> &str {
        "visible-tests"
    }

    async fn verify(&self, problem: &Problem, candidate: &Candidate) -> Result<Verification, ScoreError> {
        let code = candidate.answer.clone().or_else(|| extract_code(&candidate.text));
        let Some(code) = code else {
            return Ok(Verification { passed: false, detail: "no code".into(), usage: Usage::default() });
        };
        let request = self.judge.request(problem, &code, Half::Visible).map_err(|reason| ScoreError::Unavailable {
            scorer: self.name().into(),
            problem: problem.id.clone(),
            reason,
        })?;
        let (reply, outcome) = futures::channel::oneshot::channel();
        let pool = Arc::clone(&self.judge.pool);
        // A short-lived thread waits on the pool so that the async caller only awaits;
        // `Pool::check` blocks until a worker is free.
        std::thread::Builder::new()
            .name("ponder-verify-wait".into())
            .spawn(move || {
                let _ = reply.send(pool.check(request)); // the caller may have been cancelled
            })
            .map_err(|e| ScoreError::Failed { scorer: "visible-tests".into(), reason: format!("spawning a thread: {e}") })?;
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

/// The truth for code datasets: the answer's code on the problem's HIDDEN tests. Blocks
/// the calling thread for one sandbox check; call it off async threads.
#[derive(Clone)]
pub struct HiddenTestsChecker {
    judge: Judge,
}

impl HiddenTestsChecker {
    pub fn new(pool: Arc<Pool>, limits: Limits) -> Self {
        Self { judge: Judge { pool, limits } }
    }

    /// The sandbox's verdict on `answer` (already extracted code), or why there is none.
    pub fn check(&self, problem: &Problem, answer: &str) -> Result<Outcome, String> {
        let request = self.judge.request(problem, answer, Half::Hidden)?;
        Ok(self.judge.pool.check(request))
    }
}

impl Checker for HiddenTestsChecker {
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
    fn problems_are_found_by_id() {
        let problems = code_problems();
        assert_eq!(problems.len(), 164 + 500);
        assert_eq!(problems["humaneval/HumanEval/0"].entry_point, "has_close_elements");
        assert_eq!(problems["mbpp/11"].entry_point, "remove_Occ");
    }

    #[test]
    fn program_keeps_the_prompt_for_humaneval() {
        let he = &code_problems()["humaneval/HumanEval/0"];
        let body = "    return False\n";
        assert_eq!(program(he, body), format!("{}{body}\n", he.prompt));
        let whole = "def has_close_elements(numbers, threshold):\n    return False\n";
        assert_eq!(program(he, whole), format!("{}\n{whole}\n", he.prompt));
        assert!(!defines("    def has_close_elements(x):", "has_close_elements"));
        assert!(!defines("def has_close_elements_2(x):", "has_close_elements"));
        let mbpp = &code_problems()["mbpp/11"];
        assert_eq!(program(mbpp, "def remove_Occ(s, ch): pass"), "def remove_Occ(s, ch): pass");
    }

    #[test]
    fn code_equivalence_ignores_trailing_space_only() {
        let e = CodeEquivalence;
        assert!(e.equivalent("def f():\n    return 1  \n\n", "def f():\n    return 1"));
        assert!(!e.equivalent("def f():\n    return 1", "def f():\n  return 1"));
    }
}
