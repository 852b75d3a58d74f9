"""What crosses between a program and its tests (sandbox/wire.py), on the host: exact types out of
the trusted decoder, every malformed frame refused, and the program side's encoding of subclasses."""

import collections
import enum
import json
import math
import os
import socket

import pytest

from sandbox import wire
from sandbox.referee import outputs_equal, referenced_names


def _refuse(value, depth):
    raise AssertionError(f"not data: {value!r}")


def round_trip(value):
    node = wire.Encoder(_refuse).node(value)
    text = json.dumps(node, allow_nan=True)  # what the frame carries
    return wire.Decoder().value(json.loads(text))


def _types(value):
    """The exact types of a value, all the way down (== alone would call 1 and True equal)."""
    if type(value) in (list, tuple):
        return (type(value), [_types(x) for x in value])
    if type(value) is dict:
        return (dict, sorted((repr(k), _types(v)) for k, v in value.items()))
    if type(value) in (set, frozenset):
        return (type(value), sorted(repr(x) for x in value))
    return type(value)


@pytest.mark.parametrize(
    "value",
    [
        None, True, False, 0, -7, 2**80, 1.5, -0.0, float("inf"), 1e-300, 3 + 4j,
        "", "naïve ☃", "\ud800 lone surrogate", b"\x00\xff", [], [1, [2, [3]]], (), (1, "a", (2.0,)),
        {}, {1: "a", "1": 1, (1, 2): [3], None: None, 2.5: b"x", frozenset({1}): 0},
        {1, 2.5, "x", (1, 2)}, frozenset({"a", frozenset({1})}), [True, 1, 1.0],
    ],
)
def test_data_round_trips_with_exact_types(value):
    back = round_trip(value)
    assert back == value and _types(back) == _types(value)


def test_a_huge_int_crosses_as_hex():
    value = -(10**5000)  # str() of it raises: JSON cannot carry it as a number
    node = wire.Encoder(_refuse).node(value)
    assert set(node) == {"i"} and round_trip(value) == value


def test_nan_round_trips():
    assert math.isnan(round_trip(float("nan")))


# Nodes a program could send; each must be refused, never turned into something else.
BAD_NODES = [
    ({"t": [1], "s": [2]}, "one-key tag"),  # two tags in one object
    ({"x": 1}, "unknown value tag"),
    ({"h": [1, "object", "x", ""]}, "unknown value tag"),  # handles only where the decoder takes them
    ({"cb": 1}, "unknown value tag"),  # tests -> program only
    ({"p": "gASVAAAAAAAAAAA="}, "unknown value tag"),  # a pickle: never decoded on the trusted side
    ({"d": [[[1], 2]]}, "not hashable"),  # a list as a dict key
    ({"s": [{"d": []}]}, "not hashable"),  # a dict in a set
    ({"d": [[1, 2, 3]]}, "pairs"),
    ({"d": {"a": 1}}, "list of pairs"),
    ({"b": "zz"}, "hex"),
    ({"b": 12}, "hex"),
    ({"c": [1, "2"]}, "complex"),
    ({"i": "not hex"}, "big-int"),
    ({"t": "abc"}, "must hold a list"),
]


@pytest.mark.parametrize("node, message", BAD_NODES)
def test_malformed_nodes_are_refused(node, message):
    with pytest.raises(wire.ProtocolError, match=message):
        wire.Decoder().value(node)


def test_depth_and_size_are_bounded():
    deep = 0
    for _ in range(wire.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(wire.ProtocolError, match="deeper"):
        wire.Decoder().value(deep)
    with pytest.raises(wire.ProtocolError, match="more than"):
        wire.Decoder().value([0] * (wire.MAX_ITEMS + 1))
    with pytest.raises(wire.TooBig):
        wire.Encoder(_refuse).node(deep)
    with pytest.raises(wire.TooBig):
        wire.Encoder(_refuse).node(list(range(100)), budget=50)
    cycle = []
    cycle.append(cycle)
    with pytest.raises(wire.TooBig):
        wire.Encoder(_refuse).node(cycle)


def test_a_decoder_budget_is_per_message():
    decoder = wire.Decoder()
    half = [0] * (wire.MAX_ITEMS // 2)
    for _ in range(3):  # three messages of half the budget each: each is fine
        assert len(decoder.value(half)) == len(half)


class Anything:
    def __eq__(self, other):
        return True


class Loud(int):
    def __eq__(self, other):
        return True


class Shout(str):
    def strip(self):
        return self


class Hashy(int):
    def __hash__(self):
        return 4


class Colour(enum.IntEnum):
    RED = 3


Point = collections.namedtuple("Point", "x y")


def program_side(value):
    """The program side's rule: a subclass of a data type with no behaviour of its own crosses as
    its base value; anything else goes to `other` (a handle, in the program's process)."""
    seen = []

    def other(v, depth):
        base = wire.data_base(v)
        if base is not None and wire.plain_subclass(v, base):
            return encoder.base_value(v, base, depth)
        seen.append(v)
        return {"h": [len(seen), "object", type(v).__name__, ""]}

    encoder = wire.Encoder(other)
    return encoder.node(value), seen


@pytest.mark.parametrize(
    "value, expected",
    [
        (collections.Counter("aab"), {"a": 2, "b": 1}),
        (collections.OrderedDict(a=1), {"a": 1}),
        (collections.defaultdict(int, a=1), {"a": 1}),
        (Point(1, 2), (1, 2)),
        (Colour.RED, 3),
        ([Colour.RED, Point(0, 0)], [3, (0, 0)]),
        (Shout(" x "), " x "),  # its strip() stays behind: the tests' str.strip applies
    ],
)
def test_plain_subclasses_cross_as_their_base_value(value, expected):
    node, seen = program_side(value)
    back = wire.Decoder().value(json.loads(json.dumps(node)))
    assert not seen and back == expected and _types(back) == _types(expected)


@pytest.mark.parametrize("value", [Anything(), Loud(4), Hashy(4), iter([1]), (x for x in "ab"), len])
def test_objects_with_behaviour_are_not_data(value):
    node, seen = program_side(value)
    assert seen == [value] and node["h"][0] == 1


def test_a_program_object_as_a_dict_key_makes_the_dict_not_data():
    with pytest.raises(wire.Unhashable):
        program_side({Hashy(1): 1})
    with pytest.raises(wire.Unhashable):
        program_side({(1, Hashy(2)): 1})
    with pytest.raises(wire.Unhashable):
        program_side({len})


def test_builtin_base_of_exceptions():
    class InputError(ValueError):
        pass

    class Weird(InputError, KeyError):
        pass

    assert wire.builtin_base(InputError) == "ValueError"
    assert wire.builtin_base(Weird) == "ValueError"
    assert wire.builtin_base(StopIteration) == "StopIteration"


# --- frames ---------------------------------------------------------------------------------------


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_round_trip(pair):
    a, b = pair
    wire.send(a.fileno(), {"ok": [1, {"t": [2]}]})
    assert wire.recv(b.fileno()) == {"ok": [1, {"t": [2]}]}


@pytest.mark.parametrize(
    "raw, message",
    [
        ((wire.MAX_FRAME + 1).to_bytes(4, "big"), "announced"),
        (b'{"id"', "announced"),  # a JSON line where a frame header belongs
        (len(b"[1]").to_bytes(4, "big") + b"[1]", "not a JSON object"),
        (len(b"{nope").to_bytes(4, "big") + b"{nope", "not JSON"),
        (len("\u00e9".encode()).to_bytes(4, "big") + "\u00e9".encode(), "not JSON"),  # frames are ASCII
    ],
)
def test_bad_frames_are_protocol_errors(pair, raw, message):
    a, b = pair
    os.write(a.fileno(), raw)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(wire.ProtocolError, match=message):
        wire.recv(b.fileno())


def test_a_closed_channel_is_not_a_frame(pair):
    a, b = pair
    os.write(a.fileno(), b"\x00\x00")  # half a header, then gone
    a.close()
    with pytest.raises(wire.ChannelClosed):
        wire.recv(b.fileno())


# --- the referee's pure pieces --------------------------------------------------------------------


@pytest.mark.parametrize(
    "result, expected, same",
    [
        (3, 3, True),
        ((1, 2), [1, 2], True),  # tuples read as lists: expected outputs come from JSON
        ([(1, 2), (3,)], [[1, 2], [3]], True),
        (3, [3], True),  # APPS / TACO wrap each output in a one-element list
        ([3], [[3]], True),
        (3, [3, 3], False),
        ("3", 3, False),
        (None, [None], True),
        ({"a": (1,)}, {"a": [1]}, True),
        (2, 2.0, True),  # Python's numeric equality, as the datasets' own checkers use
    ],
)
def test_outputs_equal(result, expected, same):
    assert outputs_equal(result, expected) is same


def test_referenced_names_reach_into_nested_code():
    code = compile("def check(candidate):\n    assert candidate(1) == helper(2)\ncheck(solve)\n", "t", "exec")
    names = referenced_names([code])
    assert {"check", "solve", "helper"} <= set(names)
