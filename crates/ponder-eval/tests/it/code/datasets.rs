//! The vendored datasets through the pool: reference solutions pass, perturbed ones fail,
//! and both halves of the visible/hidden split pass for the reference.

use ponder_eval::tasks::code::{humaneval, mbpp, split_tests, CodeProblem};
use ponder_verify::code::{CheckRequest, Limits, Outcome};

use super::{sandbox, shared_pool};

/// These tests are about verdicts, not speed: generous limits keep them green on a loaded
/// machine (mbpp/123 alone needs 4 s of CPU).
fn generous() -> Limits {
    Limits {
        wall_ms: 120_000,
        cpu_s: 60,
        ..Limits::default()
    }
}

/// MBPP reference solutions that fail their own tests, with the reason.
const MBPP_KNOWN_FAILURES: &[(&str, &str)] = &[];

fn failures(problems: &[CodeProblem], outcomes: &[Outcome]) -> Vec<String> {
    problems
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| !o.is_passed())
        .map(|(p, o)| format!("{}: {o:?}", p.task_id))
        .collect()
}

#[test]
fn humaneval_canonical_solutions_pass() {
    let problems = humaneval();
    let requests = problems
        .iter()
        .map(|p| p.request(p.reference_solution.clone(), generous()))
        .collect();
    let outcomes = shared_pool().check_many(requests);
    let failed = failures(&problems, &outcomes);
    assert!(
        failed.is_empty(),
        "{} canonical solutions failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn humaneval_split_halves_pass_for_canonical_solutions() {
    let problems = humaneval();
    let requests: Vec<CheckRequest> = problems
        .iter()
        .flat_map(|p| {
            let (visible, hidden) = split_tests(p);
            [visible, hidden].map(|tests| CheckRequest {
                program: p.reference_solution.clone(),
                tests,
                limits: generous(),
            })
        })
        .collect();
    let outcomes = shared_pool().check_many(requests);
    let failed: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_passed())
        .map(|(i, o)| {
            format!(
                "{} {}: {o:?}",
                problems[i / 2].task_id,
                ["visible", "hidden"][i % 2]
            )
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Wraps the entry point so its result is off: numbers +1, booleans negated, strings,
/// lists and tuples get an extra element, dicts an extra key, None becomes 0.
const PERTURBATION: &str = r#"

def _ponder_perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + '?'
    if isinstance(value, list):
        return value + [None]
    if isinstance(value, tuple):
        return value + (None,)
    if isinstance(value, dict):
        return {**value, '?': None}
    if value is None:
        return 0
    return value

_ponder_original = ENTRY_POINT

def ENTRY_POINT(*args, **kwargs):
    return _ponder_perturb(_ponder_original(*args, **kwargs))
"#;

pub(crate) fn perturbed(problem: &CodeProblem) -> String {
    format!(
        "{}{}",
        problem.reference_solution,
        PERTURBATION.replace("ENTRY_POINT", &problem.entry_point)
    )
}

#[test]
fn humaneval_perturbed_solutions_fail() {
    let problems = humaneval();
    let requests = problems
        .iter()
        .map(|p| p.request(perturbed(p), Limits::default()))
        .collect();
    let outcomes = shared_pool().check_many(requests);
    let still_passing: Vec<&str> = problems
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_passed())
        .map(|(p, _)| p.task_id.as_str())
        .collect();
    // A failure must come from the tests (or a perturbed recursion running away), not from
    // a broken wrapper or the sandbox.
    let not_failed: Vec<String> = problems
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| {
            !matches!(
                o,
                Outcome::Passed | Outcome::Failed { .. } | Outcome::Timeout
            )
        })
        .map(|(p, o)| format!("{}: {o:?}", p.task_id))
        .collect();
    assert!(not_failed.is_empty(), "{}", not_failed.join("\n"));
    eprintln!("perturbed solutions still passing: {still_passing:?}");
    let n_failing = problems.len() - still_passing.len();
    assert!(
        n_failing * 100 >= problems.len() * 95,
        "only {n_failing}/{} perturbed solutions fail; passing: {still_passing:?}",
        problems.len()
    );
}

#[test]
fn mbpp_perturbed_solutions_fail() {
    let problems = mbpp();
    let requests = problems
        .iter()
        .map(|p| p.request(perturbed(p), Limits::default()))
        .collect();
    let outcomes = shared_pool().check_many(requests);
    let still_passing: Vec<&str> = problems
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_passed())
        .map(|(p, _)| p.task_id.as_str())
        .collect();
    // mbpp/473 and /490 return sets, which the perturbation leaves alone.
    assert_eq!(still_passing, ["mbpp/473", "mbpp/490"]);
    let not_failed: Vec<String> = problems
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| {
            !matches!(
                o,
                Outcome::Passed | Outcome::Failed { .. } | Outcome::Timeout
            )
        })
        .map(|(p, o)| format!("{}: {o:?}", p.task_id))
        .collect();
    assert!(not_failed.is_empty(), "{}", not_failed.join("\n"));
}

#[test]
fn mbpp_reference_solutions_pass() {
    let problems = mbpp();
    let requests = problems
        .iter()
        .map(|p| p.request(p.reference_solution.clone(), generous()))
        .collect();
    let outcomes = shared_pool().check_many(requests);
    let mut unexpected = Vec::new();
    for (p, o) in problems.iter().zip(&outcomes) {
        let known = MBPP_KNOWN_FAILURES.iter().any(|(id, _)| *id == p.task_id);
        if o.is_passed() == known {
            unexpected.push(format!("{} (known failure: {known}): {o:?}", p.task_id));
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}

/// Forged before (issue 17): HumanEval/38's tests encode with the program's
/// `encode_cyclic`, so a program that remembers what it encoded could decode anything.
#[test]
fn humaneval_helpers_are_the_prompts_not_the_programs() {
    let problem = &humaneval()[38];
    let program = format!(
        "{}    return seen.get(s, s)\n\nseen = {{}}\ndef encode_cyclic(s):\n    seen[s[::-1]] = s\n    return s[::-1]\n",
        problem.prompt
    );
    let outcome = sandbox().check(&problem.request(program, Limits::default()));
    assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
}
