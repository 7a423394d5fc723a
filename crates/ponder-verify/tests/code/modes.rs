//! Verdicts of ordinary programs: which test failed, stdin/stdout judging, refusal without
//! bubblewrap.

use super::{asserts, sandbox};
use ponder_verify::code::{
    CheckRequest, Error, IoCase, Limits, Outcome, Sandbox, SandboxConfig, TestSpec,
};

#[test]
fn passing_program_passes() {
    let outcome = sandbox().check(&asserts(
        "def add(a, b):\n    return a + b\n",
        "assert add(1, 2) == 3\nassert add(-1, 1) == 0",
    ));
    assert_eq!(outcome, Outcome::Passed);
}

#[test]
fn failed_names_the_failing_test() {
    let program = "def add(a, b):\n    return a + b if a < 10 else 0\n";
    let tests =
        "import math\nassert add(1, 2) == 3\nx = 5\nassert add(20, 2) == 22\nassert add(3, 3) == 6";
    let Outcome::Failed { test, detail } = sandbox().check(&asserts(program, tests)) else {
        panic!("expected a failure")
    };
    assert_eq!(test, 1);
    assert!(
        detail.contains("assert add(20, 2) == 22") && detail.contains("left side was: 0"),
        "{detail}"
    );
}

#[test]
fn compound_test_statements_count_once() {
    let tests = "xs = [1, 2,\n      3]\nfor x in xs:\n    assert f(x) > 0\n\n    # still the loop\nelse:\n    pass\nassert f(\n  -1\n) == 0, 'no'";
    let outcome = sandbox().check(&asserts("def f(x):\n    return max(x, 0) + 1\n", tests));
    let Outcome::Failed { test: 1, detail } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        detail.starts_with("assert f(\n  -1\n) == 0, 'no'\nAssertionError: no"),
        "{detail}"
    );
}

#[test]
fn tests_that_do_not_parse_are_a_sandbox_error() {
    let outcome = sandbox().check(&asserts("x = 1", "assert (x ==\n"));
    let Outcome::SandboxError { detail } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(detail.starts_with("tests do not parse"), "{detail}");
}

#[test]
fn exception_in_a_test_fails_that_test() {
    let outcome = sandbox().check(&asserts(
        "def f(x):\n    return 1 // x\n",
        "assert f(1) == 1\nassert f(0) == 0",
    ));
    let Outcome::Failed { test: 1, detail } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(detail.contains("ZeroDivisionError"), "{detail}");
}

#[test]
fn broken_program_crashes() {
    for program in [
        "def f(:\n",
        "raise RuntimeError('boom')",
        "import sys\nsys.exit(3)",
    ] {
        let outcome = sandbox().check(&asserts(program, "assert True"));
        assert!(
            matches!(
                outcome,
                Outcome::Crashed {
                    exit_code: Some(1),
                    ..
                }
            ),
            "{program}: {outcome:?}"
        );
    }
    let outcome = sandbox().check(&asserts("import os\nos._exit(0)", "assert True"));
    assert!(
        matches!(
            outcome,
            Outcome::Crashed {
                exit_code: Some(0),
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn program_cannot_read_its_tests() {
    let program = "import os\nseen = sorted(os.listdir('.'))\n";
    assert_eq!(
        sandbox().check(&asserts(program, "assert seen == [], seen")),
        Outcome::Passed
    );
}

#[test]
fn multiprocessing_works() {
    let program = "import multiprocessing\n\ndef square(x):\n    return x * x\n\nwith multiprocessing.Pool(2) as pool:\n    squares = pool.map(square, range(5))\n";
    assert_eq!(
        sandbox().check(&asserts(program, "assert squares == [0, 1, 4, 9, 16]")),
        Outcome::Passed
    );
}

#[test]
fn file_size_limit_stops_big_files() {
    let program = "with open('big', 'wb') as f:\n    f.write(b'x' * (8 << 20))\n";
    let limits = Limits {
        file_size_bytes: 1 << 20,
        ..Limits::default()
    };
    let request = CheckRequest {
        limits,
        ..asserts(program, "assert True")
    };
    let outcome = sandbox().check(&request);
    let Outcome::Crashed { stderr_tail, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(stderr_tail.contains("File too large"), "{stderr_tail}");
}

fn io(program: &str, cases: &[(&str, &str)]) -> CheckRequest {
    let cases = cases
        .iter()
        .map(|(i, o)| IoCase {
            stdin: i.to_string(),
            expected_stdout: o.to_string(),
        })
        .collect();
    CheckRequest {
        program: program.into(),
        tests: TestSpec::Io(cases),
        limits: Limits::default(),
    }
}

#[test]
fn io_mode_compares_tokens() {
    let program = "a, b = map(float, input().split())\nprint(int(a + b) if (a + b).is_integer() else a + b)\nprint(a / 3)";
    let passing = io(
        program,
        &[("1 2\n", "3\n0.333333"), ("2.5 0.25", "2.75 0.8333333333")],
    );
    assert_eq!(sandbox().check(&passing), Outcome::Passed);
    let failing = io(program, &[("1 2", "3 0.3333333"), ("1 1", "3 0.33333")]);
    let Outcome::Failed { test: 1, detail } = sandbox().check(&failing) else {
        panic!("expected case 1 to fail")
    };
    assert_eq!(detail, "token 0: expected `3`, got `2`");
}

#[test]
fn io_mode_reports_crashes_and_limits() {
    let crash = sandbox().check(&io("raise ValueError('bad input')", &[("", "")]));
    let Outcome::Crashed {
        exit_code: Some(1),
        stderr_tail,
        ..
    } = crash
    else {
        panic!("{crash:?}")
    };
    assert!(
        stderr_tail.contains("ValueError: bad input"),
        "{stderr_tail}"
    );
    let request = CheckRequest {
        limits: Limits {
            wall_ms: 1500,
            ..Limits::default()
        },
        ..io("while True: pass", &[("", "")])
    };
    assert_eq!(sandbox().check(&request), Outcome::Timeout);
}

#[test]
fn missing_bwrap_is_refused() {
    let config = SandboxConfig {
        bwrap: "/nonexistent/bwrap".into(),
        ..SandboxConfig::default()
    };
    let err = Sandbox::new(config).expect_err("no bwrap, no sandbox");
    assert!(matches!(err, Error::BwrapNotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("bubblewrap") && message.contains("apt-get install bubblewrap"),
        "{message}"
    );
    assert!(message.contains("allow_unsandboxed"), "{message}");
}

#[test]
fn missing_bwrap_with_explicit_unsafe_flag_runs_unsandboxed() {
    let config = SandboxConfig {
        bwrap: "/nonexistent/bwrap".into(),
        allow_unsandboxed: true,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config).expect("allowed to run unsandboxed");
    assert!(!sandbox.is_isolated());
    assert_eq!(
        sandbox.check(&asserts("x = 1", "assert x == 1")),
        Outcome::Passed
    );
    assert_eq!(
        sandbox.check(&asserts("x = 1", "assert x == 2")),
        Outcome::Failed {
            test: 0,
            detail: "assert x == 2\nAssertionError\nleft side was: 1".into()
        }
    );
}

#[test]
fn command_line_isolates() {
    let line = sandbox().command_line().join(" ");
    for flag in [
        "--unshare-net",
        "--unshare-pid",
        "--die-with-parent",
        "--new-session",
        "--ro-bind /usr /usr",
        "--remount-ro /",
        "--bind CHECKDIR/work /work",
    ] {
        assert!(line.contains(flag), "{flag} missing from {line}");
    }
    eprintln!("{line}");
}

#[test]
fn outcomes_serialize_with_a_status_tag() {
    let json = serde_json::to_string(&Outcome::Failed {
        test: 2,
        detail: "x".into(),
    })
    .unwrap(); // plain data
    assert_eq!(json, r#"{"status":"failed","test":2,"detail":"x"}"#);
    let back: Outcome = serde_json::from_str(r#"{"status":"memory_limit"}"#).unwrap(); // valid JSON above
    assert_eq!(back, Outcome::MemoryLimit);
}
