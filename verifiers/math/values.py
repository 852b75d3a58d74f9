"""Numbers read off a syntax tree without sympy: exact rationals, and constants to double
precision. Pure Python with bounded sizes, so safe in the calling process (no deadline there)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

from verifiers.math.parse import Node

__all__ = ["MAX_RESULT_DIGITS", "SHAPES", "numeric_value", "close", "float_value", "close_floats", "has_decimal",
           "digits_in_base", "digit_count", "has_symbols", "children"]

MAX_RESULT_DIGITS = 10_000  # a number literal or power bigger than this is refused
# Node kinds that are answers' shapes rather than expressions of a value.
SHAPES = {"list", "set", "tuple", "interval", "union", "matrix", "letter", "percent", "ratio", "time", "latex"}


def numeric_value(node: Node) -> tuple[Fraction, bool] | None:
    """(value, inexact) of a tree made only of number literals and + - * / ^ (small integer
    powers), else None. Pure Python with bounded sizes: safe in the calling process."""
    kind = node[0]
    if kind == "num":
        return node[1], node[2]
    if kind == "base":
        return Fraction(int(node[1], node[2])), False
    if kind == "neg":
        inner = numeric_value(node[1])
        return (-inner[0], inner[1]) if inner else None
    if kind in ("add", "mul"):
        total = Fraction(0 if kind == "add" else 1)
        inexact = False
        for part in node[1]:
            value = numeric_value(part)
            if value is None:
                return None
            total = total + value[0] if kind == "add" else total * value[0]
            inexact |= value[1]
        return total, inexact
    if kind == "div":
        a, b = numeric_value(node[1]), numeric_value(node[2])
        if a is None or b is None or b[0] == 0:
            return None
        return a[0] / b[0], a[1] or b[1]
    if kind == "pow":
        a, b = numeric_value(node[1]), numeric_value(node[2])
        if a is None or b is None or b[0].denominator != 1 or abs(b[0]) > 64:
            return None
        if a[0] == 0 and b[0] < 0:
            return None
        if abs(b[0]) * digit_count(a[0]) > MAX_RESULT_DIGITS:
            return None
        return a[0] ** int(b[0]), a[1] or b[1]
    return None



def digit_count(x: Fraction) -> int:
    return max(len(str(abs(x.numerator))), len(str(x.denominator)))



def close(a: Fraction, b: Fraction, inexact: bool, rel_tol: float) -> bool:
    if not inexact:
        return a == b
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))



def close_floats(a: float, b: float, inexact: bool, rel_tol: float) -> bool | None:
    """Two values known to double precision: False when they differ beyond every tolerance, True
    when a decimal side is within rel_tol; None (ask sympy) for two exact values that are close."""
    scale = max(abs(a), abs(b))
    diff = abs(a - b)
    if diff > max(rel_tol, 1e-9) * scale + 1e-300:
        return False
    if inexact and diff <= rel_tol * scale * (1 - 1e-6):
        return True
    return None



_FLOAT_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin, "arccos": math.acos,
    "arctan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "exp": math.exp,
    "ln": math.log, "log": math.log, "sqrt": math.sqrt, "abs": abs,
}



def float_value(node: Node) -> float | None:
    """The value of a constant expression to double precision (pi, e, radicals, functions), or
    None when it has a variable, is not real, or is too large. Bounded work: safe in the caller."""
    try:
        return _float(node)
    except (OverflowError, ValueError, ZeroDivisionError, TypeError, RecursionError):
        return None



def _float(node: Node) -> float | None:
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind == "base":
        return float(int(node[1], node[2]))
    if kind == "const":
        return {"pi": math.pi, "E": math.e}.get(node[1])
    if kind == "sym":
        return math.e if node[1] == "e" else None
    parts = [_float(part) for part in children(node)]
    if any(part is None for part in parts):
        return None
    if kind == "neg":
        return -parts[0]
    if kind == "add":
        return math.fsum(parts)
    if kind == "mul":
        return math.prod(parts)
    if kind == "div":
        return parts[0] / parts[1]
    if kind == "pow":
        if abs(parts[1]) > 1000:
            return None
        value = parts[0] ** parts[1]
        return value if isinstance(value, float) and math.isfinite(value) else None
    if kind == "root":
        radicand, index = parts
        if radicand < 0:
            return -((-radicand) ** (1 / index)) if index % 2 == 1 else None
        return radicand ** (1 / index)
    if kind == "abs":
        return abs(parts[0])
    if kind == "func" and node[1] in _FLOAT_FUNCTIONS:
        return _FLOAT_FUNCTIONS[node[1]](parts[0])
    if kind == "log":
        return math.log(parts[0], parts[1])
    if kind == "fact" and parts[0].is_integer() and 0 <= parts[0] <= 170:
        return float(math.factorial(int(parts[0])))
    return None



def has_decimal(node: Node) -> bool:
    if node[0] == "num":
        return node[2]
    return any(has_decimal(part) for part in children(node))



def digits_in_base(value: Fraction, base: int) -> int | None:
    """A plain integer answer against a reference in base b: its digits read in base b (the
    subscript left off); None when they are not digits of that base."""
    if value.denominator != 1 or value < 0 or any(int(d) >= base for d in str(value.numerator)):
        return None
    return int(str(value.numerator), base)



def has_symbols(node: Node) -> bool:
    if node[0] == "sym":
        return node[1] not in ("e", "i")
    return any(has_symbols(part) for part in children(node))



def children(node: Node) -> list[Node]:
    out: list[Node] = []
    for part in node[1:]:
        if isinstance(part, tuple) and part and isinstance(part[0], str):
            out.append(part)
        elif isinstance(part, list):
            for item in part:
                if isinstance(item, tuple) and item and isinstance(item[0], str):
                    out.append(item)
                elif isinstance(item, list):  # matrix rows
                    out.extend(x for x in item if isinstance(x, tuple))
    return out
