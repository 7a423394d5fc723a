//! HumanEval and MBPP, vendored under `data/` (see the READMEs there for provenance and
//! licences), as [`CodeProblem`]s whose tests are separate statements, so they can be split
//! into a visible half (the verifier) and a hidden half (the truth) for verified resampling.

use super::pysrc;
use super::{CheckRequest, Limits, TestSpec};
use serde::{Deserialize, Serialize};

const HUMANEVAL_JSONL: &str = include_str!("../../data/humaneval/HumanEval.jsonl");
const MBPP_TEST_JSONL: &str = include_str!("../../data/mbpp/mbpp_test.jsonl");

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

#[derive(Deserialize)]
struct HumanEvalRecord {
    task_id: String,
    prompt: String,
    canonical_solution: String,
    test: String,
    entry_point: String,
}

/// The 164 HumanEval problems, with `check(candidate)` flattened into test statements.
pub fn humaneval() -> Vec<CodeProblem> {
    HUMANEVAL_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // The vendored file is fixed and covered by tests: a parse failure is a build bug.
            let r: HumanEvalRecord =
                serde_json::from_str(line).expect("vendored HumanEval.jsonl is valid");
            let mut tests = trusted_helpers(&r.prompt, &r.entry_point, &r.test);
            tests.extend(flatten_check(&r.test, &r.entry_point));
            CodeProblem {
                tests,
                reference_solution: format!("{}{}", r.prompt, r.canonical_solution),
                task_id: r.task_id,
                prompt: r.prompt,
                entry_point: r.entry_point,
            }
        })
        .collect()
}

/// The prompt's helper functions the tests call (`poly` in HumanEval/32, `encode_cyclic`
/// in /38, `encode_shift` in /50), with the prompt's imports, as setup: the tests then use
/// the prompt's own definitions, not the program's. Otherwise a program could redefine
/// `encode_cyclic` as the identity, remember its argument, and hand it back from
/// `decode_cyclic`. Empty for prompts whose helpers the tests do not use.
fn trusted_helpers(prompt: &str, entry_point: &str, test: &str) -> Vec<TestStatement> {
    let mut imports = Vec::new();
    let mut helpers = Vec::new();
    for statement in pysrc::statements(prompt) {
        if statement.starts_with("import ") || statement.starts_with("from ") {
            imports.push(TestStatement::Setup(statement));
            continue;
        }
        let used = statement
            .strip_prefix("def ")
            .and_then(|rest| rest.split('(').next())
            .map(str::trim)
            .is_some_and(|name| name != entry_point && pysrc::has_word(test, name));
        if used {
            helpers.push(TestStatement::Setup(statement));
        }
    }
    if helpers.is_empty() {
        return helpers;
    }
    imports.extend(helpers);
    imports
}

/// `def check(candidate): <body>` becomes `candidate = <entry_point>` followed by the
/// body's statements at top level; code outside `check` (METADATA, helpers) is setup.
fn flatten_check(test: &str, entry_point: &str) -> Vec<TestStatement> {
    let mut out = Vec::new();
    for statement in pysrc::statements(test) {
        let Some(rest) = statement.strip_prefix("def check(") else {
            out.push(TestStatement::Setup(statement));
            continue;
        };
        let param = rest.split(')').next().unwrap_or("candidate").trim();
        out.push(TestStatement::Setup(format!("{param} = {entry_point}")));
        let body = statement.split_once('\n').map_or("", |(_, body)| body);
        let body = pysrc::dedent(body, pysrc::first_indent(body));
        for inner in pysrc::statements(&body) {
            out.push(classify(inner));
        }
    }
    out.retain(|s| !is_trivial_assert(s));
    out
}

fn classify(statement: String) -> TestStatement {
    if pysrc::has_keyword(&statement, "assert") {
        TestStatement::Assert(statement)
    } else {
        TestStatement::Setup(statement)
    }
}

/// HumanEval's `assert True, "This prints if this assert fails…"`: tests nothing.
fn is_trivial_assert(statement: &TestStatement) -> bool {
    let TestStatement::Assert(text) = statement else {
        return false;
    };
    text.strip_prefix("assert True")
        .is_some_and(|rest| rest.is_empty() || rest.trim_start().starts_with(','))
}

#[derive(Deserialize)]
struct MbppRecord {
    task_id: u64,
    text: String,
    code: String,
    test_setup_code: String,
    test_list: Vec<String>,
}

/// The 500 MBPP test problems (task_id 11–510), tests from `test_list`.
pub fn mbpp() -> Vec<CodeProblem> {
    MBPP_TEST_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // The vendored file is fixed and covered by tests: a parse failure is a build bug.
            let r: MbppRecord =
                serde_json::from_str(line).expect("vendored mbpp_test.jsonl is valid");
            let code = r.code.replace("\r\n", "\n").replace('\r', "\n");
            let tests: Vec<String> = r
                .test_list
                .iter()
                .map(|t| t.replace("\r\n", "\n").replace('\r', "\n"))
                .collect();
            let first_test = tests.first().cloned().unwrap_or_default();
            let entry_point = mbpp_entry_point(&code, &first_test);
            let mut statements = Vec::new();
            if PYTHON_BUILTINS.contains(&entry_point.as_str()) {
                // The tests' `sum` would be Python's (see `TestSpec::Asserts`): name the program's.
                statements.push(TestStatement::Setup(format!(
                    "{entry_point} = program.{entry_point}"
                )));
            }
            let setup = r.test_setup_code.replace("\r\n", "\n").replace('\r', "\n");
            if !setup.trim().is_empty() {
                statements.push(TestStatement::Setup(setup));
            }
            statements.extend(tests.into_iter().map(TestStatement::Assert));
            CodeProblem {
                task_id: format!("mbpp/{}", r.task_id),
                prompt: format!(
                    "{}\nYour code should pass this test:\n{first_test}\n",
                    r.text.trim()
                ),
                entry_point,
                reference_solution: code,
                tests: statements,
            }
        })
        .collect()
}

/// Names of Python's builtins (3.11, without exceptions and site's additions).
const PYTHON_BUILTINS: &[&str] = &[
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
];

/// The function the first test calls that the reference defines; else the first defined.
fn mbpp_entry_point(code: &str, first_test: &str) -> String {
    let defined: Vec<&str> = code
        .lines()
        .filter_map(|l| l.strip_prefix("def "))
        .filter_map(|l| l.split('(').next())
        .map(str::trim)
        .collect();
    let called = first_test
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '('))
        .filter_map(|word| word.split_once('(').map(|(name, _)| name))
        .find(|name| defined.contains(name));
    called
        .or(defined.first().copied())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humaneval_loads_and_flattens() {
        let problems = humaneval();
        assert_eq!(problems.len(), 164);
        for p in &problems {
            assert!(p.n_tests() >= 1, "{} has no tests", p.task_id);
            assert!(p
                .tests
                .iter()
                .any(|t| *t == TestStatement::Setup(format!("candidate = {}", p.entry_point))));
        }
        let total: usize = problems.iter().map(CodeProblem::n_tests).sum();
        // Python's ast counts 1133 assert-bearing statements inside check() that are not
        // `assert True` (48 of those are dropped).
        assert_eq!(total, 1133);
    }

    #[test]
    fn prompt_helpers_the_tests_call_are_trusted_setup() {
        let problems = humaneval();
        let with_helpers: Vec<&str> = problems
            .iter()
            .filter(|p| {
                let helper = |t: &TestStatement| matches!(t, TestStatement::Setup(s) if s.starts_with("def "));
                p.tests.iter().take_while(|t| **t != TestStatement::Setup(format!("candidate = {}", p.entry_point))).any(helper)
            })
            .map(|p| p.task_id.as_str())
            .collect();
        assert_eq!(
            with_helpers,
            ["HumanEval/32", "HumanEval/38", "HumanEval/50"]
        );
        let he32 = &problems[32];
        assert!(he32
            .tests
            .contains(&TestStatement::Setup("import math".into())));
        assert!(he32
            .tests
            .iter()
            .any(|t| matches!(t, TestStatement::Setup(s) if s.starts_with("def poly("))));
    }

    #[test]
    fn mbpp_builtin_named_entry_point_is_the_programs() {
        let problems = mbpp();
        let sum = problems
            .iter()
            .find(|p| p.task_id == "mbpp/126")
            .expect("mbpp/126 is vendored");
        assert_eq!(
            sum.tests[0],
            TestStatement::Setup("sum = program.sum".into())
        );
        let n_bound = problems
            .iter()
            .filter(|p| matches!(&p.tests[0], TestStatement::Setup(s) if s.contains("= program.")))
            .count();
        assert_eq!(n_bound, 1);
    }

    #[test]
    fn mbpp_loads_with_entry_points() {
        let problems = mbpp();
        assert_eq!(problems.len(), 500);
        assert_eq!(problems[0].task_id, "mbpp/11");
        assert_eq!(problems[0].entry_point, "remove_Occ");
        assert!(problems
            .iter()
            .all(|p| p.n_tests() == 3 && !p.entry_point.is_empty()));
        assert!(problems
            .iter()
            .all(|p| !p.reference_solution.contains('\r')));
    }

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
}
