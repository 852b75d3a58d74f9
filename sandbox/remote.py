"""The program's process as the referee sees it: requests out on the channel, replies decoded
into plain data (wire.Decoder) or proxies (proxies.py); the program's exceptions, its callbacks
into functions the tests passed it, and the names it gives the tests.

`Peer.fatal(status, detail, tamper=, gone=)` ends the referee: a program that broke the protocol
(tamper), whose process ended or closed its channel (gone: the harness words how), or that
returned an object gaming the tests (tamper) has nothing more to be asked.

Python 3.11 standard library only: this file runs inside the image.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import pickle
import sys
import types

from sandbox import proxies, wire

__all__ = ["Peer", "CannotSend"]

FAIL, SYNTAX_ERROR, RUNTIME_ERROR, MEMORY = "fail", "syntax_error", "runtime_error", "memory"
_TEXT = 160  # characters of program-chosen text (class names, messages) kept in a reason
_STDLIB = frozenset(sys.stdlib_module_names)
_BUILTIN_NAMES = frozenset(dir(builtins))


class CannotSend(Exception):
    """The tests passed the program a value that cannot cross (the data's fault, not the program's)."""


def _clip(text: object) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(text)[: _TEXT * 2])
    return text if len(text) <= _TEXT else text[: _TEXT - 3] + "..."


class Peer:
    """The program's process: requests go out on the channel, replies come back as data or
    handles. `fatal(status, detail, tamper)` ends the referee (it reports and exits)."""

    def __init__(self, fd: int, fatal):
        self.fd = fd
        self.fatal = fatal
        self.stage = "before the tests ran"
        self.violations: list[str] = []  # non-data results the tests tried to use as data
        self._proxies: dict[int, object] = {}
        self._exc_classes: dict[int, type] = {}  # handle id -> the tests' copy of a program exception class
        self._exc_ids: dict[type, int] = {}
        self._callbacks: dict[int, object] = {}
        self._callback_ids: dict[int, int] = {}  # id(function) -> its callback id
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
        self._ending(reply)
        self.broke(f"a reply with keys {sorted(reply)[:5]}")

    def _ending(self, reply: dict) -> None:
        """A reply that ends the job: the program exited, or its own side saw it game (server.py's _Watch)."""
        if set(reply) == {"exit"}:
            self.fatal(FAIL, f"the program exited (sys.exit({_clip(reply['exit'])})) {self.stage}", tamper=True)
        if set(reply) == {"tamper"} and type(reply["tamper"]) is str:
            self.fatal(FAIL, f"the program {_clip(reply['tamper'])} {self.stage}", tamper=True)

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
            or payload[1] not in (*proxies.KINDS, "exception")
        ):
            raise wire.ProtocolError("a malformed handle")
        hid, kind, desc, note = payload
        if kind == "object" and note:  # the program's own side saw a gaming object (its encoder can lie only to its cost)
            self.fatal(FAIL, f"the program returned {_clip(desc)} that {_clip(note)} {self.stage}", tamper=True)
        proxy = self._proxies.get(hid)
        if proxy is None:
            if kind == "exception":
                return self._exception_class(hid, desc, note)
            proxy = proxies.KINDS[kind](self, hid, _clip(desc))
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
            if type(args) is not tuple or any(proxies.is_handle(a) for a in args):
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
        if proxies.is_handle(value):
            return {"h": proxies.handle_id(value)}
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
            key = self._callback_ids.setdefault(id(value), len(self._callbacks) + 1)
            self._callbacks[key] = value  # and kept: its id stays its own
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
        except BaseException as e:
            reply = {"op": "return", "raise": [type(e).__name__, _clip(e)]}
        self._send(reply)

    # --- the tests' operations on handles ---

    def start(self, names: list[str]) -> dict:
        """Ask for the names the tests use; the program runs its module first, so this also
        carries its syntax and runtime errors. The tests' namespace entries, filtered."""
        self._send({"op": "start", "names": names})
        reply = self._recv()
        if set(reply) == {"error"} and type(reply["error"]) is list and len(reply["error"]) == 2:
            status, detail = reply["error"]
            if status in (SYNTAX_ERROR, RUNTIME_ERROR, MEMORY) and type(detail) is str:
                self.fatal(status, detail[:1000])
        self._ending(reply)
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
