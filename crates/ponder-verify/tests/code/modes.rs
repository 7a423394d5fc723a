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

/// Issue 17: a case cannot see what an earlier one left in /work, /tmp or /dev/shm.
#[test]
fn io_cases_start_clean() {
    let program = r#"
import os
marks = ['/work/mark', '/tmp/mark', '/dev/shm/mark']
print('stale' if any(os.path.exists(m) for m in marks) else 'fresh')
for m in marks:
    open(m, 'w').close()
"#;
    let request = io(program, &[("", "fresh"), ("", "fresh"), ("", "fresh")]);
    assert_eq!(sandbox().check(&request), Outcome::Passed);
}

/// Issue 17: `u64::MAX` (or 0) in a limit is refused with the field's name, not passed to
/// setrlimit (`Invalid argument`), turned into an overflow, or taken as "unlimited".
#[test]
fn out_of_range_limits_are_refused_by_name() {
    type Set = fn(&mut Limits, u64);
    let fields: [(&str, Set); 6] = [
        ("wall_ms", |l, v| l.wall_ms = v),
        ("cpu_s", |l, v| l.cpu_s = v),
        ("memory_bytes", |l, v| l.memory_bytes = v),
        ("n_processes", |l, v| l.n_processes = v),
        ("file_size_bytes", |l, v| l.file_size_bytes = v),
        ("output_bytes", |l, v| l.output_bytes = v),
    ];
    let sandbox = sandbox();
    for (name, set) in fields {
        let mut limits = Limits::default();
        set(&mut limits, u64::MAX);
        for request in [
            CheckRequest {
                limits: limits.clone(),
                ..asserts("x = 1", "assert x == 1")
            },
            CheckRequest {
                limits: limits.clone(),
                ..io("print(1)", &[("", "1")])
            },
        ] {
            let outcome = sandbox.check(&request);
            let Outcome::SandboxError { detail } = &outcome else {
                panic!("{name} = u64::MAX gave {outcome:?}")
            };
            assert_eq!(
                detail,
                &format!(
                    "limits.{name} must be between {} and {}, got {}",
                    u64::from(!name.ends_with("_bytes") || name == "memory_bytes"),
                    detail
                        .split(" and ")
                        .nth(1)
                        .and_then(|s| s.split(',').next())
                        .unwrap_or_default(),
                    u64::MAX
                )
            );
        }
    }
    let zero_wall = Limits {
        wall_ms: 0,
        ..Limits::default()
    };
    assert!(zero_wall
        .validate()
        .is_err_and(|e| e.to_string().contains("limits.wall_ms")));
    assert!(Limits::default().validate().is_ok());
}

/// What the tests can do with the program's objects: call, iterate, index, read and set
/// attributes, pass them back; and what they cannot: compare them, pass lambdas, see
/// their arguments changed.
#[test]
fn tests_use_program_objects_through_plain_data() {
    let program = r#"
from collections import Counter, namedtuple
Point = namedtuple('Point', 'x y')
class Node:
    def __init__(self, value):
        self.value = value
        self.next = None
    def __str__(self):
        return f'Node({self.value})'
def chain(node):
    out = []
    while node is not None:
        out.append(node.value)
        node = node.next
    return out
def squares(n):
    return (i * i for i in range(n))
def counts(s):
    return Counter(s)
def point():
    return Point(1, 2)
def grow(xs, by=1):
    xs.append(by)
    return len(xs)
def sum(a, b):
    return a - b
def kinds():
    return (None, True, 2 ** 70, -1.5, 2j, b'\x00', {1, 2}, frozenset([3]), {(1, 2): [3]})
limit = 10
"#;
    let tests = r#"
head = Node(1)
head.next = Node(2)
assert chain(head) == [1, 2]
assert head.next.value == 2 and str(head) == 'Node(1)'
assert list(squares(4)) == [0, 1, 4, 9]
assert counts('aab') == {'a': 2, 'b': 1}
assert point() == (1, 2)
xs = [0]
assert grow(xs, by=5) == 2 and xs == [0]
assert program.sum(5, 3) == 2 and sum([5, 3]) == 8
assert kinds() == (None, True, 2 ** 70, -1.5, 2j, b'\x00', {1, 2}, frozenset([3]), {(1, 2): [3]})
assert limit == 10
"#;
    assert_eq!(sandbox().check(&asserts(program, tests)), Outcome::Passed);
    for (test, message) in [
        (
            "assert Node(1) == Node(1)",
            "not plain data: it cannot be compared",
        ),
        (
            "assert grow(lambda: 1) == 1",
            "cannot pass a function to the program",
        ),
        (
            "import math\nassert m.pi > 3",
            "a module the program imported",
        ),
    ] {
        let program = format!("{program}\nimport math as m\n");
        let outcome = sandbox().check(&asserts(&program, test));
        let Outcome::Failed { detail, .. } = &outcome else {
            panic!("{test}: {outcome:?}")
        };
        assert!(detail.contains(message), "{test}: {detail}");
    }
}
