//! MBPP (Austin et al. 2021), vendored under `data/mbpp/`: the 500 test problems, tests
//! from `test_list`.

use serde::Deserialize;

use super::{CodeProblem, TestStatement};

const MBPP_TEST_JSONL: &str = include_str!("../../../data/mbpp/mbpp_test.jsonl");

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
}
