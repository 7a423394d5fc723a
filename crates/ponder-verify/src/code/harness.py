"""ponder check harness.

`harness.py FD`: run program.py, then each statement of tests.py. The host has cut the tests
into top-level statements (tests.idx: `T|S FIRST_LINE END_LINE` per statement, T for one
that contains an `assert`); tests are numbered from 0. If a cut does not compile, the
statements come from `ast` instead. The verdict is one JSON line on descriptor FD; the
program's own stdout/stderr are left alone. The source files are removed before the program
runs, so it cannot read the tests it is judged by.

`harness.py io`: run program.py as __main__ (stdin/stdout judged by the host).

Startup is most of the cost of a check, so the passing path imports nothing beyond what the
interpreter has loaded anyway (ast, json and traceback would add 25 ms to a 15 ms start).
Python runs with -S (no site module: 75 ms -> 15 ms here), so this restores what site would
give programs: `exit` and `quit`; the host sets PYTHONPATH to the site-packages.
"""

import os
import sys

DETAIL_CHARS = 2000


def main():
    import builtins

    builtins.exit = builtins.quit = sys.exit
    if sys.argv[1] == "io":
        run_io()
    run_asserts(int(sys.argv[1]))


def run_io():
    with open("program.py", encoding="utf-8") as f:
        src = f.read()
    sys.argv = ["program.py"]
    # Uncaught exceptions propagate: Python prints the traceback and exits with 1.
    exec(compile(src, "program.py", "exec"), module_namespace("__main__"))
    sys.exit(0)


def module_namespace(name):
    """A registered module's globals, so pickle (multiprocessing) finds the program's functions."""
    module = type(sys)(name)
    module.__file__ = "program.py"
    sys.modules[name] = module
    return module.__dict__


def run_asserts(verdict_fd):
    os.set_inheritable(verdict_fd, False)

    def report(**verdict):
        os.write(verdict_fd, (to_json(verdict) + "\n").encode("utf-8"))
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        # Skip atexit handlers and non-daemon threads the program may have left behind.
        os._exit(0)

    sources = {}
    for name in ("program.py", "tests.py", "tests.idx"):
        with open(name, encoding="utf-8") as f:
            sources[name] = f.read()
    for name in ("program.py", "tests.py", "tests.idx", "harness.py"):
        try:
            os.unlink(name)
        except OSError:
            pass

    tests_src = sources["tests.py"]
    try:
        statements = cut_statements(tests_src, sources["tests.idx"])
    except SyntaxError:
        try:
            statements = ast_statements(tests_src)
        except SyntaxError as e:
            report(event="harness_error", detail=f"tests do not parse: {e}")

    namespace = module_namespace("candidate")
    sys.argv = ["program.py"]
    try:
        exec(compile(sources["program.py"], "program.py", "exec"), namespace)
    except MemoryError:
        report(event="memory")
    except BaseException:
        report(event="program_error", detail=format_exception(sources))

    test_idx = 0
    for is_test, source, code in statements:
        try:
            exec(code, namespace)
        except MemoryError:
            report(event="memory")
        except BaseException as e:
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            detail = f"{source}\n{what}" if is_test else f"setup `{source}`\n{what}"
            got = observed_value(source, namespace) if isinstance(e, AssertionError) else None
            if got is not None:
                detail += f"\nleft side was: {got}"
            report(event="failed", test=test_idx, detail=clip(detail))
        if is_test:
            test_idx += 1
    report(event="passed", n_tests=test_idx)


def cut_statements(src, index):
    """[(is_test, source, code)] from the host's cut; SyntaxError if a piece does not compile."""
    lines = src.split("\n")
    out = []
    for entry in index.split("\n"):
        if not entry:
            continue
        kind, first, end = entry.split(" ")
        first, end = int(first), int(end)
        source = "\n".join(lines[first:end])
        # Leading newlines keep line numbers in tracebacks those of tests.py.
        out.append((kind == "T", source, compile("\n" * first + source, "tests.py", "exec")))
    return out


def ast_statements(src):
    import ast

    out = []
    for stmt in ast.parse(src, "tests.py").body:
        is_test = any(isinstance(node, ast.Assert) for node in ast.walk(stmt))
        code = compile(ast.Module(body=[stmt], type_ignores=[]), "tests.py", "exec")
        out.append((is_test, ast.get_source_segment(src, stmt) or "", code))
    return out


def observed_value(source, namespace):
    """For a failed `assert a == b`, the repr of `a`, to say what the program returned."""
    try:
        import ast

        stmt = ast.parse(source.strip()).body[0]
        if not (isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare)):
            return None
        left = eval(compile(ast.Expression(stmt.test.left), "tests.py", "eval"), namespace)
        return clip(repr(left), 500)
    except BaseException:
        return None


def format_exception(sources):
    import linecache
    import traceback

    for name, src in sources.items():
        # The files are gone; mtime None keeps these entries in the cache for the traceback.
        linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    return clip(traceback.format_exc())


def clip(text, n=DETAIL_CHARS):
    return text if len(text) <= n else text[: n // 2] + "\n…\n" + text[-n // 2 :]


def to_json(value):
    """Just enough JSON for a verdict (json's import costs more than the whole check)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int):
        return str(value)
    out = ['"']
    for ch in str(value):
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20:
            out.append("\\u%04x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")  # lone surrogates are not valid UTF-8
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


main()
