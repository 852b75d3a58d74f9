"""The trusted process: runs a job's tests, or its call-based cases, against a program that runs in
another process and is reached only through proxies.

Each container has a warm referee zygote (driver.py, role "referee") that forks one referee per
job; the program runs in a process forked by the other zygote. The two share one socket and
nothing else: the referee is non-dumpable (the program can neither ptrace it nor open its /proc
files), the program never receives the tests, and the referee's report reaches the harness on a
pipe only the referee holds. What the program sends is decoded by wire.Decoder into plain data.

What the tests see of the program:
- each name the tests use that the program defines (never a builtin's name, nor a standard
  module's name bound to anything but that module) as plain data or as a proxy;
- calling a proxy sends the arguments as data and brings the result back as data; a result that
  is not data (an object of the program's class, a generator, a function) is a *handle*: the tests
  may call it, read and set its attributes, index it, take its len, str and iterate it, each a
  further call into the program. Comparing, hashing, truth-testing or doing arithmetic with a
  handle lets the program decide the test's outcome after seeing the expected value, so it is
  refused: the test fails, saying which result was not data (CannotCross);
- exceptions the program raises arrive as the built-in exception they derive from (or the tests'
  copy of the program's own exception class), with their arguments when those are data;
- lists, dicts and sets the tests pass to a call that returns None (an in-place API, as
  list.sort) and that the program changed are changed in place in the tests too.

Tamper evidence, reported with the flag "tamper" and a failing status: a result that compares
equal to anything or disguises its class, a frame that breaks the protocol, and (seen by the
harness) an exit before the tests finish, a referee that was killed or stopped.

Python 3.11 standard library only: this file runs inside the image.
"""

from __future__ import annotations

import _ast
import base64
import builtins
import importlib
import os
import pickle
import signal
import sys
import types

from sandbox import wire

__all__ = ["CannotCross", "ProgramGone", "Peer", "main", "referenced_names", "outputs_equal"]

PASS, FAIL, SYNTAX_ERROR, RUNTIME_ERROR, MEMORY, BAD_TESTS = (
    "pass", "fail", "syntax_error", "runtime_error", "memory", "bad_tests"
)
TAMPER = "tamper"
_ONLY_AST = 0x400  # ast.PyCF_ONLY_AST
_TEXT = 160  # characters of program-chosen text (class names, messages) kept in a reason
_BATCH_MAX = 1024  # items pulled from a program iterator per round trip
_STDLIB = frozenset(sys.stdlib_module_names)
_BUILTIN_NAMES = frozenset(dir(builtins))


class CannotCross(BaseException):
    """The tests used a program object as if it were data. A BaseException, so a test's
    `except Exception` cannot swallow it (and the referee records it anyway)."""


class ProgramGone(BaseException):
    """The program's process cannot answer any more: ended, closed its channel, broke the protocol."""


class CannotSend(Exception):
    """The tests passed the program a value that cannot cross (the data's fault, not the program's)."""


def _clip(text: object) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(text)[: _TEXT * 2])
    return text if len(text) <= _TEXT else text[: _TEXT - 3] + "..."


# --- the program, seen from the tests ---------------------------------------------------------


class Peer:
    """The program's process: requests go out on the channel, replies come back as data or
    handles. `fatal(status, detail, tamper)` ends the referee (it reports and exits)."""

    def __init__(self, fd: int, fatal):
        self.fd = fd
        self.fatal = fatal
        self.stage = "before the tests ran"
        self.violations: list[str] = []  # non-data results the tests tried to use as data
        self._proxies: dict[int, _Handle] = {}
        self._exc_classes: dict[int, type] = {}  # handle id -> the tests' copy of a program exception class
        self._exc_ids: dict[type, int] = {}
        self._callbacks: dict[int, object] = {}
        self._decoder = wire.Decoder(handle=self._handle)
        self._encoder = wire.Encoder(self._outgoing, refs_in_keys=True)

    # --- the channel ---

    def _send(self, message: dict) -> None:
        try:
            wire.send(self.fd, message)
        except OSError:
            self.gone()

    def _recv(self) -> dict:
        try:
            return wire.recv(self.fd)
        except (wire.ChannelClosed, OSError):
            self.gone()
        except wire.ProtocolError as e:
            self.broke(str(e))

    def gone(self) -> None:
        # The harness knows how the program ended (an exit, a signal, still running): it words it.
        self.fatal(FAIL, "the program's process ended or closed its channel", gone=self.stage)

    def broke(self, what: str) -> None:
        self.fatal(FAIL, f"the program wrote to its channel outside the protocol ({_clip(what)})", tamper=True)

    def request(self, message: dict, args: tuple = (), kwargs: dict | None = None, stop: bool = False) -> object:
        """Send one request; serve the program's callbacks until its reply; the reply's value.
        `stop`: a StopIteration the program raises ends an iteration (only a "next" may)."""
        self._send(message)
        while True:
            reply = self._recv()
            if "cb" in reply:
                self._callback(reply)
                continue
            break
        if set(reply) in ({"ok"}, {"ok", "mut"}):
            value = self._decode(reply["ok"])
            if "mut" in reply and value is None:  # an in-place API (list.sort's kind) returns None
                self._copy_back(reply["mut"], args, kwargs or {})
            return value
        if set(reply) == {"raise"}:
            raise self._exception(reply["raise"], stop)
        if set(reply) == {"exit"}:
            self.fatal(FAIL, f"the program exited (sys.exit({_clip(reply['exit'])})) {self.stage}", tamper=True)
        self.broke(f"a reply with keys {sorted(reply)[:5]}")

    def _decode(self, node: object) -> object:
        try:
            return self._decoder.value(node)
        except wire.ProtocolError as e:
            self.broke(str(e))
        except MemoryError:
            self.fatal(MEMORY, f"a result of the program is too large to hold {self.stage}")

    def encode(self, value: object) -> object:
        try:
            return self._encoder.node(value)
        except (wire.TooBig, wire.Unhashable):
            raise CannotSend(f"an argument too large or deep to send to the program ({type(value).__name__})") from None

    # --- values from the program ---

    def _handle(self, payload: object) -> object:
        if (
            type(payload) is not list
            or len(payload) != 4
            or type(payload[0]) is not int
            or not all(type(x) is str for x in payload[1:])
            or payload[1] not in _KINDS
        ):
            raise wire.ProtocolError("a malformed handle")
        hid, kind, desc, note = payload
        if kind == "object" and note:  # the program's own side saw a gaming object (its encoder can lie only to its cost)
            self.fatal(FAIL, f"the program returned {_clip(desc)} that {_clip(note)} {self.stage}", tamper=True)
        proxy = self._proxies.get(hid)
        if proxy is None:
            if kind == "exception":
                return self._exception_class(hid, desc, note)
            proxy = _KINDS[kind](self, hid, _clip(desc))
            self._proxies[hid] = proxy
        return proxy

    def _exception_class(self, hid: int, name: str, base_name: str) -> type:
        """The tests' own class for a program exception class, so `except InputError` works."""
        if hid not in self._exc_classes:
            base = getattr(builtins, base_name, None)
            if not (isinstance(base, type) and issubclass(base, Exception)):
                base = Exception
            name = name if name.isidentifier() else "ProgramError"
            cls = type(name, (base,), {"__module__": "solution"})
            self._exc_classes[hid] = cls
            self._exc_ids[cls] = hid
        return self._exc_classes[hid]

    def _exception(self, payload: object, stop: bool = False) -> BaseException:
        if type(payload) is not list or len(payload) != 4 or type(payload[0]) is not str or type(payload[3]) is not str:
            self.broke("a malformed exception")
        base_name, cls_id, args_node, message = payload
        cls = self._exc_classes.get(cls_id) if type(cls_id) is int else None
        if cls is None:
            cls = getattr(builtins, base_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)) or (
            issubclass(cls, (StopIteration, StopAsyncIteration)) and not stop
        ):
            # SystemExit or KeyboardInterrupt inside a call is an error, never an exit; a
            # StopIteration out of a call would end the tests' map() or next() early.
            return _runtime_error(base_name, message)
        args = None
        if args_node is not None:
            try:
                args = self._decoder.value(args_node)
            except wire.ProtocolError:
                args = None
            if type(args) is not tuple or any(isinstance(a, _Handle) for a in args):
                args = None
        for attempt in (args, (message[:1000],), ()):
            if attempt is None:
                continue
            try:
                return cls(*attempt)
            except Exception:
                continue
        return _runtime_error(base_name, message)

    def _copy_back(self, changes: object, args: tuple, kwargs: dict) -> None:
        """Lists, dicts and sets the program changed in place: change the tests' objects too."""
        if type(changes) is not list:
            self.broke("a malformed in-place change")
        for change in changes:
            if type(change) is not list or len(change) != 2:
                self.broke("a malformed in-place change")
            where, node = change
            if type(where) is int and 0 <= where < len(args):
                original = args[where]
            elif type(where) is str and where in kwargs:
                original = kwargs[where]
            else:
                self.broke("an in-place change of an argument that was not passed")
            new = self._decode(node)
            if type(new) is not type(original):
                continue
            if type(original) is list:
                original[:] = new
            elif type(original) in (dict, set):
                original.clear()
                original.update(new)

    # --- values to the program ---

    def _outgoing(self, value: object, depth: int) -> object:
        if isinstance(value, _Handle):
            return {"h": object.__getattribute__(value, "_id")}
        if isinstance(value, type) and value in self._exc_ids:
            return {"h": self._exc_ids[value]}
        base = wire.data_base(value)
        if base is not None:
            return self._encoder.base_value(value, base, depth)
        if callable(value):
            name = getattr(value, "__name__", None)
            if isinstance(name, str) and getattr(builtins, name, None) is value:
                return {"bi": name}
            ref = _stdlib_ref(value)
            if ref is not None:
                return {"ref": ref}
            key = len(self._callbacks) + 1
            self._callbacks[key] = value
            return {"cb": key}
        module = getattr(type(value), "__module__", "")
        if isinstance(module, str) and module.partition(".")[0] in _STDLIB:
            try:
                return {"p": base64.b64encode(pickle.dumps(value, protocol=4)).decode("ascii")}
            except Exception:
                pass
        raise CannotSend(f"the tests passed the program a {type(value).__name__}, which cannot cross to it")

    def _callback(self, message: dict) -> None:
        """The program calls a function the tests passed it: run it here, on data."""
        fn = self._callbacks.get(message.get("cb")) if type(message.get("cb")) is int else None
        if fn is None or set(message) != {"cb", "args", "kwargs"}:
            self.broke("a call of a function the tests never passed")
        args = self._decode(message["args"])
        kwargs = self._decode(message["kwargs"])
        if type(args) is not tuple or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
            self.broke("a malformed callback")
        try:
            reply = {"op": "return", "ok": self.encode(fn(*args, **kwargs))}
        except ProgramGone:
            raise
        except BaseException as e:
            reply = {"op": "return", "raise": [type(e).__name__, _clip(e)]}
        self._send(reply)

    # --- the tests' operations on handles ---

    def refuse(self, handle: _Handle, how: str) -> None:
        desc = object.__getattribute__(handle, "_desc")
        text = f"{desc} from the program is not data; the tests {how}"
        self.violations.append(text)
        raise CannotCross(text)

    def start(self, names: list[str]) -> dict:
        """Ask for the names the tests use; the program runs its module first, so this also
        carries its syntax and runtime errors. The tests' namespace entries, filtered."""
        self._send({"op": "start", "names": names})
        reply = self._recv()
        if set(reply) == {"error"} and type(reply["error"]) is list and len(reply["error"]) == 2:
            status, detail = reply["error"]
            if status in (SYNTAX_ERROR, RUNTIME_ERROR, MEMORY) and type(detail) is str:
                self.fatal(status, detail[:1000])
        if set(reply) == {"exit"}:
            self.fatal(FAIL, f"the program exited (sys.exit({_clip(reply['exit'])})) before the tests ran", tamper=True)
        if set(reply) != {"exports"} or type(reply["exports"]) is not list:
            self.broke("the first reply is not the program's names")
        namespace = {}
        wanted = set(names)
        for pair in reply["exports"]:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                self.broke("a malformed name")
            name, node = pair
            if name not in wanted or name in _BUILTIN_NAMES or name.startswith("__"):
                continue  # a builtin's name would shadow the tests' builtins (abs, all, isinstance...)
            if type(node) is dict and set(node) == {"m"}:
                # `import math` (or `import os.path`, bound to os): the referee's own copy of the
                # module, never the program's. An alias (`import os as math`) is not the tests' math.
                if type(node["m"]) is str and node["m"].partition(".")[0] == name:
                    module = _stdlib_module(name)
                    if module is not None:
                        namespace[name] = module
                continue
            if name in _STDLIB:
                continue  # `math` bound to something else: the tests' math.isclose must stay math's
            namespace[name] = self._decode(node)
        return namespace


def _runtime_error(name: str, message: str) -> RuntimeError:
    return RuntimeError(f"{_clip(name)}: {message[:1000]}" if message else _clip(name))


def _stdlib_module(name: object) -> types.ModuleType | None:
    if type(name) is not str or name.partition(".")[0] not in _STDLIB:
        return None
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _stdlib_ref(value: object) -> list[str] | None:
    """[module, qualname] of a standard-library function or class the program can import itself."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str)) or module.partition(".")[0] not in _STDLIB:
        return None
    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        return None
    return [module, qualname] if found is value else None


# --- proxies ------------------------------------------------------------------------------------


class _Handle:
    """A program object the tests hold. Each use below is a call into the program; comparisons,
    hashing, truth, arithmetic and containment are refused (see `Peer.refuse`)."""

    __slots__ = ("_peer", "_id", "_desc", "__weakref__")

    def __init__(self, peer: Peer, hid: int, desc: str):
        object.__setattr__(self, "_peer", peer)
        object.__setattr__(self, "_id", hid)
        object.__setattr__(self, "_desc", desc)

    def _ask(self, op: str, **fields: object) -> object:
        peer = object.__getattribute__(self, "_peer")
        return peer.request({"op": op, "target": object.__getattribute__(self, "_id"), **fields}, stop=op == "next")

    def _send(self, value: object) -> object:
        return object.__getattribute__(self, "_peer").encode(value)

    def _refuse(self, how: str) -> None:
        object.__getattribute__(self, "_peer").refuse(self, how)

    def __getattr__(self, name: str) -> object:
        return self._ask("getattr", name=name)

    def __setattr__(self, name: str, value: object) -> None:
        self._ask("setattr", name=name, value=self._send(value))

    def __delattr__(self, name: str) -> None:
        self._ask("delattr", name=name)

    def __len__(self) -> int:
        n = self._ask("len")
        if type(n) is not int or n < 0:
            object.__getattribute__(self, "_peer").broke("len() that is not a count")
        return n

    def __iter__(self):
        iterator = self._ask("iter")
        if not isinstance(iterator, _Handle):
            object.__getattribute__(self, "_peer").broke("iter() that is not an iterator")
        n = 1
        while True:
            items, end = iterator._pull(n)
            yield from items
            if end is not None:
                if isinstance(end, StopIteration):
                    return
                raise end
            n = min(n * 8, _BATCH_MAX)

    def __next__(self) -> object:
        items, end = self._pull(1)
        if items:
            return items[0]
        raise end if end is not None else StopIteration

    def _pull(self, n: int) -> tuple[list, BaseException | None]:
        """Up to n items from a program iterator: (items, None) while it goes on, (items, the
        exception that ended it) at its end."""
        peer = object.__getattribute__(self, "_peer")
        try:
            batch = self._ask("next", n=n)
        except StopIteration:
            return [], StopIteration()
        except Exception as e:
            return [], e
        if type(batch) is not tuple or len(batch) != 2 or type(batch[0]) is not list or type(batch[1]) is not bool:
            peer.broke("next() that is not a batch of items")
        items, ended = batch
        if len(items) > n:
            peer.broke("next() that is not a batch of items")
        return items, (StopIteration() if ended else None)

    def __getitem__(self, key: object) -> object:
        return self._ask("getitem", key=self._send(key))

    def __setitem__(self, key: object, value: object) -> None:
        self._ask("setitem", key=self._send(key), value=self._send(value))

    def __delitem__(self, key: object) -> None:
        self._ask("delitem", key=self._send(key))

    def __str__(self) -> str:
        text = self._ask("str")
        if type(text) is not str:
            object.__getattribute__(self, "_peer").broke("str() that is not a str")
        return text

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_desc')}, in the program>"

    def __dir__(self) -> list:
        names = self._ask("dir")
        return [n for n in names if type(n) is str] if type(names) is list else []

    def __contains__(self, item: object) -> bool:
        # `x in handle` compares here, item by item, over the program's iteration
        return any(_same(item, x) for x in self)

    def __eq__(self, other: object) -> bool:
        # Against None or itself identity answers, as for any object; against anything else the
        # program's __eq__ would decide after seeing the expected value.
        if other is None or other is self:
            return other is self
        self._refuse("compared it with ==")

    def __ne__(self, other: object) -> bool:
        if other is None or other is self:
            return other is not self
        self._refuse("compared it with !=")

    __hash__ = None  # replaced below: hashing is refused, not unhashable


def _same(a: object, b: object) -> bool:
    return a is b or a == b


# Each use of a handle that would let the program decide a test's outcome, and how a reason says it.
_REFUSED = {
    "__lt__": "ordered it with <",
    "__le__": "ordered it with <=", "__gt__": "ordered it with >", "__ge__": "ordered it with >=",
    "__hash__": "hashed it", "__bool__": "took its truth value", "__index__": "used it as an integer",
    "__int__": "converted it with int()", "__float__": "converted it with float()",
    "__complex__": "converted it with complex()", "__round__": "rounded it", "__mro_entries__": "subclassed it",
    **{
        f"__{name}__": f"used it in arithmetic (__{name}__)"
        for name in (
            "add sub mul matmul truediv floordiv mod divmod pow lshift rshift and xor or "
            "radd rsub rmul rmatmul rtruediv rfloordiv rmod rdivmod rpow rlshift rrshift rand rxor ror "
            "neg pos abs invert trunc floor ceil"
        ).split()
    },
}


def _refusal(name: str, how: str):
    def refuse(self: _Handle, *args: object) -> None:
        self._refuse(how)

    refuse.__name__ = name
    return refuse


for _name, _how in _REFUSED.items():
    setattr(_Handle, _name, _refusal(_name, _how))


class _Callable(_Handle):
    __slots__ = ()

    def __call__(self, *args: object, **kwargs: object) -> object:
        peer = object.__getattribute__(self, "_peer")
        encoded = [peer.encode(a) for a in args]
        named = [[k, peer.encode(v)] for k, v in kwargs.items()]
        return peer.request(
            {"op": "call", "target": object.__getattribute__(self, "_id"), "args": encoded, "kwargs": named},
            args,
            kwargs,
        )


class _Function(_Callable):
    """A function or class of the program: the tests compare it by identity, and it is truthy,
    as any function is; no call into the program decides either."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        return True


class _Class(_Function):
    __slots__ = ()

    def __instancecheck__(self, obj: object) -> bool:
        return self._check("isinstance", obj)

    def __subclasscheck__(self, cls: object) -> bool:
        return self._check("issubclass", cls)

    def _check(self, op: str, value: object) -> bool:
        answer = self._ask(op, value=self._send(value))
        if type(answer) is not bool:
            object.__getattribute__(self, "_peer").broke(f"{op}() that is not a bool")
        return answer


_KINDS = {"object": _Callable, "function": _Function, "class": _Class, "exception": None}


# --- running a job ------------------------------------------------------------------------------


def referenced_names(codes: list) -> list[str]:
    """Every global or attribute name the code objects (and the code nested in them) mention."""
    names: set[str] = set()
    stack = list(codes)
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return sorted(names)


def _as_lists(value: object) -> object:
    """Tuples as lists, all the way down: call-based expected outputs come from JSON."""
    if type(value) in (list, tuple):
        return [_as_lists(x) for x in value]
    if type(value) is dict:
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def outputs_equal(result: object, expected: object) -> bool:
    """APPS / TACO's rule: the result equals the expected output, tuples read as lists; or, as
    those datasets wrap each output in a one-element list, equals that list's element."""
    result = _as_lists(result)
    if result == expected:
        return True
    return type(expected) is list and len(expected) == 1 and result == expected[0]


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text[:1000]


class _Run:
    """One job's outcome so far, and the single way it ends: one report line, then exit."""

    def __init__(self, nonce: str, report_fd: int):
        self.nonce = nonce
        self.report_fd = report_fd
        self.passed = 0
        self.total = 1

    def finish(self, status: str, detail: str = "", tamper: bool = False, gone: str = "") -> None:
        import json

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        report = {
            "status": status,
            "passed": 0 if tamper else self.passed,
            "total": self.total,
            "detail": detail,
            "flags": [TAMPER] if tamper else [],
            "gone": gone,
        }
        line = f"{self.nonce} done {json.dumps(report).encode().hex()}\n"
        try:
            os.write(self.report_fd, line.encode())
        except OSError:
            pass
        os._exit(0)


def main(job: dict, report_fd: int, channel_fd: int) -> None:
    """Run one job ({"mode": "tests" | "calls", "tests" | "calls", "partial", "nonce"}); ends the process."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)  # a signal from the program ends the referee, never steers it
    run = _Run(job["nonce"], report_fd)
    peer = Peer(channel_fd, run.finish)
    try:
        if job["mode"] == "calls":
            _run_calls(job, run, peer)
        else:
            _run_tests(job, run, peer)
    except MemoryError:
        run.finish(MEMORY, f"MemoryError {peer.stage}")
    except BaseException as e:  # a referee bug: the harness says so and the host retries elsewhere
        run.finish("harness_error", f"referee: {_describe(e)}")


def _run_tests(job: dict, run: _Run, peer: Peer) -> None:
    try:
        tree = compile(job["tests"], "tests.py", "exec", _ONLY_AST)
        statements = [
            (compile(_ast.Module(body=[node], type_ignores=[]), "tests.py", "exec"), isinstance(node, _ast.Assert))
            for node in tree.body
        ]
        names = referenced_names([code for code, _ in statements])
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        run.finish(BAD_TESTS, f"the reference tests do not compile: {_describe(e)}")
    n_asserts = sum(is_assert for _, is_assert in statements)
    run.total = n_asserts or 1
    partial = bool(job.get("partial"))

    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    namespace.update(peer.start(names))
    peer.stage = "during the tests"
    first_failure: tuple[str, str] | None = None
    for index, (code, is_assert) in enumerate(statements):
        where = f"test statement {index + 1} (line {tree.body[index].lineno})"
        failure = _attempt(run, where, lambda: exec(code, namespace))
        if failure is not None:
            first_failure = first_failure or failure
            if not (partial and is_assert):
                # A failed setup statement leaves later tests meaningless; without partial
                # credit the first failure decides.
                run.finish(*first_failure)
            continue
        run.passed += is_assert
    if peer.violations and first_failure is None:
        first_failure = (FAIL, peer.violations[0])  # a test swallowed the refusal; it still fails
    if first_failure is not None:
        run.finish(*first_failure)
    run.passed = run.total
    run.finish(PASS)


def _attempt(run: _Run, where: str, action) -> tuple[str, str] | None:
    """Run one test statement or case: None when it passed, else (status, detail). Ends the run
    on a MemoryError, or when the tests passed the program what cannot cross (bad tests)."""
    try:
        action()
    except CannotSend as e:
        run.finish(BAD_TESTS, f"{where}: {e}; tests that need it can run with isolation 'shared'")
    except MemoryError as e:
        run.finish(MEMORY, f"{where}: {_describe(e)}")
    except BaseException as e:
        status = FAIL if isinstance(e, (AssertionError, CannotCross)) else RUNTIME_ERROR
        return status, f"{where}: {e if isinstance(e, CannotCross) else _describe(e)}"
    return None


def _run_calls(job: dict, run: _Run, peer: Peer) -> None:
    """Call-based cases: {"fn_name", "class_name", "inputs", "outputs"} (see verifiers/code.py)."""
    spec = job["calls"]
    fn_name, class_name = spec.get("fn_name"), spec.get("class_name")
    inputs, outputs = spec["inputs"], spec["outputs"]
    run.total = len(inputs)
    partial = bool(job.get("partial"))
    names = [n for n in (fn_name, class_name, "Solution") if n]
    exports = peer.start(names)

    def target():
        """What one case calls: fn_name of the program, or of a fresh instance of its class."""
        owner = class_name or (None if fn_name in exports else "Solution")
        if owner is None:
            return exports[fn_name]
        if owner not in exports:
            raise NameError(f"the program defines no {fn_name or owner!r}")
        return getattr(exports[owner](), fn_name)

    def case(args: list, expected: object) -> None:
        if fn_name is None:  # a design problem: [operations, arguments], the first the constructor
            ops, op_args = args
            obj = exports[class_name](*op_args[0]) if class_name in exports else _missing(class_name)
            results = [None] + [getattr(obj, op)(*a) for op, a in zip(ops[1:], op_args[1:])]
            ok = len(results) == len(expected) and all(outputs_equal(r, e) for r, e in zip(results, expected))
        else:
            ok = outputs_equal(target()(*args), expected)
        if not ok:
            raise AssertionError("wrong output")

    first_failure = None
    for i, (args, expected) in enumerate(zip(inputs, outputs)):
        peer.stage = f"during case {i}"
        failure = _attempt(run, f"case {i}", lambda: case(args, expected))
        if failure is not None:
            first_failure = first_failure or failure
            if not partial:
                run.finish(*first_failure)
            continue
        run.passed += 1
    if first_failure is not None:
        run.finish(*first_failure)
    run.finish(PASS)


def _missing(name: str) -> None:
    raise NameError(f"the program defines no {name!r}")
