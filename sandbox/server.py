"""The program's side of process isolation: runs the program, then answers the referee's requests.

This code runs in the program's own process, so the program can change any of it. Nothing here
is trusted: it only has to serve honest programs well. Whatever it sends, the referee decodes as
plain data (sandbox/wire.py), and the tests never reach this process.

Requests (from the referee), one JSON frame each; "target" is a handle id:

    {"op": "start", "names": [...]}                   run the program; reply the names the tests use
    {"op": "call", "target", "args", "kwargs"}        {"op": "getattr" | "setattr" | "delattr", "target", "name"[, "value"]}
    {"op": "len" | "iter" | "str" | "dir", "target"}  {"op": "next", "target", "n"}
    {"op": "getitem" | "setitem" | "delitem", "target", "key"[, "value"]}
    {"op": "isinstance" | "issubclass", "target", "value"}
    {"op": "return", "ok" | "raise"}                  the result of a callback the program made

Replies: {"ok": value[, "mut": [[arg, value], ...]]} | {"raise": [builtin base, class handle, args,
message]} | {"exit": code} | {"exports": [[name, value], ...]} | {"error": [status, detail]} |
{"tamper": what the program did} (see _Watch);
and, at any time while a request runs, {"cb": id, "args", "kwargs"} to call a function the tests
passed in.

Python 3.11 standard library only: this file runs inside the image.
"""

from __future__ import annotations

import base64
import builtins
import functools
import importlib
import os
import pickle
import sys
import types

from sandbox import wire

__all__ = ["serve"]

_EXPORT_BUDGET = 10_000  # values of one global sent as data at start; a bigger one goes as a handle
_MESSAGE = 1000  # characters of an exception's message
_FUNCTIONS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    functools.partial,
)


_NOTHING = object()


class _Probe:
    """Equal only to itself: an object that claims equality with it compares equal to anything."""


def _answers(operation) -> bool:
    """Whether an operation with the probe gives an answer (an honest class raises TypeError)."""
    try:
        operation()
    except TypeError:
        return False
    return True


# (the dunders one of which the class must define, the probe, what a positive probe means)
_PROBES = (
    (("__eq__", "__ne__"), lambda v, p: (v == p) is not False or (v != p) is not True, "compares equal to anything"),
    (("__lt__", "__le__", "__gt__", "__ge__"), lambda v, p: _answers(lambda: v < p) or _answers(lambda: v > p), "orders against anything"),
    (("__sub__", "__rsub__", "__add__", "__radd__"), lambda v, p: _answers(lambda: v - p) or _answers(lambda: p - v), "does arithmetic with anything"),
)


# What an honest program has no reason to do, and a gaming one does to reach what tests use.
_SPYING = {
    "sys.settrace": "installed a trace hook (sys.settrace)",
    "sys.setprofile": "installed a profile hook (sys.setprofile)",
    "sys._current_frames": "walked the interpreter's frames (sys._current_frames)",
    "gc.get_objects": "searched the interpreter's objects (gc.get_objects)",
    "gc.get_referrers": "searched the interpreter's objects (gc.get_referrers)",
    "gc.get_referents": "searched the interpreter's objects (gc.get_referents)",
}
_OWN_BUILTINS = frozenset("input print open exit quit help copyright credits license _".split())  # I/O an honest program may rebind
_TESTED_MODULES = ("math", "cmath", "operator", "statistics", "functools", "itertools", "re", "string", "copy", "json", "random")


class _Watch:
    """What the program did to the interpreter that tests sharing it would use: replaced builtins
    or functions of the modules tests use, installed a trace or profile hook, searched the
    interpreter's objects or frames. The tests do not share it, so none of this can make them
    pass; it is reported as tamper evidence. Seen from inside the program's own process, it is
    advisory: a program can hide it from itself, never turn it into a pass."""

    def __init__(self) -> None:
        self.builtins = {k: v for k, v in vars(builtins).items() if k not in _OWN_BUILTINS}
        self.events: list[str] = []
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple) -> None:
        if event in _SPYING and not self.events:
            self.events.append(_SPYING[event])

    def seen(self, modules: bool = False) -> str:
        """The first attempt seen so far ("" if none); `modules`: look through the tested modules too."""
        if self.events:
            return self.events[0]
        current = vars(builtins)
        for name, value in self.builtins.items():
            if current.get(name, _NOTHING) is not value:
                return f"replaced builtins.{name}"
        for name in _TESTED_MODULES if modules else ():
            for attr, value in list(vars(sys.modules.get(name, _Probe)).items()):
                code = getattr(value, "__code__", None) if type(value) is types.FunctionType else None
                if code is not None and code.co_filename == "solution.py":
                    return f"replaced {name}.{attr}"
        return ""


def _describe(e: BaseException) -> str:
    try:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    except BaseException:
        text = type(e).__name__
    return text[:_MESSAGE]


def _article(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


class _Server:
    def __init__(self, channel: int):
        self.channel = channel
        self.objects: dict[int, object] = {}
        self.ids: dict[int, int] = {}  # id(obj) -> handle id; objects stay referenced, so ids stay unique
        self.pending: dict[int, BaseException] = {}  # iterator handle -> the exception its next pull raises
        self.encoder = wire.Encoder(self._other)
        self.decoder = wire.Decoder(handle=self._resolve, extra=self._extra)
        self.flush = (sys.stdout, sys.stderr)
        self.result: object = _NOTHING  # the value of the "ok" reply being sent, if it is one
        self.watch: _Watch | None = None

    # --- the channel ---

    def reply(self, message: dict) -> None:
        for stream in self.flush:
            try:
                stream.flush()
            except BaseException:
                pass
        try:
            wire.send(self.channel, message)
        except wire.ProtocolError:  # too large for a frame: a result goes as a handle instead
            if self.result is _NOTHING:
                wire.send(self.channel, {"raise": ["ValueError", None, None, "a reply too large to send to the tests"]})
            else:
                wire.send(self.channel, {"ok": self._handle(self.result, "")})
        except OSError:
            os._exit(0)  # the referee has gone: the job is over

    def loop(self, until_return: bool = False) -> dict:
        while True:
            try:
                message = wire.recv(self.channel)
            except (wire.ChannelClosed, wire.ProtocolError, OSError):
                self.reply_nothing()
            if message.get("op") == "return":
                if until_return:
                    return message
                continue
            answer = self.dispatch(message)
            seen = self.watch.seen() if self.watch is not None else ""
            self.reply({"tamper": seen} if seen else answer)

    def reply_nothing(self) -> None:
        for stream in self.flush:
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(0)

    # --- values ---

    def node(self, value: object, budget: int = wire.MAX_ITEMS) -> object:
        try:
            return self.encoder.node(value, budget)
        except (wire.TooBig, wire.Unhashable):
            return self._handle(value, "")

    def _other(self, value: object, depth: int) -> object:
        base = wire.data_base(value)
        if base is not None and wire.plain_subclass(value, base):
            return self.encoder.base_value(value, base, depth)
        if type(value) is bytearray:  # equal to the bytes it holds, as Python compares them
            return {"b": value.hex()}
        return self._handle(value, self._gaming(value))

    def _handle(self, value: object, note: str) -> dict:
        key = id(value)
        hid = self.ids.get(key)
        if hid is None:
            hid = len(self.objects) + 1
            self.ids[key] = hid
            self.objects[hid] = value
        cls = type(value)
        if issubclass(cls, type):
            if issubclass(value, BaseException):
                return {"h": [hid, "exception", value.__name__, wire.builtin_base(value)]}
            return {"h": [hid, "class", f"class {value.__name__}", ""]}
        if issubclass(cls, _FUNCTIONS):
            return {"h": [hid, "function", f"function {getattr(value, '__name__', '?')}", ""]}
        return {"h": [hid, "object", f"{_article(cls.__name__)} object", note]}

    def _gaming(self, value: object) -> str:
        """What an object does to pass for data: lie about its class, or compare, order or do
        arithmetic with an object it cannot know (a fresh probe). Only the operations its class
        defines are probed; an honest class answers the probe with NotImplemented."""
        cls = type(value)
        try:
            shown = object.__getattribute__(value, "__class__")
        except BaseException:
            shown = cls
        if shown is not cls:
            return f"disguises its class as {getattr(shown, '__name__', '?')}"
        probe = _Probe()
        for names, check, note in _PROBES:
            if all(getattr(cls, n, None) is getattr(object, n, None) for n in names):
                continue
            try:
                if check(value, probe):
                    return note
            except BaseException:
                pass
        return ""

    def _resolve(self, payload: object) -> object:
        if type(payload) is not int or payload not in self.objects:
            raise wire.ProtocolError("an unknown handle")
        return self.objects[payload]

    def _extra(self, tag: str, payload: object, depth: int) -> object:
        if tag == "cb" and type(payload) is int:
            return self._callback(payload)
        if tag == "bi" and type(payload) is str:
            return getattr(builtins, payload)
        if tag == "ref" and type(payload) is list and len(payload) == 2:
            found = importlib.import_module(payload[0])
            for part in payload[1].split("."):
                found = getattr(found, part)
            return found
        if tag == "p" and type(payload) is str:
            return pickle.loads(base64.b64decode(payload))
        raise wire.ProtocolError(f"unknown value tag {tag!r}")

    def _callback(self, cb_id: int):
        server = self

        def callback(*args: object, **kwargs: object) -> object:
            server.reply({"cb": cb_id, "args": server.node(args), "kwargs": server.node(kwargs)})
            answer = server.loop(until_return=True)
            if "ok" in answer:
                return server.decoder.value(answer["ok"])
            name, message = answer.get("raise", ["RuntimeError", "the callback failed"])
            cls = getattr(builtins, name, None) if type(name) is str else None
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                cls = RuntimeError
            raise cls(message)

        return callback

    def exception(self, e: BaseException) -> list:
        args = None
        try:
            node = self.encoder.node(e.args, 1000)
            if not wire.holds_ref(node):
                args = node
        except BaseException:
            pass
        try:
            message = str(e)[:_MESSAGE]
        except BaseException:
            message = ""
        return [wire.builtin_base(type(e)), self.ids.get(id(type(e))), args, message]

    # --- requests ---

    def dispatch(self, message: dict) -> dict:
        self.result = _NOTHING
        try:
            return self._dispatch(message)
        except SystemExit as e:
            try:
                code = repr(e.code)[:200]
            except BaseException:
                code = "?"
            self.reply({"exit": code})
            self.reply_nothing()
        except BaseException as e:
            return {"raise": self.exception(e)}

    def _dispatch(self, message: dict) -> dict:
        op = message.get("op")
        target = self._resolve(message.get("target"))
        value = self.decoder.value
        if op == "call":
            args = value(message["args"])
            pairs = message["kwargs"]
            kwargs = {k: value(v) for k, v in pairs}
            watched = [
                (where, arg, wire.dumps(node))
                for where, arg, node in list(zip(range(len(args)), args, message["args"]))
                + [(k, kwargs[k], v) for k, v in pairs]
                if type(arg) in (list, dict, set) and not wire.holds_ref(node)
            ]
            self.result = result = target(*args, **kwargs)
            reply = {"ok": self.node(result)}
            changed = []
            for where, arg, before in watched if result is None else ():  # in-place APIs return None
                try:
                    after = self.encoder.node(arg)
                except (wire.TooBig, wire.Unhashable):
                    continue
                if wire.dumps(after) != before and not wire.holds_ref(after):
                    changed.append([where, after])
            if changed:
                reply["mut"] = changed
            return reply
        if op == "getattr":
            self.result = found = getattr(target, message["name"])
            return {"ok": self.node(found)}
        if op == "setattr":
            setattr(target, message["name"], value(message["value"]))
            return {"ok": None}
        if op == "delattr":
            delattr(target, message["name"])
            return {"ok": None}
        if op == "len":
            return {"ok": len(target)}
        if op == "iter":
            return {"ok": self._handle(iter(target), "")}
        if op == "next":
            return {"ok": self._pull(message["target"], target, message["n"])}
        if op == "getitem":
            self.result = found = target[value(message["key"])]
            return {"ok": self.node(found)}
        if op == "setitem":
            target[value(message["key"])] = value(message["value"])
            return {"ok": None}
        if op == "delitem":
            del target[value(message["key"])]
            return {"ok": None}
        if op == "str":
            return {"ok": self.node(str(target))}
        if op == "dir":
            return {"ok": [n for n in dir(target) if type(n) is str]}
        if op == "isinstance":
            return {"ok": isinstance(value(message["value"]), target)}
        if op == "issubclass":
            return {"ok": issubclass(value(message["value"]), target)}
        raise ValueError(f"unknown request {op!r}")

    def _pull(self, hid: int, iterator: object, n: int) -> dict:
        """(up to n items, whether the iterator ended) as a tuple node. An exception after some
        items waits for the next pull."""
        if hid in self.pending:
            raise self.pending.pop(hid)
        items, ended = [], False
        for _ in range(max(1, min(int(n), 1024))):
            try:
                items.append(next(iterator))
            except StopIteration:
                ended = True
                break
            except BaseException as e:
                if not items:
                    raise
                self.pending[hid] = e
                break
        return {"t": [[self.node(x) for x in items], ended]}


def serve(job: dict, channel: int) -> None:
    """Run the program, then answer requests until the referee closes the channel. Never returns."""
    server = _Server(channel)
    _exit = os._exit
    try:
        start = wire.recv(channel)
    except (wire.ChannelClosed, wire.ProtocolError, OSError):
        _exit(0)
    names = [n for n in start.get("names", []) if type(n) is str]
    builtins.exit = builtins.quit = _Quitter()
    sys.argv = ["solution.py"]
    server.watch = _Watch()
    try:
        # dont_inherit: not this file's `from __future__ import annotations`, which would turn the
        # program's annotations into strings (and break its dataclasses)
        program = compile(job["program"], "solution.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:  # ValueError: a NUL byte
        server.reply({"error": ["syntax_error", _describe(e)]})
        server.reply_nothing()
    # A module of its own in sys.modules, as an imported program would have (dataclasses, pickle and
    # typing look their classes' modules up there).
    module = types.ModuleType("__solution__")
    module.__builtins__ = builtins
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    try:
        exec(program, namespace)
    except SystemExit as e:
        server.reply({"exit": repr(e.code)[:200]})
        server.reply_nothing()
    except MemoryError as e:
        server.reply({"error": ["memory", _describe(e)]})
        server.reply_nothing()
    except BaseException as e:
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
        server.reply({"error": ["runtime_error", f"while running the program: {_describe(e)}"]})
        server.reply_nothing()
    seen = server.watch.seen(modules=True)
    if seen:
        server.reply({"tamper": seen})
        server.reply_nothing()
    exports = []
    for name in names:
        if name in namespace and not name.startswith("__"):
            found = namespace[name]
            if isinstance(found, types.ModuleType):
                exports.append([name, {"m": found.__name__}])
            else:
                exports.append([name, server.node(found, _EXPORT_BUDGET)])
    server.reply({"exports": exports})
    server.loop()


class _Quitter:
    def __repr__(self) -> str:
        return "Use exit() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)

