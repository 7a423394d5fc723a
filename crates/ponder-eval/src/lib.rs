//! ponder-eval: datasets and evaluation.
//!
//! A [`Dataset`] is problems plus the checker that grades answers to them. [`load`] turns
//! a spec such as `gsm8k` or `arith:3` into one, and [`prompt`] turns a problem into
//! messages. Every dataset lives here, under `data/` with its provenance, and its loader
//! under [`tasks`]. Data is compiled in (`include_str!`) or generated, so loading does no I/O,
//! except that the code datasets (`humaneval`, `mbpp`) start a sandbox pool to grade with
//! and `jsonl:PATH` reads its file.
//!
//! Evaluation, end to end: [`runs`] loads a run's problems, plans its units and reopens a
//! stored run to resume it; [`runner`] runs units (problem × strategy × budget × seed) and
//! persists each in the [`store`] (SQLite) as it completes; [`summary`] gives what
//! `ponder eval` prints and writes (one accuracy computation, [`analysis::Counts`]), with
//! the verifier measurement of [`flaws`] and the agreement between strategies;
//! [`runs::Plan`] builds each strategy from its spec; [`analysis`] summarises a stored run,
//! [`curves`] computes pass@k / maj@k / best-of-k curves from its samples, [`cost`] adds
//! FLOPs, prices and cost-of-pass, [`report`] writes HTML/Markdown/CSV, [`plan`] fits a
//! compute-optimal policy that strategy `auto` (ponder-core) applies.

pub mod analysis;
pub mod cost;
pub mod coverage;
pub mod curves;
pub mod flaws;
mod error;
pub mod plan;
mod prompt;
pub mod report;
pub mod runner;
pub mod runs;
pub mod store;
pub mod summary;
pub mod tasks;

use std::fmt;
use std::sync::Arc;

use ponder_core::answer::{extract_answer, Equivalence, NumericEquivalence};
use ponder_core::verifier::Verifier;
use ponder_core::{Checker, GoldChecker, Problem};
use ponder_verify::code::{extract_code, CodeEquivalence, Limits, Pool, Sandbox, SandboxConfig};
use ponder_verify::math::MathEquivalence;

pub use error::Error;
pub use prompt::{Example, PromptFormat, PromptTemplate, BUILTIN_NAMES as BUILTIN_PROMPTS};

/// The specs [`load`] understands, for error messages and `--help`.
pub const KNOWN_SPECS: &str =
    "gsm8k, math500, aime24, aime25, humaneval, mbpp, arith (level 2), arith:LEVEL (1-5), arith:LEVEL:COUNT, \
     jsonl:PATH (one {\"id\", \"question\", \"answer\", \"level\"?} object per line); any of them followed by \
     [FROM..TO] or [FROM..] takes those problems in the dataset's order";

/// Generated problems per `arith` dataset unless the spec gives a count.
pub const DEFAULT_GENERATED: usize = 500;

/// The most problems one `arith` spec may ask for.
pub const MAX_GENERATED: usize = 100_000;

/// The `arith` level when the spec gives none.
pub const DEFAULT_ARITH_LEVEL: u32 = 2;

/// Problems and the checker that grades answers to them.
#[derive(Clone)]
pub struct Dataset {
    /// The canonical spec: `gsm8k`, `arith:2`.
    pub name: String,
    pub problems: Vec<Problem>,
    pub checker: Arc<dyn Checker>,
    /// Reads the final answer out of a model's output.
    pub extract: fn(&str) -> Option<String>,
    /// Groups answers for voting; the checker follows the same rules.
    pub equivalence: Arc<dyn Equivalence>,
    /// What the answers are; picks the default prompt ([`PromptTemplate::default_for`]).
    pub kind: Kind,
    /// A cheaper, fallible check than `checker`, for verified resampling: for code, the
    /// problem's visible tests while `checker` runs the hidden ones. `None` for datasets
    /// without one.
    pub verifier: Option<Arc<dyn Verifier>>,
}

/// What a dataset's answers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A final answer (number, expression) graded against `gold`.
    Answer,
    /// A Python program graded by running tests in the sandbox.
    Code,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("name", &self.name)
            .field("n_problems", &self.problems.len())
            .finish_non_exhaustive()
    }
}

/// How [`load_with`] treats bad input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Leave out rows of a `jsonl:` file that do not parse (they are returned in
    /// [`LoadedDataset::skipped`]) instead of failing.
    pub skip_bad_rows: bool,
    /// Code datasets: run the programs without isolation when bubblewrap cannot isolate
    /// (unsafe: they run with the caller's privileges), as `ponder grade code` allows.
    pub allow_unsandboxed: bool,
}

/// A dataset and the rows of its file that were skipped.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    pub dataset: Dataset,
    pub skipped: Vec<tasks::jsonl::BadRow>,
}

/// The dataset named by `spec` (see [`KNOWN_SPECS`]). `seed` picks the generated problems
/// of `arith`; `gsm8k` ignores it and keeps the file's order. A bad row of a `jsonl:`
/// file is an error.
pub fn load(spec: &str, seed: u64) -> Result<Dataset, Error> {
    load_with(spec, seed, LoadOptions::default()).map(|l| l.dataset)
}

/// [`load`] with options: `jsonl:PATH` files may have their bad rows skipped, code
/// datasets may run unsandboxed.
pub fn load_with(spec: &str, seed: u64, options: LoadOptions) -> Result<LoadedDataset, Error> {
    let spec = spec.trim();
    if let Some((base, range)) = slice_of(spec)? {
        let mut loaded = load_with(base, seed, options)?;
        let n = loaded.dataset.problems.len();
        let (from, to) = (range.0.min(n), range.1.map_or(n, |t| t.min(n)));
        if from >= to {
            return Err(Error::BadSlice { spec: spec.to_string(), reason: format!("it selects none of {n} problems") });
        }
        loaded.dataset.problems = loaded.dataset.problems[from..to].to_vec();
        loaded.dataset.name = spec.to_string();
        return Ok(loaded);
    }
    if let Some(path) = spec.strip_prefix("jsonl:") {
        let loaded = tasks::jsonl::load(std::path::Path::new(path), options.skip_bad_rows)?;
        return Ok(LoadedDataset { dataset: math(spec, loaded.problems), skipped: loaded.skipped });
    }
    load_builtin(spec, seed, options).map(|dataset| LoadedDataset { dataset, skipped: Vec::new() })
}

/// FROM and, if given, TO of a dataset slice.
type Slice = (usize, Option<usize>);

/// `SPEC[FROM..TO]` or `SPEC[FROM..]`: problems FROM (inclusive) to TO (exclusive) in the
/// dataset's order, so a held-out half can be named (`gsm8k[100..200]`).
fn slice_of(spec: &str) -> Result<Option<(&str, Slice)>, Error> {
    let Some(inner) = spec.strip_suffix(']') else { return Ok(None) };
    let Some((base, range)) = inner.rsplit_once('[') else { return Ok(None) };
    let bad = |reason: &str| Error::BadSlice { spec: spec.to_string(), reason: reason.to_string() };
    let (from, to) = range.split_once("..").ok_or_else(|| bad("write [FROM..TO] or [FROM..]"))?;
    let from: usize = if from.is_empty() { 0 } else { from.trim().parse().map_err(|_| bad("FROM is not a number"))? };
    let to: Option<usize> = if to.is_empty() { None } else { Some(to.trim().parse().map_err(|_| bad("TO is not a number"))?) };
    if to.is_some_and(|t| t <= from) {
        return Err(bad("TO must be greater than FROM"));
    }
    Ok(Some((base, (from, to))))
}

/// A digest of the problems (ids, questions, golds, levels, in order): a resumed run
/// checks that it still evaluates the same problems.
pub fn fingerprint(problems: &[Problem]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in problems {
        for field in [p.id.as_str(), p.question.as_str(), p.gold.as_str()] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        h.update(p.level.map_or(u64::MAX, u64::from).to_le_bytes());
    }
    hex::encode(h.finalize())
}

fn load_builtin(spec: &str, seed: u64, options: LoadOptions) -> Result<Dataset, Error> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        ["gsm8k"] => Ok(numeric("gsm8k", tasks::gsm8k::test()?)),
        ["math500"] => Ok(math("math500", tasks::competition::math500()?)),
        ["aime24"] => Ok(math("aime24", tasks::competition::aime24()?)),
        ["aime25"] => Ok(math("aime25", tasks::competition::aime25()?)),
        ["humaneval"] => code_dataset("humaneval", tasks::code::humaneval(), options),
        ["mbpp"] => code_dataset("mbpp", tasks::code::mbpp(), options),
        ["arith"] => arith(DEFAULT_ARITH_LEVEL, DEFAULT_GENERATED, seed),
        ["arith", level] => arith(parse_level(level)?, DEFAULT_GENERATED, seed),
        ["arith", level, count] => arith(parse_level(level)?, parse_count(count)?, seed),
        _ => Err(Error::UnknownDataset { spec: spec.to_string() }),
    }
}

fn arith(level: u32, count: usize, seed: u64) -> Result<Dataset, Error> {
    Ok(numeric(&format!("arith:{level}"), tasks::arith::generate(level, seed, count)?))
}

/// Integer golds (GSM8K, arith): the v1 extraction and numeric equivalence, which is
/// integer equality that accepts `1,234`, `$12` and `12 apples`.
fn numeric(name: &str, problems: Vec<Problem>) -> Dataset {
    Dataset {
        name: name.into(),
        problems,
        checker: Arc::new(GoldChecker(NumericEquivalence)),
        extract: extract_answer,
        equivalence: Arc::new(NumericEquivalence),
        kind: Kind::Answer,
        verifier: None,
    }
}

/// Competition math: ponder-verify's grader (expressions, intervals, sets, ...).
fn math(name: &str, problems: Vec<Problem>) -> Dataset {
    Dataset {
        name: name.into(),
        problems,
        checker: Arc::new(GoldChecker(MathEquivalence::default())),
        extract: ponder_verify::math::extract,
        equivalence: Arc::new(MathEquivalence::default()),
        kind: Kind::Answer,
        verifier: None,
    }
}

/// HumanEval/MBPP: the question is the problem's prompt (HumanEval: signature and
/// docstring; MBPP: the task and its first test), gold is the problem id, answers are the
/// code in the output, graded on the hidden tests, verified on the visible ones; both
/// share one sandbox pool of the default size. Fails when the sandbox cannot isolate,
/// unless `options.allow_unsandboxed`.
fn code_dataset(name: &str, problems: Vec<tasks::code::CodeProblem>, options: LoadOptions) -> Result<Dataset, Error> {
    let config = SandboxConfig { allow_unsandboxed: options.allow_unsandboxed, ..SandboxConfig::default() };
    let pool = Arc::new(Pool::with_default_size(Sandbox::new(config)?));
    let problems = problems
        .iter()
        .map(|p| {
            let id = tasks::code::problem_id(p);
            Problem { question: p.prompt.clone(), gold: id.clone(), id, level: None, steps: Vec::new() }
        })
        .collect();
    Ok(Dataset {
        name: name.into(),
        problems,
        checker: Arc::new(tasks::code::hidden_tests_checker(Arc::clone(&pool), Limits::default())),
        extract: extract_code,
        equivalence: Arc::new(CodeEquivalence),
        kind: Kind::Code,
        verifier: Some(Arc::new(tasks::code::visible_tests_verifier(pool, Limits::default()))),
    })
}

fn parse_level(level: &str) -> Result<u32, Error> {
    level
        .trim()
        .parse()
        .ok()
        .filter(|l| tasks::arith::LEVELS.contains(l))
        .ok_or_else(|| Error::LevelOutOfRange { level: level.to_string() })
}

fn parse_count(count: &str) -> Result<usize, Error> {
    count
        .trim()
        .parse()
        .ok()
        .filter(|c| (1..=MAX_GENERATED).contains(c))
        .ok_or_else(|| Error::CountOutOfRange { count: count.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_core::answer::extract_answer;

    fn check_err(spec: &str, expected: &str) {
        let err = load(spec, 0).expect_err(spec);
        assert_eq!(err.to_string(), expected, "spec: {spec:?}");
    }

    #[test]
    fn specs() {
        let d = load("arith", 7).unwrap();
        assert_eq!((d.name.as_str(), d.problems.len()), ("arith:2", DEFAULT_GENERATED));
        assert!(d.problems.iter().all(|p| p.level == Some(2)));
        let d = load("arith:4", 7).unwrap();
        assert_eq!((d.name.as_str(), d.problems.len()), ("arith:4", DEFAULT_GENERATED));
        let d = load("arith:1:12", 7).unwrap();
        assert_eq!((d.name.as_str(), d.problems.len()), ("arith:1", 12));
        assert_eq!(d.problems[3].id, "arith-l1/7/3");
        let d = load(" gsm8k ", 7).unwrap();
        assert_eq!((d.name.as_str(), d.problems.len()), ("gsm8k", tasks::gsm8k::N_TEST));
    }

    #[test]
    fn load_errors_name_the_bad_value() {
        let known = format!("known: {KNOWN_SPECS}");
        check_err("math5000", &format!("unknown dataset `math5000`; {known}"));
        check_err("", &format!("unknown dataset ``; {known}"));
        check_err("arith:1:2:3", &format!("unknown dataset `arith:1:2:3`; {known}"));
        check_err("arith:0", "arith level must be an integer from 1 to 5, got `0`");
        check_err("arith:6", "arith level must be an integer from 1 to 5, got `6`");
        check_err("arith:x", "arith level must be an integer from 1 to 5, got `x`");
        check_err("arith:2:0", "arith problem count must be an integer from 1 to 100000, got `0`");
        check_err("arith:2:many", "arith problem count must be an integer from 1 to 100000, got `many`");
    }

    #[test]
    fn code_datasets_grade_in_the_sandbox() {
        for (spec, n, first) in [("humaneval", 164, "humaneval/HumanEval/0"), ("mbpp", 500, "mbpp/11")] {
            let d = load(spec, 0).unwrap();
            assert_eq!((d.name.as_str(), d.problems.len(), d.kind), (spec, n, Kind::Code));
            let p = &d.problems[0];
            assert_eq!((p.id.as_str(), p.gold.as_str()), (first, first));
            assert_eq!(PromptTemplate::default_for(d.kind, true, "qwen2").name, "code-chat");
            assert!(d.verifier.is_some());
            let code = &tasks::code::code_problems()[first];
            let reply = format!("Sure:\n```python\n{}\n```", code.reference_solution);
            assert!(d.checker.is_correct(p, (d.extract)(&reply).as_deref()), "{first}");
            let wrong = format!("```python\ndef {}(*args):\n    return None\n```", code.entry_point);
            assert!(!d.checker.is_correct(p, (d.extract)(&wrong).as_deref()), "{first}");
        }
        assert!(load("gsm8k", 0).unwrap().verifier.is_none());
        assert_eq!(PromptTemplate::default_for(load("gsm8k", 0).unwrap().kind, false, "gemma3").name, "math-completion");
    }

    #[test]
    fn a_slice_selects_problems_in_dataset_order() {
        let all = load("gsm8k", 0).unwrap().problems;
        let part = load_with("gsm8k[100..103]", 0, LoadOptions::default()).unwrap().dataset;
        assert_eq!(part.name, "gsm8k[100..103]");
        assert_eq!(part.problems, all[100..103].to_vec());
        let tail = load_with("gsm8k[1317..]", 0, LoadOptions::default()).unwrap().dataset;
        assert_eq!(tail.problems.len(), 2);
        for (spec, needle) in [
            ("gsm8k[5..5]", "TO must be greater"),
            ("gsm8k[a..]", "FROM is not a number"),
            ("gsm8k[3]", "[FROM..TO]"),
            ("gsm8k[2000..]", "selects none of 1319"),
        ] {
            let e = load_with(spec, 0, LoadOptions::default()).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn checkers_grade_by_value() {
        for spec in ["gsm8k", "arith:3:20"] {
            let d = load(spec, 1).unwrap();
            for p in &d.problems {
                let gold: i64 = p.gold.parse().unwrap();
                let said = extract_answer(&format!("So the total is {}. The answer is {gold}.", gold + 3));
                assert!(d.checker.is_correct(p, said.as_deref()), "{}", p.id);
                assert!(d.checker.is_correct(p, Some(&gold.to_string())), "{}", p.id);
                assert!(!d.checker.is_correct(p, Some(&(gold + 1).to_string())), "{}", p.id);
                assert!(!d.checker.is_correct(p, None), "{}", p.id);
            }
        }
    }
}
