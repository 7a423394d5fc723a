//! HumanEval (Chen et al. 2021), vendored under `data/humaneval/`: 164 problems whose
//! `check(candidate)` is flattened into separate test statements.

use ponder_verify::code::pysrc;
use serde::Deserialize;

use super::{CodeProblem, TestStatement};

const HUMANEVAL_JSONL: &str = include_str!("../../../data/humaneval/HumanEval.jsonl");

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
}
