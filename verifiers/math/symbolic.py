"""Syntax trees to sympy, by whitelist, and equality of expressions by evaluation: the part of
the math verifier that runs in worker processes, under a deadline.

`to_sympy` refuses explosive inputs (a power tower, a huge factorial) before sympy sees them.
Expressions are equal when they agree at the same 5 pseudo-random points at 40 digits.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable

from verifiers.math.parse import Node, ParseError
from verifiers.math.values import MAX_RESULT_DIGITS, SHAPES, close, digit_count, numeric_value

__all__ = ["Explosive", "to_sympy", "equal_expressions", "positive_multiple"]

_MAX_FACTORIAL = 1_000
_SAMPLE_POINTS = 5
_EXACT_TOL = 1e-20  # two exact expressions evaluated at 40 digits


class Explosive(ValueError):
    """An input whose evaluation would take unbounded time or memory."""



def positive_multiple(a: Node, b: Node, allow_negative: bool = False) -> bool:
    """True when a = c * b for one real constant c != 0 (c > 0 unless allow_negative), judged at
    the same random points as expressions are."""
    ea, eb = to_sympy(a)[0], to_sympy(b)[0]
    if ea.free_symbols != eb.free_symbols:
        return False
    ratios = []
    for point in _points(sorted(ea.free_symbols, key=str)):
        va, vb = _evaluate(ea, point), _evaluate(eb, point)
        if va is None or vb is None or math.isinf(va.real) or math.isinf(vb.real):
            continue
        if abs(vb) < 1e-25 or abs(va) < 1e-25:
            if abs(va) >= 1e-25 or abs(vb) >= 1e-25:
                return False  # zero on one side only
            continue
        ratios.append(va / vb)
        if len(ratios) >= _SAMPLE_POINTS or not ea.free_symbols:
            break
    if not ratios:
        return False
    c = ratios[0]
    if abs(c.imag) > 1e-12 * abs(c) or (not allow_negative and c.real <= 0):
        return False
    return all(_numbers_close(r, c, 1e-12) for r in ratios)



def _points(symbols: list[Any]):
    """Up to 2 * _SAMPLE_POINTS points, the same sequence every time (verdicts must not vary)."""
    rng = random.Random(0)
    for _ in range(_SAMPLE_POINTS * 2):
        yield {s: rng.uniform(0.3, 2.7) for s in symbols}



def equal_expressions(p: Node, g: Node, rel_tol: float) -> bool:
    if p[0] in SHAPES or g[0] in SHAPES or p[0] == "rel" or g[0] == "rel":
        return False
    a, b = numeric_value(p), numeric_value(g)
    if a is not None and b is not None:
        return close(a[0], b[0], a[1] or b[1], rel_tol)
    ea, inexact_a = to_sympy(p)
    eb, inexact_b = to_sympy(g)
    tol = rel_tol if (inexact_a or inexact_b) else _EXACT_TOL
    if ea == eb:
        return True
    # Points over both sides' variables: sin(x)^2 + cos(x)^2 equals 1, and 2y is not 2x.
    symbols = sorted(ea.free_symbols | eb.free_symbols, key=str)
    valid = 0
    for point in _points(symbols):
        va, vb = _evaluate(ea, point), _evaluate(eb, point)
        if va is None or vb is None:
            continue
        if not _numbers_close(va, vb, tol):
            return False
        valid += 1
        if valid >= _SAMPLE_POINTS or not symbols:
            return True
    if valid:
        return True
    import sympy

    return sympy.simplify(ea - eb) == 0



def _evaluate(expr: Any, point: dict[Any, float]) -> complex | None:
    import sympy

    value = expr.evalf(40, subs=point) if point else expr.evalf(40)
    if value in (sympy.oo, -sympy.oo):
        return complex(math.inf if value == sympy.oo else -math.inf)
    if value.has(sympy.zoo, sympy.nan) or not value.is_number:
        return None
    try:
        return complex(value)
    except (TypeError, ValueError):
        return None



def _numbers_close(a: complex, b: complex, tol: float) -> bool:
    if math.isinf(a.real) or math.isinf(b.real):
        return a == b
    scale = max(abs(a), abs(b))
    return abs(a - b) <= tol * scale or abs(a - b) <= 1e-30



def to_sympy(node: Node) -> tuple[Any, bool]:
    """(sympy expression, inexact) for an expression tree; Explosive for runaway sizes."""
    flags = {"inexact": False}
    return _convert(node, flags), flags["inexact"]



def _convert(node: Node, flags: dict[str, bool]) -> Any:
    import sympy

    kind = node[0]
    if kind == "num":
        flags["inexact"] |= node[2]
        if digit_count(node[1]) > MAX_RESULT_DIGITS:
            raise Explosive("a number with too many digits")
        return sympy.Rational(node[1].numerator, node[1].denominator)
    if kind == "base":
        return sympy.Integer(int(node[1], node[2]))
    if kind == "sym":
        return {"e": sympy.E, "i": sympy.I}.get(node[1]) or sympy.Symbol(node[1])
    if kind == "const":
        return {"pi": sympy.pi, "E": sympy.E, "I": sympy.I, "oo": sympy.oo}[node[1]]
    if kind == "neg":
        return -_convert(node[1], flags)
    if kind == "add":
        return sympy.Add(*[_convert(n, flags) for n in node[1]])
    if kind == "mul":
        return sympy.Mul(*[_convert(n, flags) for n in node[1]])
    if kind == "div":
        return _convert(node[1], flags) / _convert(node[2], flags)
    if kind == "pow":
        base, exponent = _convert(node[1], flags), _convert(node[2], flags)
        _check_power(base, exponent)
        return base**exponent
    if kind == "root":
        radicand, index = _convert(node[1], flags), _convert(node[2], flags)
        if index == 0:
            raise Explosive("a zeroth root")
        return sympy.root(radicand, index) if index != 2 else sympy.sqrt(radicand)
    if kind == "fact":
        n = _convert(node[1], flags)
        if n.is_number and (not n.is_finite or abs(n) > _MAX_FACTORIAL):
            raise Explosive("a factorial too large")
        return sympy.factorial(n)
    if kind == "binom":
        n, k = _convert(node[1], flags), _convert(node[2], flags)
        if n.is_number and abs(n) > 10 * _MAX_FACTORIAL:
            raise Explosive("a binomial too large")
        return sympy.binomial(n, k)
    if kind == "abs":
        return sympy.Abs(_convert(node[1], flags))
    if kind == "log":
        return sympy.log(_convert(node[1], flags), _convert(node[2], flags))
    if kind == "func":
        return _sympy_function(node[1])(_convert(node[2], flags))
    raise ParseError(f"{kind} is not an expression")



def _check_power(base: Any, exponent: Any) -> None:
    """Refuse powers whose value (or expansion) would be astronomically large."""
    if not exponent.is_number:
        return
    size = abs(exponent)
    if not size.is_finite:
        raise Explosive("an infinite exponent")
    if base.is_number:
        magnitude = abs(base)
        if magnitude in (0, 1):
            return
        digits = size * _log10_size(magnitude)
        if digits > MAX_RESULT_DIGITS:
            raise Explosive("a power with too many digits")
    elif size > 1000:
        raise Explosive("a symbolic power with a huge exponent")



def _log10_size(x: Any) -> float:
    """Digits of a positive sympy number as a power base: |log10| of numerator and denominator,
    without evaluating anything large."""
    import sympy

    if isinstance(x, sympy.Rational):
        return abs(math.log10(abs(x.p))) + math.log10(x.q)
    return abs(float(sympy.log(x, 10).evalf(15)))



def _sympy_function(name: str) -> Callable[[Any], Any]:
    import sympy

    table = {
        "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
        "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
        "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "exp": sympy.exp, "ln": sympy.log,
        "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs,
    }
    if name not in table:
        raise ParseError(f"unknown function {name}")
    return table[name]
