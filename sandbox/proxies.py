"""What the tests hold of the program's objects: proxies, each use of which is a call into the
program's process (see referee.py for the whole picture).

A *handle* is a program object that is not data (an object of the program's class, a generator,
a function). The tests may call it, read, set and delete its attributes, index it, take its len
and str, iterate it (`x in handle` then compares here, item by item), and pass it back to the
program. Comparing it (but with None or itself), ordering, hashing, truth-testing it, converting it
to a number or doing arithmetic with it would let the program decide a test's outcome after
seeing the expected value: each raises CannotCross, and the referee fails the job even if the
tests swallowed it. A function or class of the program compares by identity and is truthy, as any
function is, without asking the program.

Python 3.11 standard library only: this file runs inside the image.
"""

from __future__ import annotations

__all__ = ["CannotCross", "KINDS", "is_handle", "handle_id"]

_BATCH_MAX = 1024  # items pulled from a program iterator per round trip


class CannotCross(BaseException):
    """The tests used a program object as if it were data. A BaseException, so a test's
    `except Exception` cannot swallow it (and the referee records it anyway)."""


class _Handle:
    """A program object the tests hold. Each use below is a call into the program; comparisons,
    hashing, truth and arithmetic are refused (`_refuse`); containment iterates here."""

    __slots__ = ("_peer", "_id", "_desc", "__weakref__")

    def __init__(self, peer: object, hid: int, desc: str):  # peer: a remote.Peer
        object.__setattr__(self, "_peer", peer)
        object.__setattr__(self, "_id", hid)
        object.__setattr__(self, "_desc", desc)

    def _ask(self, op: str, **fields: object) -> object:
        peer = object.__getattribute__(self, "_peer")
        return peer.request({"op": op, "target": object.__getattribute__(self, "_id"), **fields}, stop=op == "next")

    def _send(self, value: object) -> object:
        return object.__getattribute__(self, "_peer").encode(value)

    def _refuse(self, how: str) -> None:
        text = f"{object.__getattribute__(self, '_desc')} from the program is not data; the tests {how}"
        object.__getattribute__(self, "_peer").violations.append(text)
        raise CannotCross(text)

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


KINDS = {"object": _Callable, "function": _Function, "class": _Class}


def is_handle(value: object) -> bool:
    return isinstance(value, _Handle)


def handle_id(handle: _Handle) -> int:
    return object.__getattribute__(handle, "_id")
