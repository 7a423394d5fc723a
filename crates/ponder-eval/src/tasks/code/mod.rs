//! HumanEval and MBPP, vendored under `data/` (see the READMEs there for provenance and
//! licences), as [`CodeProblem`]s whose tests are separate statements, so they can be split
//! into a visible half (the verifier) and a hidden half (the truth) for verified resampling:
//! [`visible_tests_verifier`] and [`hidden_tests_checker`] put the halves behind ponder-core's
//! contracts, judged in ponder-verify's sandbox.

mod humaneval;
mod mbpp;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ponder_core::Problem;
use ponder_verify::code::{CheckRequest, Limits, Pool, SandboxChecker, SandboxVerifier, TestSpec, TestsFor};
use serde::{Deserialize, Serialize};

pub use humaneval::humaneval;
pub use mbpp::mbpp;

/// A programming problem with a reference solution and its tests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeProblem {
    /// `HumanEval/0`…, `mbpp/11`…
    pub task_id: String,
    /// What the model sees. HumanEval: signature and docstring, to be continued (the
    /// program is `prompt + completion`). MBPP: the task text and its first test, which
    /// names the function; the first test is always in the visible half.
    pub prompt: String,
    /// The function under test.
    pub entry_point: String,
    /// A complete program that passes every test.
    pub reference_solution: String,
    /// Test code in order: setup statements and test statements.
    pub tests: Vec<TestStatement>,
}

/// One top-level statement of a problem's test code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatement {
    /// Imports, helpers, `candidate = f`: run before every test that follows.
    Setup(String),
    /// A statement containing an `assert`: one test.
    Assert(String),
}

impl CodeProblem {
    pub fn n_tests(&self) -> usize {
        self.tests
            .iter()
            .filter(|t| matches!(t, TestStatement::Assert(_)))
            .count()
    }

    /// All tests, as one [`TestSpec::Asserts`].
    pub fn test_spec(&self) -> TestSpec {
        self.tests_where(|_| true)
    }

    /// A check of `program` against all tests.
    pub fn request(&self, program: impl Into<String>, limits: Limits) -> CheckRequest {
        CheckRequest {
            program: program.into(),
            tests: self.test_spec(),
            limits,
        }
    }

    /// Setup statements plus the tests whose index passes `keep`, in the original order.
    fn tests_where(&self, keep: impl Fn(usize) -> bool) -> TestSpec {
        let mut code = String::new();
        let mut test_idx = 0;
        for statement in &self.tests {
            let text = match statement {
                TestStatement::Setup(text) => Some(text),
                TestStatement::Assert(text) => {
                    test_idx += 1;
                    keep(test_idx - 1).then_some(text)
                }
            };
            if let Some(text) = text {
                code.push_str(text);
                code.push('\n');
            }
        }
        TestSpec::Asserts(code)
    }
}

/// Splits a problem's tests into a visible half (even-numbered tests: 0, 2, 4, …) and a
/// hidden half (odd-numbered), each with all setup statements. Alternating rather than
/// first/second half because test lists tend to go from easy to edge cases. A problem with
/// fewer than two tests (4 in HumanEval, where the asserts sit in one loop) gets its tests
/// in both halves, so its verifier is exact; filter on [`CodeProblem::n_tests`] to leave
/// those out of a false-positive measurement.
pub fn split_tests(problem: &CodeProblem) -> (TestSpec, TestSpec) {
    if problem.n_tests() < 2 {
        return (problem.test_spec(), problem.test_spec());
    }
    (
        problem.tests_where(|i| i % 2 == 0),
        problem.tests_where(|i| i % 2 == 1),
    )
}

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

/// Which half of a problem's tests a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Visible,
    Hidden,
}

/// The checks of one half: `code` written for a HumanEval/MBPP problem on that half's tests.
fn half(half: Half, limits: Limits) -> TestsFor {
    Arc::new(move |problem: &Problem, code: &str| {
        let Some(code_problem) = code_problems().get(&problem.id) else {
            return Err(format!("{} is not a HumanEval or MBPP problem", problem.id));
        };
        let (visible, hidden) = split_tests(code_problem);
        let tests = match half {
            Half::Visible => visible,
            Half::Hidden => hidden,
        };
        Ok(CheckRequest { program: program(code_problem, code), tests, limits: limits.clone() })
    })
}

/// Verifier of verified resampling for HumanEval/MBPP: the candidate's code on the
/// problem's VISIBLE tests (`visible-tests`).
pub fn visible_tests_verifier(pool: Arc<Pool>, limits: Limits) -> SandboxVerifier {
    SandboxVerifier::new("visible-tests", pool, half(Half::Visible, limits))
}

/// The truth for HumanEval/MBPP: the answer's code on the problem's HIDDEN tests.
pub fn hidden_tests_checker(pool: Arc<Pool>, limits: Limits) -> SandboxChecker {
    SandboxChecker::new(pool, half(Half::Hidden, limits))
}

/// `n` checks of HumanEval canonical solutions against all their tests (cycling through
/// the 164 problems): the work `ponder bench verify` times the sandbox on.
pub fn canonical_checks(n: usize) -> Vec<CheckRequest> {
    humaneval().iter().cycle().take(n).map(|p| p.request(p.reference_solution.clone(), Limits::default())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_covers_all_tests() {
        for p in humaneval().iter().chain(&mbpp()) {
            let (visible, hidden) = split_tests(p);
            assert_eq!(split_tests(p), (visible.clone(), hidden.clone()));
            let (TestSpec::Asserts(v), TestSpec::Asserts(h)) = (&visible, &hidden) else {
                panic!("assert specs")
            };
            for (idx, t) in p.tests.iter().enumerate() {
                if let TestStatement::Assert(text) = t {
                    assert!(
                        v.contains(text.as_str()) || h.contains(text.as_str()),
                        "{} test {idx} lost",
                        p.task_id
                    );
                }
            }
            if p.n_tests() >= 2 {
                assert_ne!(v, h, "{}", p.task_id);
            }
        }
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
}
