"""ponder check harness, the PROGRAM side: untrusted, since the program can change anything here.

`harness.py serve`: load program.py as module `candidate`, say so on descriptor 4, then answer
the test driver's requests from descriptor 3 until it closes: one JSON array per line,
`[id, op, operands...]`, answered by `[id, "ok", value]`, `[id, "err", type, message]` or
`[id, "stop"]` (the end of an iterator). Ops: get (a global), call, getattr, setattr, iter,
next, len, getitem, contains, str. Values are plain data (JSON, with one-key objects for what
JSON lacks: tuples, sets, dicts, complex numbers, bytes, big integers); anything else goes as
a handle, `{"h": [id, type, kind]}`, that the driver can only call or query.

Nothing here decides a verdict. The driver (driver.py, in another sandbox) runs the tests and
compares; what this process sends is only the program's answer to a call, so a program that
rewrites this file's functions, or writes to descriptor 4 itself, changes only its answers.

`harness.py io`: run program.py as __main__ (stdin/stdout judged by the host).

Python runs with -S (no site module: 75 ms -> 15 ms here), so this restores what site would
give programs: `exit` and `quit`; the host sets PYTHONPATH to the site-packages.
"""

import os
import sys

REQUESTS_FD = 3
REPLIES_FD = 4
MESSAGE_CHARS = 2000
# JSON numbers beyond 2**53 lose precision in many readers; bigger ints go as hex.
EXACT_INT = 1 << 53


def main():
    import builtins

    builtins.exit = builtins.quit = sys.exit
    if sys.argv[1] == "io":
        run_io()
    serve()


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


def serve():
    import _json

    with open("program.py", encoding="utf-8") as f:
        src = f.read()
    for name in ("program.py", "harness.py"):
        try:
            os.unlink(name)
        except OSError:
            pass
    handles = []
    codec = Codec(_json, handles)

    namespace = module_namespace("candidate")
    sys.argv = ["program.py"]
    try:
        exec(compile(src, "program.py", "exec"), namespace)
    except MemoryError:
        send(b'["memory"]\n')
        os._exit(0)
    except BaseException:
        send(codec.line(["program_error", format_exception(src)]))
        os._exit(0)
    send(b'["ready"]\n')

    ops = {
        "get": lambda name: namespace[name] if name in namespace else raise_name_error(name),
        "call": lambda f, args, kwargs: f(*args, **dict(kwargs)),
        "getattr": getattr,
        "setattr": setattr,
        "iter": iter,
        "next": next,
        "len": len,
        "getitem": lambda obj, key: obj[key],
        "contains": lambda obj, item: item in obj,
        "str": str,
    }
    buffered = bytearray()
    searched = 0
    while True:
        while (end := buffered.find(b"\n", searched)) < 0:
            searched = len(buffered)
            chunk = os.read(REQUESTS_FD, 1 << 20)
            if not chunk:
                # The driver is done: skip atexit handlers and the program's threads.
                os._exit(0)
            buffered += chunk
        line = bytes(buffered[:end])
        del buffered[: end + 1]
        searched = 0
        request_id = op = None
        try:
            request = codec.decode(line.decode("utf-8"))
            request_id, op = request[0], request[1]
            value = ops[op](*request[2:])
            reply = codec.line([request_id, "ok", value])
        except StopIteration as e:
            # Only the end of an iterator: raised by a call it is an error like any other.
            if op == "next":
                reply = codec.line([request_id, "stop"])
            else:
                reply = error_reply(codec, request_id, e)
        except BaseException as e:
            reply = error_reply(codec, request_id, e)
        send(reply)


def raise_name_error(name):
    raise NameError(f"name {name!r} is not defined")


def error_reply(codec, request_id, error):
    try:
        message = str(error)
    except BaseException:
        message = ""
    try:
        return codec.line([request_id, "err", type(error).__name__, clip(message)])
    except BaseException:
        # Out of memory, or a message that cannot be encoded: the type alone.
        kind = "MemoryError" if isinstance(error, MemoryError) else "Exception"
        return codec.line([request_id, "err", kind, ""])


def send(data):
    while data:
        n = os.write(REPLIES_FD, data)
        data = data[n:]


class Codec:
    """Values to and from the wire; handles are indices into `handles`."""

    def __init__(self, _json, handles):
        self.handles = handles
        self.quote = _json.encode_basestring_ascii
        codec = self

        class Context:
            strict = True
            object_hook = None
            object_pairs_hook = staticmethod(lambda pairs: codec.tagged(pairs))
            parse_float = float
            parse_int = int
            parse_constant = float
            memo = {}

        self.scanner = _json.make_scanner(Context())

    def decode(self, text):
        value, end = self.scanner(text, 0)
        if end != len(text):
            raise ValueError("trailing data in request")
        return value

    def tagged(self, pairs):
        (tag, value), = pairs
        if tag == "h":
            return self.handles[value]
        if tag == "t":
            return tuple(value)
        if tag == "d":
            return {k: v for k, v in value}
        if tag == "s":
            return set(value)
        if tag == "f":
            return frozenset(value)
        if tag == "c":
            return complex(value[0], value[1])
        if tag == "b":
            return bytes.fromhex(value)
        if tag == "y":
            return bytearray.fromhex(value)
        if tag == "i":
            return int(value, 16)
        raise ValueError(f"unknown tag {tag!r}")

    def line(self, value):
        out = []
        self.encode(value, out)
        out.append("\n")
        return "".join(out).encode("ascii")

    def encode(self, v, out):
        if v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        else:
            t = type(v)
            if t is str:
                out.append(self.quote(v))
            elif t is int:
                out.append(str(v) if -EXACT_INT < v < EXACT_INT else '{"i":"%s"}' % hex(v))
            elif t is float:
                out.append(float_text(v))
            elif t is list:
                self.sequence(v, out, "[", "]")
            elif t is tuple:
                self.sequence(v, out, '{"t":[', "]}")
            elif t is dict:
                self.sequence([[k, x] for k, x in v.items()], out, '{"d":[', "]}")
            elif t is set:
                self.sequence(list(v), out, '{"s":[', "]}")
            elif t is frozenset:
                self.sequence(list(v), out, '{"f":[', "]}")
            elif t is complex:
                out.append('{"c":[%s,%s]}' % (float_text(v.real), float_text(v.imag)))
            elif t is bytes:
                out.append('{"b":"%s"}' % v.hex())
            elif t is bytearray:
                out.append('{"y":"%s"}' % v.hex())
            else:
                self.encode_other(v, out)

    def encode_other(self, v, out):
        """Subclasses of plain types as their base (an IntEnum as its int, a namedtuple as a
        tuple, a Counter as a dict); any other object as a handle."""
        for base, convert in (
            (bool, bool.__bool__),
            (int, int.__index__),
            (float, float.__float__),
            (str, str.__str__),
            (tuple, tuple),
            (list, list),
            (dict, lambda d: dict(dict.items(d))),
            (frozenset, frozenset),
            (set, set),
        ):
            if isinstance(v, base):
                plain = convert(v)
                if type(plain) is not base:
                    raise TypeError(f"cannot send a {type(v).__name__}")
                self.encode(plain, out)
                return
        self.handles.append(v)
        kind = "module" if isinstance(v, type(sys)) else "callable" if callable(v) else "object"
        type_name = self.quote(type(v).__name__)
        out.append('{"h":[%d,%s,"%s"]}' % (len(self.handles) - 1, type_name, kind))

    def sequence(self, items, out, opening, closing):
        out.append(opening)
        for i, item in enumerate(items):
            if i:
                out.append(",")
            self.encode(item, out)
        out.append(closing)


def float_text(x):
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def format_exception(src):
    import linecache
    import traceback

    # The file is gone; mtime None keeps this entry in the cache for the traceback.
    linecache.cache["program.py"] = (len(src), None, src.splitlines(True), "program.py")
    return clip(traceback.format_exc())


def clip(text, n=MESSAGE_CHARS):
    return text if len(text) <= n else text[: n // 2] + "\n…\n" + text[-n // 2 :]


main()
