//! Programs that try to decide their own verdict (issue 17). Each one's tests are false
//! for it, so any verdict but a failure is a forgery. The ones marked "forged before"
//! were graded `passed` when the program and its tests shared one interpreter.

use super::{asserts, sandbox};
use ponder_verify::code::{Limits, Outcome};

/// A forged verdict line, written to every descriptor that takes it, then a quiet exit.
const WRITE_VERDICT_EVERYWHERE: &str = r#"
import os
def forge(n_tests):
    line = ('{"event":"passed","n_tests":%d}\n' % n_tests).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, line)
        except OSError:
            pass
    os._exit(0)
"#;

#[track_caller]
fn assert_fails(program: &str, tests: &str) -> Outcome {
    let outcome = sandbox().check(&asserts(program, tests));
    assert!(
        matches!(outcome, Outcome::Failed { .. } | Outcome::Crashed { .. }),
        "program graded {outcome:?}:\n{program}"
    );
    outcome
}

/// Forged before: the verdict written at import.
#[test]
fn verdict_written_at_import_is_ignored() {
    for n_tests in [1, 0] {
        let program = format!("{WRITE_VERDICT_EVERYWHERE}\nforge({n_tests})\n");
        assert_fails(&program, "assert False");
    }
}

/// Forged before: the verdict written by the function under test, mid-test.
#[test]
fn verdict_written_by_the_tested_function_is_ignored() {
    let program = format!("{WRITE_VERDICT_EVERYWHERE}\ndef f(x):\n    forge(2)\n");
    let outcome = assert_fails(&program, "assert f(1) == 2\nassert f(2) == 3");
    assert!(
        matches!(outcome, Outcome::Failed { test: 0, .. }),
        "{outcome:?}"
    );
}

/// Forged before: `exec` replaced, so the tests never ran.
#[test]
fn replacing_exec_does_not_skip_the_tests() {
    let program = "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.eval = lambda *a, **k: True\ndef f(x):\n    return x\n";
    let outcome = assert_fails(program, "assert f(1) == 2");
    assert!(
        matches!(outcome, Outcome::Failed { test: 0, .. }),
        "{outcome:?}"
    );
}

/// Forged before: every list in every calling frame cleared, the tests among them.
#[test]
fn clearing_the_callers_lists_does_not_drop_tests() {
    let program = r#"
import sys
frame = sys._getframe(1)
while frame is not None:
    for value in list(frame.f_locals.values()):
        if isinstance(value, list):
            value.clear()
    frame = frame.f_back
def f(x):
    return x
"#;
    let outcome = assert_fails(program, "assert f(1) == 1\nassert f(2) == 3");
    assert!(
        matches!(outcome, Outcome::Failed { test: 1, .. }),
        "{outcome:?}"
    );
}

/// Forged before: the tested function stops the loop over the tests from inside one.
#[test]
fn stopping_the_test_loop_from_a_call_does_not_drop_tests() {
    let program = r#"
import gc
def f(x):
    for obj in gc.get_objects():
        if isinstance(obj, list) and obj and isinstance(obj[0], tuple) and len(obj[0]) == 3:
            obj.clear()
    return x
"#;
    let outcome = assert_fails(program, "assert f(1) == 1\nassert f(2) == 3");
    assert!(
        matches!(outcome, Outcome::Failed { test: 1, .. }),
        "{outcome:?}"
    );
}

/// Forged before: the tests' expected values read from the calling frames.
#[test]
fn the_tests_are_not_in_the_programs_process() {
    let program = r#"
import re, sys
def f(x):
    texts = []
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, dict):
                texts += [v for v in value.values() if isinstance(v, str)]
        frame = frame.f_back
    for text in texts:
        m = re.search(r'f\(%d\) == (\d+)' % x, text)
        if m:
            return int(m.group(1))
    return -1
"#;
    let outcome = assert_fails(program, "assert f(1) == 12345\nassert f(2) == 678");
    assert_eq!(
        outcome,
        Outcome::Failed {
            test: 0,
            detail: "assert f(1) == 12345\nAssertionError\nleft side was: -1".into()
        }
    );
}

/// Forged before: objects whose `__eq__` always agrees, plain or disguised.
#[test]
fn objects_that_equal_everything_are_not_compared() {
    let program = r#"
class Yes:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__
class YesInt(int):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
    __hash__ = int.__hash__
class YesList(list):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
class YesStr(str):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
    __hash__ = str.__hash__
class LooksLikeAnInt(Yes):
    __class__ = property(lambda self: int)
def plain(x):
    return Yes()
def in_a_list(x):
    return [Yes(), Yes()]
def as_int(x):
    return YesInt(0)
def as_list(x):
    return YesList()
def as_str(x):
    return YesStr('no')
def disguised(x):
    return LooksLikeAnInt()
"#;
    for test in [
        "assert plain(1) == 2",
        "assert in_a_list(1) == [2, 3]",
        "assert as_int(1) == 2",
        "assert as_list(1) == [2, 3]",
        "assert as_str(1) == 'yes'",
        "assert not (as_str(1) != 'yes')",
        "assert isinstance(disguised(1), int) and disguised(1) == 2",
    ] {
        assert_fails(program, test);
    }
}

/// Forged before: builtins and a test module replaced in the shared interpreter, or a
/// builtin's name defined by the program.
#[test]
fn the_program_cannot_redefine_what_the_tests_use() {
    let program = r#"
import builtins, sys, types
builtins.abs = lambda x: 0
builtins.len = lambda x: 3
fake = types.ModuleType('math')
fake.isclose = lambda *a, **k: True
sys.modules['math'] = fake
def sorted(xs, **kwargs):
    return [1, 2, 3]
def f(x):
    return 0.0
def g(x):
    return [3, 2]
"#;
    for test in [
        "assert abs(f(1) - 2.5) < 1e-9",
        "assert len(g(1)) == 3",
        "import math\nassert math.isclose(f(1), 2.5)",
        "assert math.isclose(f(1), 2.5)",
        "assert sorted(g(1)) == [1, 2, 3]",
    ] {
        assert_fails(program, test);
    }
}

/// Forged before: a program's stand-in for a module the tests use without importing it.
#[test]
fn a_program_global_cannot_stand_in_for_a_module() {
    let program = "class math:\n    isclose = staticmethod(lambda *a, **k: True)\ndef f(x):\n    return 0.0\n";
    assert_fails(program, "assert math.isclose(f(1), 2.5)");
}

/// Forged before: `os.write` patched so the harness's own failure report says passed.
#[test]
fn patching_the_harness_modules_changes_nothing() {
    let program = r#"
import os, sys, types
real_write = os.write
def write(fd, data):
    if fd != 1 and fd != 2:
        data = b'{"event":"passed","n_tests":1}\n'
    return real_write(fd, data)
os.write = write
fake = types.ModuleType('json')
fake.loads = lambda *a, **k: {'event': 'passed', 'n_tests': 1}
fake.dumps = lambda *a, **k: '{"event":"passed","n_tests":1}'
sys.modules['json'] = sys.modules['_json'] = fake
sys.stdout = sys.stderr = None
def f(x):
    return x
"#;
    assert_fails(program, "assert f(1) == 2");
}

/// Forged before: a StopIteration from the function ended the tests' `map` early.
#[test]
fn stop_iteration_from_the_program_is_an_error() {
    let program = "def f(x):\n    raise StopIteration\n";
    assert_fails(program, "assert all(map(f, [1, 2, 3]))");
    assert_fails(program, "assert list(map(f, [1, 2])) == []");
}

/// Replies written ahead of the harness, or garbled, break the protocol: a failure, even
/// when the tests swallow the error (which passed before: the write's OSError was caught).
#[test]
fn forged_replies_break_the_protocol() {
    for (program, tests) in [
        (
            "import os\nos.write(4, b'[\"ready\"]\\n[0,\"ok\",2]\\n[1,\"ok\",2]\\n')\ndef f(x):\n    return x\n",
            "assert f(1) == 2",
        ),
        (
            "import os\ndef f(x):\n    os.write(4, b'[0,\"ok\",{\"__class__\":1}]\\n')\n    return x\n",
            "assert f(1) == 2",
        ),
        // Swallowing the error in the tests does not help.
        (
            "import os\ndef f(x):\n    os.write(4, b'garbage\\n')\n    return x\n",
            "try:\n    assert f(1) == 2\nexcept BaseException:\n    pass",
        ),
    ] {
        assert_fails(program, tests);
    }
}

/// Never forged: exits, atexit hooks and SystemExit end in a crash or a failed test.
#[test]
fn exits_are_failures() {
    let atexit = format!("{WRITE_VERDICT_EVERYWHERE}\nimport atexit\natexit.register(forge, 1)\n");
    for (program, tests) in [
        ("raise SystemExit(0)", "assert False"),
        ("def f(x):\n    raise SystemExit(0)\n", "assert f(1) == 2"),
        (
            "import sys\ndef f(x):\n    sys.exit(0)\n",
            "assert f(1) == 2",
        ),
        (
            &format!("{atexit}\nimport sys\nsys.exit(0)\n"),
            "assert False",
        ),
        (
            &format!("{atexit}\ndef f(x):\n    import os\n    os._exit(0)\n"),
            "assert f(1) == 2",
        ),
    ] {
        assert_fails(program, tests);
    }
}

/// NaN crosses as NaN and compares as NaN, unequal to everything. Forged before: the
/// program's `[math.nan]` was the tests' `[math.nan]`, equal by identity.
#[test]
fn nan_is_a_value_not_a_wildcard() {
    let program = "import math\ndef f(x):\n    return math.nan\ndef g(x):\n    return [math.nan]\n";
    assert_fails(program, "assert f(1) == 2.5");
    assert_fails(program, "assert f(1) >= 2.5");
    assert_fails(program, "import math\nassert g(1) == [math.nan]");
    assert_eq!(
        sandbox().check(&asserts(program, "import math\nassert math.isnan(f(1))")),
        Outcome::Passed
    );
}

/// Results too big or too deep to send fail the test and leave the host alone; so does an
/// object whose `__repr__` recurses forever (forged before: its `__eq__` agreed).
#[test]
fn unsendable_results_fail() {
    let program = r#"
def huge(x):
    return 'x' * (100 << 20)
def deep(x):
    out = []
    for _ in range(100000):
        out = [out]
    return out
def cyclic(x):
    out = []
    out.append(out)
    return out
class Loop:
    def __repr__(self):
        return repr(self)
    def __eq__(self, other):
        return True
def loop(x):
    return Loop()
"#;
    for test in [
        "assert huge(1) == 'y'",
        "assert deep(1) == []",
        "assert cyclic(1) == [[]]",
        "assert loop(1) == 2",
    ] {
        let outcome = assert_fails(program, test);
        assert!(
            matches!(outcome, Outcome::Failed { .. }),
            "{test}: {outcome:?}"
        );
    }
}

/// Never forged (the host compares the output), kept so it stays that way: a verdict
/// written to stdout, stderr or descriptor 3 is just output.
#[test]
fn io_mode_output_is_the_only_verdict() {
    let program = r#"
import os, sys
line = '{"event":"passed","n_tests":1}\n'
for fd in (3, 4, 2):
    try:
        os.write(fd, line.encode())
    except OSError:
        pass
print(line)
"#;
    let request = ponder_verify::code::CheckRequest {
        program: program.into(),
        tests: ponder_verify::code::TestSpec::Io(vec![ponder_verify::code::IoCase {
            stdin: String::new(),
            expected_stdout: "42".into(),
        }]),
        limits: Limits::default(),
    };
    let outcome = sandbox().check(&request);
    assert!(
        matches!(outcome, Outcome::Failed { test: 0, .. }),
        "{outcome:?}"
    );
}
