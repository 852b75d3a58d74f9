"""Decide whether two parsed answers are the same mathematical object.

`quick_equal` settles what needs no sympy (numbers, text, letters, and shapes made of numbers)
in the calling process; `equal` does everything, and runs in a worker process under a deadline
(`verifiers.pool`). Syntax trees become sympy objects through `to_sympy`, a whitelist of node
types that refuses explosive inputs (a power tower, a huge factorial) before sympy sees them.
"""

from __future__ import annotations

import functools
import math
import random
from fractions import Fraction
from typing import Any, Callable

from verifiers.math.parse import Node, ParseError, letter_of, normalize_text, other_readings, parse_answer

__all__ = ["Explosive", "quick_equal", "equal", "compare_texts", "answer_readings", "numeric_value", "warm_up"]

_MAX_RESULT_DIGITS = 10_000  # a number literal or power bigger than this is refused
_MAX_FACTORIAL = 1_000
_SAMPLE_POINTS = 5
_EXACT_TOL = 1e-20  # two exact expressions evaluated at 40 digits


class Explosive(ValueError):
    """An input whose evaluation would take unbounded time or memory."""


# --- numbers without sympy -------------------------------------------------------------------


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
        if abs(b[0]) * _digits(a[0]) > _MAX_RESULT_DIGITS:
            return None
        return a[0] ** int(b[0]), a[1] or b[1]
    return None


def _digits(x: Fraction) -> int:
    return max(len(str(abs(x.numerator))), len(str(x.denominator)))


def _close(a: Fraction, b: Fraction, inexact: bool, rel_tol: float) -> bool:
    if not inexact:
        return a == b
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def _percent_variants(node: Node, percent: str) -> list[Node]:
    """`50%` as the reader may mean it: 50 ('value'), 0.5 ('fraction'), or either."""
    if node[0] != "percent":
        return [node]
    inner = node[1]
    as_fraction = ("div", inner, ("num", Fraction(100), False))
    return {"value": [inner], "fraction": [as_fraction]}.get(percent, [inner, as_fraction])


def quick_equal(pred: Node, gold: Node, percent: str, rel_tol: float) -> bool | None:
    """True / False when decidable without sympy; None when `equal` must decide."""
    undecided = False
    for p in _percent_variants(pred, percent):
        for g in _percent_variants(gold, percent):
            verdict = _quick(p, g, rel_tol)
            if verdict:
                return True
            undecided |= verdict is None
    return None if undecided else False


def _quick(pred: Node, gold: Node, rel_tol: float) -> bool | None:
    if pred == gold:
        return True
    if gold[0] == "text" or pred[0] == "text":
        if pred[0] == gold[0] == "text":
            return pred[1] == gold[1]
        return None if pred[0] in ("sym", "mul") or gold[0] in ("sym", "mul") else False
    if gold[0] in ("letter", "latex") or pred[0] in ("letter", "latex"):
        return pred == gold
    if gold[0] == "base" and pred[0] == "num" and not pred[2]:
        return _digits_in_base(pred[1], gold[2]) == int(gold[1], gold[2])
    a, b = numeric_value(pred), numeric_value(gold)
    if a is not None and b is not None:
        return _close(a[0], b[0], a[1] or b[1], rel_tol)
    if pred[0] == gold[0] == "ratio" and len(pred[1]) == len(gold[1]):
        terms = [_quick(a, b, rel_tol) for a, b in zip(pred[1], gold[1])]
        if False in terms or None not in terms:
            return False not in terms
    for rel, other, flip in ((gold, pred, False), (pred, gold, True)):
        if rel[0] == "rel" and set(rel[2]) == {"="} and numeric_value(other) is not None:
            verdicts = [_quick(v, other, rel_tol) if flip else _quick(other, v, rel_tol) for v in _stated_values(rel)]
            if any(verdicts):
                return True
            if None not in verdicts:  # `x = 4` against 11: the only thing an equation can equal is its value
                return False
    fa, fb = _float_value(pred), _float_value(gold)
    if fa is not None and fb is not None:
        return _close_floats(fa, fb, _has_decimal(pred) or _has_decimal(gold), rel_tol)
    if fa is not None and _cannot_be_a_number(gold) or fb is not None and _cannot_be_a_number(pred):
        return False
    return None


def _close_floats(a: float, b: float, inexact: bool, rel_tol: float) -> bool | None:
    """Two values known to double precision: False when they differ beyond every tolerance, True
    when a decimal side is within rel_tol; None (ask sympy) for two exact values that are close."""
    scale = max(abs(a), abs(b))
    diff = abs(a - b)
    if diff > max(rel_tol, 1e-9) * scale + 1e-300:
        return False
    if inexact and diff <= rel_tol * scale * (1 - 1e-6):
        return True
    return None


def _cannot_be_a_number(node: Node) -> bool:
    """Shapes no number equals: a matrix, an interval, a tuple, a clock time, a list of several
    distinct values. (An expression in x may still be one: sin^2 x + cos^2 x.)"""
    kind = node[0]
    if kind in ("matrix", "interval", "union", "tuple", "time"):
        return True
    return kind in ("list", "set") and len(_distinct(node[1])) > 1


_FLOAT_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin, "arccos": math.acos,
    "arctan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "exp": math.exp,
    "ln": math.log, "log": math.log, "sqrt": math.sqrt, "abs": abs,
}


def _float_value(node: Node) -> float | None:
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
    parts = [_float(part) for part in _children(node)]
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


def _has_decimal(node: Node) -> bool:
    if node[0] == "num":
        return node[2]
    return any(_has_decimal(part) for part in _children(node))


def _digits_in_base(value: Fraction, base: int) -> int | None:
    """A plain integer answer against a reference in base b: its digits read in base b (the
    subscript left off); None when they are not digits of that base."""
    if value.denominator != 1 or value < 0 or any(int(d) >= base for d in str(value.numerator)):
        return None
    return int(str(value.numerator), base)


# --- everything, with sympy (in a worker process) --------------------------------------------


def compare_texts(pred_text: str, gold_text: str, percent: str, rel_tol: float) -> tuple[bool, str]:
    """The worker's job: parse both answers and decide. Returns (equal, reason)."""
    try:
        golds = _readings_cached(gold_text)
    except ParseError as e:
        raise ValueError(f"reference answer {gold_text[:60]!r} does not parse: {e}") from None
    if golds[0][0] == "letter":
        return letter_of(pred_text) == golds[0][1], "multiple-choice letter"
    try:
        readings = answer_readings(pred_text)
    except ParseError as e:
        return False, f"answer does not parse: {e}"
    try:
        return any(equal(pred, gold, percent, rel_tol) for pred in readings for gold in golds), ""
    except Explosive as e:
        return False, f"answer refused: {e}"


def answer_readings(text: str) -> list[Node]:
    """The ways an answer may be read: its syntax tree, then `parse.other_readings` (`1000,99`
    with a decimal comma, `1.234.567` with dots between thousands)."""
    return [parse_answer(text), *other_readings(text)]


@functools.lru_cache(maxsize=4096)
def _readings_cached(text: str) -> list[Node]:
    """A worker sees the same references again and again (a GRPO group shares one)."""
    return answer_readings(text)


def warm_up() -> None:
    """Load sympy's lazily imported parts (evalf, simplify, sets) once, in the worker server."""
    for pred, gold in (("\\sqrt{8} + \\sin(x)^2", "2\\sqrt{2} + \\sin^2 x"), ("x > 3", "(3, \\infty)"),
                       ("y = 2x+1", "2x + 1 - y = 0"), ("\\log_2 8 + e", "3 + \\exp(1)")):
        compare_texts(pred, gold, "either", 1e-6)


def equal(pred: Node, gold: Node, percent: str = "either", rel_tol: float = 1e-6) -> bool:
    quick = quick_equal(pred, gold, percent, rel_tol)
    if quick is not None:
        return quick
    for p in _percent_variants(pred, percent):
        for g in _percent_variants(gold, percent):
            if _equal(p, g, rel_tol):
                return True
    return False


def _equal(p: Node, g: Node, rel_tol: float) -> bool:
    quick = _quick(p, g, rel_tol)
    if quick is not None:
        return quick
    pk, gk = p[0], g[0]
    if gk == "text" or pk == "text":
        return normalize_text(_plain(p)) == normalize_text(_plain(g))
    if pk == gk == "rel":
        return _equal_relations(p, g, rel_tol)
    if pk == "rel" or gk == "rel":
        # A named value (`(a, b) = (5, 1)`, `f(3) = 7`) or a worked result (`3 + 4 = 7`) against
        # the bare value; an inequality against an interval.
        rel, other = (p, g) if pk == "rel" else (g, p)
        for value in _stated_values(rel):
            if _equal(value, other, rel_tol) if pk == "rel" else _equal(other, value, rel_tol):
                return True
        if other[0] in ("interval", "union", "set") or _all_inequalities(other):
            return _equal_sets_of_reals(p, g, rel_tol)
        return False
    if pk in ("list", "set") and gk in ("list", "set") and not (_all_inequalities(p) or _all_inequalities(g)):
        if _matching(p[1], g[1], rel_tol):
            return True
    sp, sg = _sequence(p), _sequence(g)
    if sp is not None and sg is not None and (pk != gk or pk == "tuple") and len(sp) == len(sg):
        return all(_equal(a, b, rel_tol) for a, b in zip(sp, sg))  # `x = 6, y = 4` vs `(6, 4)`; a vector
    if pk == "matrix" or gk == "matrix":
        return (pk == gk and len(p[1]) == len(g[1]) and all(len(r) == len(s) for r, s in zip(p[1], g[1]))
                and all(_equal(a, b, rel_tol) for r, s in zip(p[1], g[1]) for a, b in zip(r, s)))
    if pk == gk == "time":  # 4:00 may be 16:00 (4:00 p.m.); 04:00 and 16:00 differ
        if len(p[1]) != len(g[1]) or p[1][1:] != g[1][1:]:
            return False
        return p[1][0] == g[1][0] or (not (p[2] and g[2]) and p[1][0] % 12 == g[1][0] % 12)
    if pk == "ratio" or gk == "ratio":
        return _equal_ratios(_as_ratio(p), _as_ratio(g), rel_tol)
    if pk in ("interval", "union") and gk in ("interval", "union", "set") or _all_inequalities(p) or _all_inequalities(g):
        return _equal_sets_of_reals(p, g, rel_tol)
    if pk in _SHAPES or gk in _SHAPES:
        if pk in ("list", "set") and len(p[1]) == 1:
            return _equal(p[1][0], g, rel_tol)
        if gk in ("list", "set") and len(g[1]) == 1:
            return _equal(p, g[1][0], rel_tol)
        return False
    return _equal_expressions(p, g, rel_tol)


def _all_inequalities(node: Node) -> bool:
    return node[0] == "list" and all(part[0] == "rel" and "=" not in part[2] for part in node[1])


_SHAPES = {"list", "set", "tuple", "interval", "union", "matrix", "letter", "percent", "ratio", "time", "latex"}


def _plain(node: Node) -> str:
    if node[0] == "text":
        return node[1]
    if node[0] == "sym":
        return node[1]
    if node[0] == "mul" and all(n[0] == "sym" for n in node[1]):
        return "".join(n[1] for n in node[1])
    return repr(node)


def _matching(a: list[Node], b: list[Node], rel_tol: float) -> bool:
    """Unordered: every element pairs with a distinct equal element (an element written twice
    the same way counts once)."""
    a, b = _distinct(a), _distinct(b)
    if len(a) != len(b):
        return False
    unused = list(b)
    for x in a:
        for i, y in enumerate(unused):
            if _equal(x, y, rel_tol):
                del unused[i]
                break
        else:
            return False
    return True


def _distinct(items: list[Node]) -> list[Node]:
    out: list[Node] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


# --- named values ----------------------------------------------------------------------------


def _is_name(node: Node) -> bool:
    """What an answer names rather than states: `x`, `f(x)`, `g(3)`, `MN`, `|AB|`, `NO/BO`,
    `S_1 : S_2`, `(a, b)`."""
    kind = node[0]
    if kind == "sym":
        return True
    if kind == "mul":
        return node[1][0][0] == "sym" and all(f[0] in ("sym", "num", "add", "neg") for f in node[1])
    if kind == "abs":
        return _is_name(node[1])
    if kind == "div":
        return _is_name(node[1]) and _is_name(node[2])
    if kind in ("ratio", "tuple"):
        return all(_is_name(x) for x in node[1])
    if kind == "interval":
        return _is_name(node[1]) and _is_name(node[2])
    return False


def _stated_values(rel: Node) -> list[Node]:
    """The values an equation states: the value of `name = value` (either way round), the result
    of a worked chain `3 + 4 = 7` or `x = 5 + 6 = 11`; none for an equation to solve (`2x = 6`)."""
    exprs, ops = rel[1], rel[2]
    if any(op != "=" for op in ops):
        return []
    first, last = exprs[0], exprs[-1]
    if _is_name(first):
        return [last]
    if _is_name(last):
        return [first]
    if not _has_symbols(first) and not _has_symbols(last):
        return [last]
    return []


def _has_symbols(node: Node) -> bool:
    if node[0] == "sym":
        return node[1] not in ("e", "i")
    return any(_has_symbols(part) for part in _children(node))


def _children(node: Node) -> list[Node]:
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


def _sequence(node: Node) -> list[Node] | None:
    """The entries of an ordered sequence: a tuple, an open pair `(a, b)`, a row or column vector,
    or a list of named values (`x = 6, y = 4`)."""
    kind = node[0]
    if kind == "tuple":
        return node[1]
    if kind == "interval" and not node[3] and not node[4]:
        return [node[1], node[2]]
    if kind == "matrix" and (len(node[1]) == 1 or all(len(row) == 1 for row in node[1])):
        return [cell for row in node[1] for cell in row]
    if kind == "list" and node[1] and all(
            x[0] == "rel" and x[2] == ["="] and _is_name(x[1][0]) for x in node[1]):
        return [x[1][-1] for x in node[1]]
    return None


def _equal_relations(p: Node, g: Node, rel_tol: float) -> bool:
    p, g = _two_sided(p), _two_sided(g)
    if p[2] == g[2] == ["="]:
        if _is_name(p[1][0]) and p[1][0] == g[1][0]:
            return _equal(p[1][1], g[1][1], rel_tol)
        return _equal_equations(p, g, rel_tol)
    return _equal_sets_of_reals(p, g, rel_tol)


def _two_sided(rel: Node) -> Node:
    """A chain of equalities `x = 5 + 6 = 11` as its ends, `x = 11`."""
    if len(rel[2]) > 1 and set(rel[2]) == {"="}:
        return ("rel", [rel[1][0], rel[1][-1]], ["="])
    return rel


def _as_ratio(node: Node) -> Node:
    """A clock time read as a ratio, when the other side is one (`4:10` against `2:5`)."""
    return ("ratio", [("num", Fraction(x), False) for x in node[1]]) if node[0] == "time" else node


def _equal_ratios(p: Node, g: Node, rel_tol: float) -> bool:
    """`3 : 8` equals `3:8` and `3/8`, term by term; `6 : 16` is the same ratio not written in
    lowest terms, which is how ratios are asked for, so it is not equal."""
    if p[0] == g[0] == "ratio":
        return len(p[1]) == len(g[1]) and all(_equal(a, b, rel_tol) for a, b in zip(p[1], g[1]))
    ratio, other = (p, g) if p[0] == "ratio" else (g, p)
    if len(ratio[1]) != 2 or other[0] in _SHAPES:
        return False
    return _equal_expressions(("div", ratio[1][0], ratio[1][1]), other, rel_tol)


# --- relations, intervals --------------------------------------------------------------------


def _equal_sets_of_reals(p: Node, g: Node, rel_tol: float) -> bool:
    if p[0] == g[0] == "rel" and len(p[2]) == len(g[2]) == 1 and "=" not in p[2] + g[2]:
        if _equal_inequalities(p, g, rel_tol):
            return True
    ip, ig = _as_intervals(p), _as_intervals(g)
    if ip is None or ig is None or len(ip) != len(ig):
        return False
    unused = list(ig)
    for x in ip:
        match = next((i for i, y in enumerate(unused) if _equal_intervals(x, y, rel_tol)), None)
        if match is None:
            return False
        del unused[match]
    return True


def _equal_intervals(a: Node, b: Node, rel_tol: float) -> bool:
    return a[3:] == b[3:] and _equal_expressions(a[1], b[1], rel_tol) and _equal_expressions(a[2], b[2], rel_tol)


def _as_intervals(node: Node) -> list[Node] | None:
    if node[0] == "interval":
        return [node]
    if node[0] == "union":
        out: list[Node] = []
        for part in node[1]:
            sub = _as_intervals(part)
            if sub is None:
                return None
            out += sub
        return out
    if node[0] == "set":  # {-1} in {-1} \cup [0, 7)
        return [("interval", x, x, True, True) for x in node[1]]
    if node[0] == "rel":
        return _inequality_interval(node)
    if node[0] == "list" and all(part[0] == "rel" for part in node[1]):  # x < -1 or x > 2
        return _as_intervals(("union", node[1]))
    return None


_INF = ("const", "oo")


def _inequality_interval(rel: Node) -> list[Node] | None:
    """`x > 3` -> (3, oo); `1 <= x < 2` -> [1, 2); only with the variable alone on one side."""
    exprs, ops = rel[1], rel[2]
    if "=" in ops or "!=" in ops:
        return None
    names = [i for i, e in enumerate(exprs) if _is_name(e)]
    if len(names) != 1:
        return None
    k = names[0]
    lo: Node = ("neg", _INF)
    hi: Node = _INF
    lo_closed = hi_closed = False
    for i, op in enumerate(ops):  # exprs[i] op exprs[i + 1]
        if k not in (i, i + 1):
            continue
        bound = exprs[i + 1] if k == i else exprs[i]
        upper = (op in ("<", "<=")) == (k == i)  # x < b, or b > x: b bounds x above
        if upper:
            hi, hi_closed = bound, op in ("<=", ">=")
        else:
            lo, lo_closed = bound, op in ("<=", ">=")
    if exprs[k][0] == "abs":  # 1 <= |z| <= 2: z in [-2, -1] or [1, 2]
        low = numeric_value(lo) if lo != ("neg", _INF) else (Fraction(-1), False)
        if low is None:
            return None
        if low[0] <= 0:
            return [("interval", ("neg", hi), hi, hi_closed, hi_closed)]
        return [("interval", ("neg", hi), ("neg", lo), hi_closed, lo_closed), ("interval", lo, hi, lo_closed, hi_closed)]
    return [("interval", lo, hi, lo_closed, hi_closed)]


def _equal_inequalities(p: Node, g: Node, rel_tol: float) -> bool:
    """`x > 3` vs `3 < x`: same strictness and (lhs - rhs) a positive multiple, after flipping."""
    def canonical(rel: Node) -> tuple[Any, bool]:
        (a, b), (op,) = rel[1], rel[2]
        big, small = (a, b) if op in (">", ">=") else (b, a)  # big - small > 0
        return ("add", [big, ("neg", small)]), op in ("<", ">")
    (ep, strict_p), (eg, strict_g) = canonical(p), canonical(g)
    return strict_p == strict_g and _positive_multiple(ep, eg)


def _equal_equations(p: Node, g: Node, rel_tol: float) -> bool:
    """`y = 2x+1` vs `2x+1-y = 0`: (lhs - rhs) of one is a non-zero multiple of the other's."""
    if len(p[1]) != 2 or len(g[1]) != 2:
        return len(p[1]) == len(g[1]) and all(_equal(a, b, rel_tol) for a, b in zip(p[1], g[1]))
    diff = lambda rel: ("add", [rel[1][0], ("neg", rel[1][1])])  # noqa: E731
    return _positive_multiple(diff(p), diff(g), allow_negative=True)


def _positive_multiple(a: Node, b: Node, allow_negative: bool = False) -> bool:
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


# --- expressions -----------------------------------------------------------------------------


def _equal_expressions(p: Node, g: Node, rel_tol: float) -> bool:
    if p[0] in _SHAPES or g[0] in _SHAPES or p[0] == "rel" or g[0] == "rel":
        return False
    a, b = numeric_value(p), numeric_value(g)
    if a is not None and b is not None:
        return _close(a[0], b[0], a[1] or b[1], rel_tol)
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


# --- syntax tree -> sympy, by whitelist ------------------------------------------------------


def to_sympy(node: Node) -> tuple[Any, bool]:
    """(sympy expression, inexact) for an expression tree; Explosive for runaway sizes."""
    flags = {"inexact": False}
    return _convert(node, flags), flags["inexact"]


def _convert(node: Node, flags: dict[str, bool]) -> Any:
    import sympy

    kind = node[0]
    if kind == "num":
        flags["inexact"] |= node[2]
        if _digits(node[1]) > _MAX_RESULT_DIGITS:
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
        if digits > _MAX_RESULT_DIGITS:
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
