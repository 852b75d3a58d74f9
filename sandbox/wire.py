"""What crosses between a program and its tests: plain data, in length-prefixed JSON frames.

The tests run in a trusted process (sandbox/referee.py), the program in its own (sandbox/server.py);
they talk over one socket. Every value that reaches the trusted side passes `Decoder.value`, which
builds it from the JSON text with exact types only:

    None, bool, int, float, complex, str, bytes, and list / tuple / dict / set / frozenset of them

at most `MAX_DEPTH` deep and `MAX_ITEMS` values per frame, `MAX_FRAME` bytes. Nothing else can be
built from a frame, so nothing that crosses carries behaviour: an `int` subclass arrives as the int
it holds or not at all, and an object of the program's own class arrives as a *handle*, an opaque
reference the tests may only use through further calls into the program (see referee.py).

JSON node of each value (a tag object holds exactly one key):

    null, true, false, 12, 1.5, NaN, "text", [list items]   themselves
    {"t": [...]} tuple    {"s": [...]} set     {"f": [...]} frozenset    {"d": [[k, v], ...]} dict
    {"b": "hex"} bytes    {"c": [re, im]} complex                        {"i": "-1f"} a huge int
    {"h": [id, kind, description, note]}   a program object (program -> tests only)
    {"cb": id} {"bi": name} {"ref": [module, qualname]} {"p": "base64 pickle"}   (tests -> program only)

The program's side of the encoding (`Encoder`) runs in the program's process, so the program can
replace it: it decides only *which* data it sends, never what the trusted side makes of it.

Python 3.11 standard library only: this file also runs inside the image.
"""

from __future__ import annotations

import builtins
import json
import os
import sys

__all__ = [
    "MAX_FRAME",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "ProtocolError",
    "ChannelClosed",
    "TooBig",
    "Unhashable",
    "send",
    "recv",
    "Encoder",
    "Decoder",
    "DATA_TYPES",
    "BEHAVIOUR",
    "data_base",
    "plain_subclass",
    "from_stdlib",
    "builtin_base",
    "holds_ref",
    "dumps",
]

MAX_FRAME = 8 << 20  # bytes of one frame
MAX_DEPTH = 100  # nesting of containers
MAX_ITEMS = 1_000_000  # values in one frame
_BIG_INT_BITS = 12_000  # beyond ~3,600 digits an int travels as hex (str(int) stops at 4,300 digits)

DATA_TYPES = (type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)
_HASHABLE = (type(None), bool, int, float, complex, str, bytes, tuple, frozenset)


class ProtocolError(Exception):
    """A frame that breaks the protocol: malformed, too large, too deep, an unknown tag."""


class ChannelClosed(Exception):
    """The other side closed its end (it exited, was killed, or closed the socket)."""


# --- frames --------------------------------------------------------------------------------------

dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode
_loads = json.JSONDecoder().decode


def send(fd: int, message: dict) -> None:
    data = dumps(message).encode("ascii")
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"a message of {len(data)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise ChannelClosed("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int) -> dict:
    """One message. ChannelClosed at end of stream; ProtocolError for anything but a frame."""
    size = int.from_bytes(_read_exact(fd, 4), "big")
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame header announced {size} bytes (the limit is {MAX_FRAME})")
    body = _read_exact(fd, size)
    try:
        message = _loads(body.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"a frame is not JSON ({type(e).__name__})") from None
    if type(message) is not dict:
        raise ProtocolError("a frame is not a JSON object")
    return message


# --- the trusted side: JSON nodes -> values of exact types ----------------------------------------


class Decoder:
    """Builds values from JSON nodes; each frame gets a fresh budget of `MAX_ITEMS` values.

    `handle(payload)` makes the trusted side's proxy for an {"h": [...]} node; `extra(tag, payload)`
    resolves the tags only the program's side accepts. Without them those tags are errors."""

    def __init__(self, handle=None, extra=None):
        self._handle = handle
        self._extra = extra
        self._left = MAX_ITEMS

    def value(self, node: object) -> object:
        self._left = MAX_ITEMS
        return self._value(node, 0)

    def _value(self, node: object, depth: int) -> object:
        self._left -= 1
        if self._left < 0:
            raise ProtocolError(f"more than {MAX_ITEMS} values in one message")
        if node is None or node is True or node is False:
            return node
        kind = type(node)
        if kind is int or kind is float or kind is str:
            return node
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"values nested deeper than {MAX_DEPTH}")
        if kind is list:
            return [self._value(x, depth + 1) for x in node]
        if kind is not dict or len(node) != 1:
            raise ProtocolError("a value node is neither JSON data nor a one-key tag object")
        [(tag, payload)] = node.items()
        if tag == "t":
            return tuple(self._items(payload, depth))
        if tag == "d":
            if type(payload) is not list:
                raise ProtocolError("a dict node must hold a list of pairs")
            out = {}
            for pair in payload:
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("a dict node must hold a list of [key, value] pairs")
                out[self._key(pair[0], depth)] = self._value(pair[1], depth + 1)
            return out
        if tag == "s":
            return {self._key(x, depth) for x in self._list(payload)}
        if tag == "f":
            return frozenset(self._key(x, depth) for x in self._list(payload))
        if tag == "b":
            if type(payload) is not str:
                raise ProtocolError("a bytes node must hold hex text")
            try:
                return bytes.fromhex(payload)
            except ValueError:
                raise ProtocolError("a bytes node must hold hex text") from None
        if tag == "c":
            if type(payload) is not list or len(payload) != 2 or not all(type(x) in (int, float) for x in payload):
                raise ProtocolError("a complex node must hold [real, imag]")
            return complex(float(payload[0]), float(payload[1]))
        if tag == "i":
            if type(payload) is not str or not 0 < len(payload) <= MAX_FRAME:
                raise ProtocolError("a big-int node must hold hex text")
            try:
                return int(payload, 16)
            except ValueError:
                raise ProtocolError("a big-int node must hold hex text") from None
        if tag == "h" and self._handle is not None:
            return self._handle(payload)
        if self._extra is not None:
            return self._extra(tag, payload, depth)
        raise ProtocolError(f"unknown value tag {tag[:40]!r}")

    def _list(self, payload: object) -> list:
        if type(payload) is not list:
            raise ProtocolError("a container node must hold a list")
        return payload

    def _items(self, payload: object, depth: int) -> list:
        return [self._value(x, depth + 1) for x in self._list(payload)]

    def _key(self, node: object, depth: int) -> object:
        key = self._value(node, depth + 1)
        if not _is_hashable_data(key):
            raise ProtocolError("a dict key or set element is not hashable data")
        return key


def _is_hashable_data(value: object) -> bool:
    kind = type(value)
    if kind is tuple:
        return all(_is_hashable_data(x) for x in value)
    if kind is frozenset:
        return True  # its elements were checked as keys when it was built
    return kind in _HASHABLE


# --- either side: values -> JSON nodes -----------------------------------------------------------

# What lets a value decide how the tests compare it. A subclass of a data type whose own classes
# (outside the standard library) define none of these crosses as the base value it holds: a Counter
# as a dict, a namedtuple as a tuple, an IntEnum member as an int, a str whose strip() is odd as the
# str it holds (the override stays behind). One that defines any of them crosses as a handle.
BEHAVIOUR = frozenset(
    "__eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__ __class__ __getattribute__".split()
)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins"}


def from_stdlib(cls: type) -> bool:
    """Whether a class comes from the standard library (C types carry no __module__ in __dict__)."""
    module = cls.__dict__.get("__module__", getattr(cls, "__module__", None))
    return isinstance(module, str) and module.partition(".")[0] in _STDLIB


def data_base(value: object) -> type | None:
    """The data type `value` is an instance of (exactly, or through a subclass), or None."""
    kind = type(value)
    if kind in DATA_TYPES:
        return kind
    for base in DATA_TYPES[1:]:
        if issubclass(kind, base):  # the real class: a __class__ property cannot change it
            return base
    return None


def plain_subclass(value: object, base: type) -> bool:
    """True when no class between type(value) and `base`, outside the standard library, gives it
    behaviour of its own (see BEHAVIOUR)."""
    for cls in type(value).__mro__:
        if cls is base:
            return True
        if not from_stdlib(cls) and BEHAVIOUR.intersection(cls.__dict__):
            return False
    return True


class TooBig(Exception):
    """A value over MAX_DEPTH or MAX_ITEMS: it cannot cross as data."""


class Unhashable(Exception):
    """A dict key or set element that is not data."""


def holds_ref(node: object) -> bool:
    """Whether a node holds anything but data (a handle, a callback, a reference)."""
    if type(node) is list:
        return any(holds_ref(x) for x in node)
    if type(node) is dict:
        [(tag, payload)] = node.items()
        return tag not in ("t", "s", "f", "d", "b", "c", "i") or holds_ref(payload)
    return False


class Encoder:
    """Values -> JSON nodes. `other(value)` turns a value that is not data into a node (a handle on
    the program's side, a callback or a reference on the trusted side), or raises."""

    def __init__(self, other, refs_in_keys: bool = False):
        self._other = other
        self._refs_in_keys = refs_in_keys
        self._left = MAX_ITEMS

    def node(self, value: object, budget: int = MAX_ITEMS) -> object:
        """The node of `value`; TooBig past `budget` values or MAX_DEPTH, Unhashable for a key
        that is not data."""
        self._left = min(budget, MAX_ITEMS)
        return self._node(value, 0)

    def _node(self, value: object, depth: int) -> object:
        self._left -= 1
        if self._left < 0:
            raise TooBig()
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            return value if value.bit_length() < _BIG_INT_BITS else {"i": format(value, "x")}
        if kind is float:
            return value
        if depth >= MAX_DEPTH:
            raise TooBig()
        if kind is list:
            return [self._node(x, depth + 1) for x in value]
        if kind is tuple:
            return {"t": [self._node(x, depth + 1) for x in value]}
        if kind is dict:
            return {"d": [[self._key(k, depth), self._node(v, depth + 1)] for k, v in value.items()]}
        if kind is set:
            return {"s": [self._key(x, depth) for x in value]}
        if kind is frozenset:
            return {"f": [self._key(x, depth) for x in value]}
        if kind is bytes:
            return {"b": value.hex()}
        if kind is complex:
            return {"c": [value.real, value.imag]}
        return self._other(value, depth)

    def _key(self, value: object, depth: int) -> object:
        node = self._node(value, depth + 1)
        if not self._refs_in_keys and holds_ref(node):
            raise Unhashable()  # a program object as a key: its hash is the program's to decide
        return node

    def base_value(self, value: object, base: type, depth: int) -> object:
        """The plain `base` value held by an instance of a subclass of `base`, as a node."""
        if base is int:
            return self._node(int.__int__(value), depth)
        if base is float:
            return self._node(float.__float__(value), depth)
        if base is str:
            return self._node(str.__str__(value), depth)
        if base is bytes:
            return self._node(bytes.__bytes__(value), depth)
        if base is complex:
            return self._node(complex(float(value.real), float(value.imag)), depth)
        if base is dict:
            return {"d": [[self._key(k, depth), self._node(v, depth + 1)] for k, v in dict.items(value)]}
        items = list(base.__iter__(value))
        return self._node(base(items) if base is not list else items, depth)


def builtin_base(exc_type: type) -> str:
    """The name of the first built-in class in an exception type's MRO (ValueError for a
    `class InputError(ValueError)`)."""
    for cls in exc_type.__mro__:
        if cls.__dict__.get("__module__", "builtins") == "builtins" and getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"
