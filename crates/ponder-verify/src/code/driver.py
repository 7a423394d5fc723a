"""ponder test driver, the TRUSTED side of a check: it runs the tests and decides the verdict.

`driver.py`: run each statement of tests.py (cut by the host into top-level statements:
tests.idx has `T|S FIRST_LINE END_LINE` per statement, T for one that contains an `assert`;
tests are numbered from 0; if a cut does not compile, `ast` cuts instead) and write the
verdict as one JSON line on descriptor 3. The program under test runs in another sandbox
(harness.py serve), reached only through descriptors 4 (requests) and 5 (replies).

Names in the tests resolve to, in order: what the tests define; Python's builtins (a program
cannot redefine `abs` or `len` for its judge); `program`, whose attributes are the program's
globals (for a function named like a builtin, `program.sum`); an importable module of that
name, imported here (a program cannot stand in for `math`); then the program's global of
that name. A global that is plain data (None, bool, int, float, complex, str, bytes, and
lists, tuples, dicts, sets of those) arrives as a fresh copy; a module the program imported
under another name is refused (the tests must import it); anything else (functions,
classes, objects) is a `Remote`:
calling it sends the arguments as plain data and returns the result as plain data (or
another `Remote`). A Remote can be called, iterated, indexed and have attributes read and
set, but never compared, hashed or used as a truth value: an object with its own `__eq__`
is a failure, not a comparison. Every comparison in the tests thus runs here on plain data,
and nothing the program does can reach this process's code or memory.

The program must follow the protocol exactly: a reply that does not parse, answers another
request, is not plain data, or is over REPLY_BYTES, or a program that exits, fails the test
in progress even if the tests catch the error. The host checks the reported number of tests
against the number it sent.

Startup is most of the cost of a check, so the passing path imports nothing beyond _json
(a C module; ast, json and traceback would add 25 ms to a 15 ms start).
"""

import os
import sys

VERDICT_FD = 3
REQUESTS_FD = 4
REPLIES_FD = 5
DETAIL_CHARS = 2000
REPLY_BYTES = 64 << 20


def main():
    import builtins

    builtins.exit = builtins.quit = sys.exit
    # Not this directory: `import tests` or a name `driver` must not find these files.
    del sys.path[0]
    os.set_inheritable(VERDICT_FD, False)
    sources = {}
    for name in ("tests.py", "tests.idx"):
        with open(name, encoding="utf-8") as f:
            sources[name] = f.read()
    tests_src = sources["tests.py"]
    try:
        statements = cut_statements(tests_src, sources["tests.idx"])
    except SyntaxError:
        try:
            statements = ast_statements(tests_src)
        except SyntaxError as e:
            report(event="harness_error", detail=f"tests do not parse: {e}")

    program = Program(builtins)
    greeting = program.receive_greeting()
    if greeting is not None:
        report(**greeting)
    namespace = Namespace(program, vars(builtins))

    test_idx = 0
    for is_test, source, code in statements:
        try:
            exec(code, namespace)
        except MemoryError:
            program.check_alive(test_idx)
            report(event="memory")
        except BaseException as e:
            program.check_alive(test_idx)
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            detail = f"{source}\n{what}" if is_test else f"setup `{source}`\n{what}"
            got = observed_value(source, namespace) if isinstance(e, AssertionError) else None
            if got is not None:
                detail += f"\nleft side was: {got}"
            report(event="failed", test=test_idx, detail=clip(detail))
        # A test that swallowed a broken protocol (`except: pass`) still fails.
        program.check_alive(test_idx)
        if is_test:
            test_idx += 1
    report(event="passed", n_tests=test_idx)


def report(**verdict):
    os.write(VERDICT_FD, (to_json(verdict) + "\n").encode("utf-8"))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    # Closing descriptor 4 on exit tells the program to stop; skip atexit and threads.
    os._exit(0)


class ProgramFailure(Exception):
    """An exception the program raised whose type is not a builtin one."""


def exception_types(builtins):
    """Builtin exception types a program's error maps to. StopIteration and friends are left
    out: raised from a call inside `all(map(f, xs))` they would end the loop early."""
    kept = {}
    for name, value in vars(builtins).items():
        if isinstance(value, type) and issubclass(value, Exception):
            if not issubclass(value, (StopIteration, StopAsyncIteration)):
                kept[name] = value
    return kept


class Program:
    """The connection to the program's process."""

    def __init__(self, builtins):
        import _json

        self.buffered = bytearray()
        self.next_id = 0
        self.broken = None  # why the protocol is over, once it is
        self.exited = False
        self.loaded = False
        self.errors = exception_types(builtins)
        self.quote = _json.encode_basestring_ascii
        conn = self

        class Context:
            strict = True
            object_hook = None
            object_pairs_hook = staticmethod(lambda pairs: decode_tagged(conn, pairs))
            parse_float = float
            parse_int = int
            parse_constant = float
            memo = {}

        self.scanner = _json.make_scanner(Context())

    def receive_greeting(self):
        """None once the program has loaded; else the verdict to report."""
        try:
            message = self.receive()
        except ProtocolError:
            return self.ended_verdict(0)
        if message == ["ready"]:
            self.loaded = True
            return None
        if message == ["memory"]:
            return {"event": "memory"}
        if (
            type(message) is list
            and len(message) == 2
            and message[0] == "program_error"
            and type(message[1]) is str
        ):
            return {"event": "program_error", "detail": message[1]}
        self.broken = "a greeting that is not one"
        return self.ended_verdict(0)

    def ended_verdict(self, test_idx):
        if self.exited:
            return {"event": "program_exited", "test": test_idx, "loaded": int(self.loaded)}
        return {
            "event": "failed",
            "test": test_idx,
            "detail": f"the program broke the protocol: {self.broken}",
        }

    def check_alive(self, test_idx):
        if self.broken is not None:
            report(**self.ended_verdict(test_idx))

    def request(self, op, *operands):
        if self.broken is not None:
            raise ProtocolError(self.broken)
        request_id = self.next_id
        self.next_id += 1
        out = []
        try:
            encode([request_id, op, *operands], out, self.quote)
        except RecursionError:
            raise TypeError("an argument is too deeply nested to pass to the program") from None
        self.send(("".join(out) + "\n").encode("ascii"))
        reply = self.receive()
        if type(reply) is not list or len(reply) < 2 or reply[0] != request_id:
            raise self.fail("a reply to another request")
        status = reply[1]
        if status == "ok" and len(reply) == 3:
            return reply[2]
        if status == "stop" and len(reply) == 2 and op == "next":
            raise StopIteration
        if status == "err" and len(reply) == 4 and type(reply[2]) is str and type(reply[3]) is str:
            kind, message = reply[2], reply[3]
            try:
                error = self.errors[kind](message)
            except Exception:  # not a builtin, or one that wants other arguments
                error = ProgramFailure(f"{kind}: {message}" if message else kind)
            raise error
        raise self.fail("a malformed reply")

    def fail(self, why):
        if self.broken is None:
            self.broken = why
        return ProtocolError(why)

    def send(self, data):
        try:
            while data:
                data = data[os.write(REQUESTS_FD, data):]
        except OSError:
            self.exited = True
            raise self.fail("the program exited") from None

    def receive(self):
        searched = 0
        while (end := self.buffered.find(b"\n", searched)) < 0:
            if len(self.buffered) > REPLY_BYTES:
                raise self.fail(f"a reply over {REPLY_BYTES} bytes")
            searched = len(self.buffered)
            try:
                chunk = os.read(REPLIES_FD, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self.exited = True
                raise self.fail("the program exited")
            self.buffered += chunk
        line = bytes(self.buffered[:end])
        del self.buffered[: end + 1]
        try:
            text = line.decode("ascii")
            value, end = self.scanner(text, 0)
        except (ValueError, TypeError, KeyError, StopIteration, RecursionError) as e:
            raise self.fail(f"a reply that is not plain data ({type(e).__name__})") from None
        if end != len(text):
            raise self.fail("trailing data after a reply")
        return value


class ProtocolError(Exception):
    pass


def decode_tagged(conn, pairs):
    """One-key JSON objects: the types JSON lacks, and handles."""
    if len(pairs) != 1:
        raise ValueError("not a tagged value")
    (tag, value), = pairs
    if tag == "t" and type(value) is list:
        return tuple(value)
    if tag == "d" and type(value) is list:
        out = {}
        for item in value:
            if type(item) is not list or len(item) != 2:
                raise ValueError("bad dict item")
            out[item[0]] = item[1]
        return out
    if tag == "s" and type(value) is list:
        return set(value)
    if tag == "f" and type(value) is list:
        return frozenset(value)
    if tag == "c" and type(value) is list and len(value) == 2:
        if all(type(x) in (int, float) for x in value):
            return complex(value[0], value[1])
    if tag == "b" and type(value) is str:
        return bytes.fromhex(value)
    if tag == "y" and type(value) is str:
        return bytearray.fromhex(value)
    if tag == "i" and type(value) is str and value.lstrip("-").startswith("0x"):
        return int(value, 16)
    if tag == "h" and type(value) is list and len(value) == 3:
        handle, type_name, kind = value
        kinds = ("module", "callable", "object")
        if type(handle) is int and type(type_name) is str and kind in kinds:
            return Remote(conn, handle, type_name[:100], kind)
    raise ValueError("unknown tag")


def encode(v, out, quote):
    """Test-side values to the wire: plain data (subclasses as their base) and Remotes."""
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, Remote):
        out.append('{"h":%d}' % object.__getattribute__(v, "_handle"))
    elif isinstance(v, int):
        v = int(v)
        out.append(str(v) if -(1 << 53) < v < (1 << 53) else '{"i":"%s"}' % hex(v))
    elif isinstance(v, float):
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            out.append("NaN" if v != v else "Infinity" if v > 0 else "-Infinity")
        else:
            out.append(repr(v))
    elif isinstance(v, str):
        out.append(quote(str(v)))
    elif isinstance(v, (list, tuple, dict, set, frozenset)):
        if isinstance(v, list):
            items, opening, closing = v, "[", "]"
        elif isinstance(v, dict):
            items, opening, closing = [[k, x] for k, x in v.items()], '{"d":[', "]}"
        else:
            tag = "t" if isinstance(v, tuple) else "f" if isinstance(v, frozenset) else "s"
            items, opening, closing = v, '{"%s":[' % tag, "]}"
        out.append(opening)
        for i, item in enumerate(items):
            if i:
                out.append(",")
            encode(item, out, quote)
        out.append(closing)
    elif isinstance(v, complex):
        out.append('{"c":[')
        encode(v.real, out, quote)
        out.append(",")
        encode(v.imag, out, quote)
        out.append("]}")
    elif isinstance(v, (bytes, bytearray)):
        out.append('{"%s":"%s"}' % ("b" if isinstance(v, bytes) else "y", v.hex()))
    else:
        raise TypeError(f"cannot pass a {type(v).__name__} to the program (only plain data)")


class Remote:
    """An object that lives in the program's process. Never compared, hashed or truth-tested
    here: its own methods would decide the result."""

    __slots__ = ("_conn", "_handle", "_type", "_kind")

    def __init__(self, conn, handle, type_name, kind):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_kind", kind)

    def _request(self, op, *operands):
        return object.__getattribute__(self, "_conn").request(op, self, *operands)

    def _refuse(self, *_):
        raise TypeError(
            f"the program returned a {object.__getattribute__(self, '_type')}, not plain data: "
            "it cannot be compared, hashed or used as a truth value"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = __bool__ = _refuse

    def __call__(self, *args, **kwargs):
        return self._request("call", list(args), [[k, v] for k, v in kwargs.items()])

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # copy, pickle and friends probe these
        return self._request("getattr", name)

    def __setattr__(self, name, value):
        self._request("setattr", name, value)

    def __iter__(self):
        iterator = self._request("iter")
        if not isinstance(iterator, Remote):
            raise TypeError("iter() of a program object gave plain data")
        while True:
            try:
                item = iterator._request("next")
            except StopIteration:
                return
            yield item

    def __len__(self):
        return self._request("len")

    def __getitem__(self, key):
        return self._request("getitem", key)

    def __contains__(self, item):
        return self._request("contains", item)

    def __str__(self):
        text = self._request("str")
        if type(text) is not str:
            raise TypeError("str() of a program object gave no string")
        return text

    def __repr__(self):
        return f"<the program's {object.__getattribute__(self, '_type')}>"

    def __copy__(self):
        return self  # a reference to the program's object; it cannot be copied here

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("a program object cannot be pickled")


class ProgramGlobals:
    """`program.NAME`: the program's global NAME, even when a builtin has that name."""

    def __init__(self, conn):
        object.__setattr__(self, "_conn", conn)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return object.__getattribute__(self, "_conn").request("get", name)

    def __repr__(self):
        return "<the program's globals>"


class Namespace(dict):
    """The tests' globals: a name they do not define is a builtin, a module, or the program's."""

    def __init__(self, program, builtins):
        super().__init__(__builtins__=builtins, __name__="__main__")
        self.program = program
        self.builtins = builtins
        self.program_globals = ProgramGlobals(program)
        self.modules = {}  # name -> whether it is an importable module

    def __missing__(self, name):
        if name in self.builtins:
            return self.builtins[name]
        if name == "program":
            return self.program_globals
        if self.is_module(name):
            # The module itself, as if the tests had imported it: a program's `math`
            # (a module or a stand-in with an `isclose` that always agrees) never is.
            value = __import__(name)
            self[name] = value
            return value
        try:
            value = self.program.request("get", name)
        except NameError:
            raise KeyError(name) from None
        if isinstance(value, Remote) and object.__getattribute__(value, "_kind") == "module":
            raise NameError(f"{name!r} is a module the program imported: import it in the tests")
        return value

    def is_module(self, name):
        if name not in self.modules:
            finders = [getattr(f, "find_spec", None) for f in sys.meta_path]
            found = (find(name, None) for find in finders if find is not None)
            self.modules[name] = any(spec is not None for spec in found)
        return self.modules[name]


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


def clip(text, n=DETAIL_CHARS):
    return text if len(text) <= n else text[: n // 2] + "\n…\n" + text[-n // 2 :]


def to_json(value):
    """Just enough JSON for a verdict."""
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
