//! From raw runs to an [`Outcome`]: limits and signals first, then the test driver's
//! verdict, read strictly (one JSON line, every test sent accounted for).

use super::process::{KillReason, RawRun, Termination};
use super::{pysrc, Limits, Outcome};

/// Test code cut into top-level statements for the driver: `index` has one
/// `T|S FIRST END` line per statement, T when it contains an `assert`. Doing this here
/// spares every check the import of Python's `ast` module.
pub(crate) struct CutTests {
    /// The test code, newlines normalised.
    pub source: String,
    pub index: String,
    pub n_tests: usize,
}

pub(crate) fn cut_tests(tests: &str) -> CutTests {
    let source = tests.replace("\r\n", "\n");
    let lines: Vec<&str> = source.lines().collect();
    let mut index = String::new();
    let mut n_tests = 0;
    for (first, end) in pysrc::statement_spans(&source) {
        let is_test = pysrc::has_keyword(&lines[first..end].join("\n"), "assert");
        n_tests += usize::from(is_test);
        index.push_str(&format!(
            "{} {first} {end}\n",
            if is_test { "T" } else { "S" }
        ));
    }
    CutTests {
        source,
        index,
        n_tests,
    }
}

/// The verdict of an assert check from its two runs: the driver's (trusted) and the
/// program's. `isolated`: whether they ran under bubblewrap.
pub(crate) fn asserts_outcome(
    driver: &RawRun,
    program: &RawRun,
    n_tests: usize,
    limits: &Limits,
    isolated: bool,
) -> Outcome {
    // A limit either side hit decides, even over a verdict: the check did not run clean.
    // The program's kill after the verdict (`Served`) is how every check ends.
    if program.killed != Some(KillReason::Served) {
        if let Some(outcome) = limit_outcome(program, limits, isolated) {
            return outcome;
        }
    }
    if let Some(outcome) = limit_outcome(driver, limits, isolated) {
        return outcome;
    }
    if let Some(outcome) = sandbox_failure(driver, isolated) {
        return outcome;
    }
    match parse_driver_verdict(&driver.verdict, n_tests) {
        Ok(DriverVerdict::Outcome(outcome)) => outcome,
        Ok(DriverVerdict::ProgramExited { loaded }) => {
            match (loaded, sandbox_failure(program, isolated)) {
                // No greeting and bwrap's own complaint: the program never started.
                (false, Some(outcome)) => outcome,
                _ if program.killed == Some(KillReason::Served) => Outcome::Crashed {
                    exit_code: None,
                    signal: None,
                    stderr_tail: tail(
                        &format!(
                            "{}\n(closed its pipes to the tests without exiting)",
                            String::from_utf8_lossy(&program.stderr_tail)
                        ),
                        2000,
                    ),
                },
                _ => crashed(program, isolated),
            }
        }
        Err(detail) => Outcome::SandboxError {
            detail: format!(
                "{detail}; driver stderr: {}",
                tail(&String::from_utf8_lossy(&driver.stderr_tail), 1000).trim()
            ),
        },
    }
}

/// What the driver said.
#[derive(Debug, PartialEq)]
pub(crate) enum DriverVerdict {
    Outcome(Outcome),
    /// The program's process ended or broke off; its exit status tells the rest.
    /// `loaded`: whether it had said it loaded.
    ProgramExited {
        loaded: bool,
    },
}

/// Reads the driver's verdict: exactly one JSON line, and `passed` only with exactly
/// `n_tests` tests run. `Err` says why there is no verdict.
pub(crate) fn parse_driver_verdict(raw: &[u8], n_tests: usize) -> Result<DriverVerdict, String> {
    let text = String::from_utf8_lossy(raw);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let [line] = lines.as_slice() else {
        return Err(format!(
            "the test driver wrote {} verdict lines, expected 1",
            lines.len()
        ));
    };
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("the test driver's verdict is not JSON ({e}): {line}"))?;
    let detail = || v["detail"].as_str().unwrap_or_default().to_string();
    let test = || {
        v["test"]
            .as_u64()
            .and_then(|t| usize::try_from(t).ok())
            .filter(|&t| t <= n_tests)
            .ok_or_else(|| format!("the test driver named no test in 0..={n_tests}: {line}"))
    };
    let outcome = match v["event"].as_str() {
        Some("passed") => match v["n_tests"].as_u64() {
            Some(n) if n == n_tests as u64 => Outcome::Passed,
            n => {
                return Err(format!(
                    "the test driver reported {n:?} tests passed, {n_tests} were sent"
                ))
            }
        },
        Some("failed") => Outcome::Failed {
            test: test()?,
            detail: detail(),
        },
        Some("memory") => Outcome::MemoryLimit,
        Some("program_error") => Outcome::Crashed {
            exit_code: Some(1),
            signal: None,
            stderr_tail: detail(),
        },
        Some("program_exited") => {
            test()?;
            return Ok(DriverVerdict::ProgramExited {
                loaded: v["loaded"].as_u64() == Some(1),
            });
        }
        Some("harness_error") => Outcome::SandboxError { detail: detail() },
        _ => {
            return Err(format!(
                "the test driver's verdict has no known event: {line}"
            ))
        }
    };
    Ok(DriverVerdict::Outcome(outcome))
}

/// Outcomes that do not depend on the test mode: limits, signals, setup failures.
pub(crate) fn limit_outcome(raw: &RawRun, limits: &Limits, isolated: bool) -> Option<Outcome> {
    match raw.killed {
        Some(KillReason::Output) => return Some(Outcome::OutputLimit),
        Some(KillReason::Deadline) => return Some(Outcome::Timeout),
        Some(KillReason::Memory) => return Some(Outcome::MemoryLimit),
        Some(KillReason::Served) | None => {}
    }
    let signal = signal(raw.termination, isolated);
    // SIGKILL after SIGXCPU (ignored by the program) is the hard CPU limit. CPU time
    // is not observable through bwrap (see process.rs); a single-threaded program
    // cannot use more of it than wall time, so an earlier SIGKILL is something else.
    let cpu_possible = raw.wall_ms + 100 >= limits.cpu_s.saturating_mul(1000);
    if signal == Some(libc::SIGXCPU) || (signal == Some(libc::SIGKILL) && cpu_possible) {
        return Some(Outcome::Timeout);
    }
    let stderr = String::from_utf8_lossy(&raw.stderr_tail);
    let out_of_memory = [
        "MemoryError",
        "Cannot allocate memory",
        "cannot allocate memory",
        "std::bad_alloc",
    ];
    if raw.termination != Termination::Exited(0) && out_of_memory.iter().any(|m| stderr.contains(m))
    {
        return Some(Outcome::MemoryLimit);
    }
    None
}

/// bwrap or setpriv could not set the sandbox up.
pub(crate) fn sandbox_failure(raw: &RawRun, isolated: bool) -> Option<Outcome> {
    let stderr = String::from_utf8_lossy(&raw.stderr_tail);
    let failed = isolated
        && raw.termination == Termination::Exited(1)
        && (stderr.starts_with("bwrap: ") || stderr.starts_with("setpriv: "));
    failed.then(|| Outcome::SandboxError {
        detail: stderr.trim().to_string(),
    })
}

pub(crate) fn crashed(raw: &RawRun, isolated: bool) -> Outcome {
    let signal = signal(raw.termination, isolated);
    let exit_code = match raw.termination {
        Termination::Exited(code) if signal.is_none() => Some(code),
        _ => None,
    };
    let mut stderr_tail = String::from_utf8_lossy(&raw.stderr_tail).into_owned();
    if exit_code == Some(0) {
        stderr_tail.push_str("\n(exited before the tests reported a verdict)");
    }
    Outcome::Crashed {
        exit_code,
        signal,
        stderr_tail: tail(&stderr_tail, 2000),
    }
}

/// The signal that ended the program. bwrap reports a signalled child as exit 128 + n.
fn signal(termination: Termination, isolated: bool) -> Option<i32> {
    match termination {
        Termination::Signaled(sig) => Some(sig),
        Termination::Exited(code) if isolated && (129..=128 + 64).contains(&code) => {
            Some(code - 128)
        }
        Termination::Exited(_) => None,
    }
}

pub(crate) fn tail(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(verdict: &str, n_tests: usize, expected: Result<DriverVerdict, &str>) {
        let got = parse_driver_verdict(verdict.as_bytes(), n_tests);
        match (&got, &expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{verdict}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{verdict}: {g}"),
            _ => panic!("{verdict}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn passed_needs_every_test_sent() {
        let passed = || Ok(DriverVerdict::Outcome(Outcome::Passed));
        check(r#"{"event":"passed","n_tests":3}"#, 3, passed());
        check(
            r#"{"event":"passed","n_tests":0}"#,
            3,
            Err("Some(0) tests passed, 3 were sent"),
        );
        check(
            r#"{"event":"passed","n_tests":4}"#,
            3,
            Err("Some(4) tests passed"),
        );
        check(r#"{"event":"passed"}"#, 3, Err("None tests passed"));
        check(
            r#"{"event":"passed","n_tests":"3"}"#,
            3,
            Err("tests passed"),
        );
    }

    #[test]
    fn exactly_one_line() {
        let line = r#"{"event":"passed","n_tests":1}"#;
        check(
            &format!("{line}\n{line}\n"),
            1,
            Err("wrote 2 verdict lines"),
        );
        check("", 1, Err("wrote 0 verdict lines"));
        check("passed\n", 1, Err("not JSON"));
        check(r#"{"event":"won"}"#, 1, Err("no known event"));
    }

    #[test]
    fn failures_name_a_test_that_was_sent() {
        let failed = |test| {
            Ok(DriverVerdict::Outcome(Outcome::Failed {
                test,
                detail: "d".into(),
            }))
        };
        check(r#"{"event":"failed","test":1,"detail":"d"}"#, 2, failed(1));
        // A failing setup statement after the last test.
        check(r#"{"event":"failed","test":2,"detail":"d"}"#, 2, failed(2));
        check(
            r#"{"event":"failed","test":3,"detail":"d"}"#,
            2,
            Err("named no test"),
        );
        check(
            r#"{"event":"program_exited","test":0,"loaded":1}"#,
            2,
            Ok(DriverVerdict::ProgramExited { loaded: true }),
        );
    }

    #[test]
    fn cut_counts_tests() {
        let cut = cut_tests("import math\r\nassert f(1) == 1\nfor x in []:\n    assert x\n");
        assert_eq!(cut.n_tests, 2);
        assert_eq!(cut.index, "S 0 1\nT 1 2\nT 2 4\n");
        assert!(!cut.source.contains('\r'));
    }
}
