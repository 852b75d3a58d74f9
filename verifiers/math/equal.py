"""Decide whether two parsed answers are the same mathematical object.

`quick_equal` settles what needs no sympy (numbers, constants known to double precision, text,
letters, ratios, and numbers against shapes no number equals) in the calling process; `equal`
does everything, and runs in a worker process under a deadline (`verifiers.pool`), through
`compare_texts`. The rules for answers' shapes live here: sets and lists, tuples and vectors,
matrices, named values, ratios and clock times, intervals, inequalities and equations;
expressions themselves are compared in `symbolic.py`.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

from verifiers.math.parse import Node, ParseError, letter_of, normalize_text, other_readings, parse_answer
from verifiers.math.symbolic import Explosive, equal_expressions, positive_multiple
from verifiers.math.values import (
    SHAPES,
    close,
    close_floats,
    digits_in_base,
    float_value,
    has_decimal,
    has_symbols,
    numeric_value,
)

__all__ = ["quick_equal", "equal", "compare_texts", "answer_readings", "warm_up"]



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
        return digits_in_base(pred[1], gold[2]) == int(gold[1], gold[2])
    a, b = numeric_value(pred), numeric_value(gold)
    if a is not None and b is not None:
        return close(a[0], b[0], a[1] or b[1], rel_tol)
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
    fa, fb = float_value(pred), float_value(gold)
    if fa is not None and fb is not None:
        return close_floats(fa, fb, has_decimal(pred) or has_decimal(gold), rel_tol)
    if fa is not None and _cannot_be_a_number(gold) or fb is not None and _cannot_be_a_number(pred):
        return False
    return None


def _cannot_be_a_number(node: Node) -> bool:
    """Shapes no number equals: a matrix, an interval, a tuple, a clock time, a list of several
    distinct values. (An expression in x may still be one: sin^2 x + cos^2 x.)"""
    kind = node[0]
    if kind in ("matrix", "interval", "union", "tuple", "time"):
        return True
    return kind in ("list", "set") and len(_distinct(node[1])) > 1


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
    except ParseError as e:  # a tree that parses but means nothing here (`0.6 x 100 = 66.67%`): the model's doing
        return False, f"answer cannot be compared: {e}"


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
    if pk in SHAPES or gk in SHAPES:
        if pk in ("list", "set") and len(p[1]) == 1:
            return _equal(p[1][0], g, rel_tol)
        if gk in ("list", "set") and len(g[1]) == 1:
            return _equal(p, g[1][0], rel_tol)
        return False
    return equal_expressions(p, g, rel_tol)


def _all_inequalities(node: Node) -> bool:
    return node[0] == "list" and all(part[0] == "rel" and "=" not in part[2] for part in node[1])


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
    if not has_symbols(first) and not has_symbols(last):
        return [last]
    return []


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
    """A clock time (`4:10`) or a fraction of two numbers (`3/8`) read as a ratio, when the other
    side is one."""
    if node[0] == "time":
        return ("ratio", [("num", Fraction(x), False) for x in node[1]])
    if node[0] == "div" and node[1][0] == node[2][0] == "num":
        return ("ratio", [node[1], node[2]])
    return node


def _equal_ratios(p: Node, g: Node, rel_tol: float) -> bool:
    """`3 : 8` equals `3:8`, `3/8` and `0.375`; a ratio or fraction compares term by term, so
    `6 : 16` and `6/16`, the same ratio not in lowest terms (how ratios are asked for), do not."""
    if p[0] == "div" or g[0] == "div":
        p, g = _as_ratio(p), _as_ratio(g)
    if p[0] == g[0] == "ratio":
        return len(p[1]) == len(g[1]) and all(_equal(a, b, rel_tol) for a, b in zip(p[1], g[1]))
    ratio, other = (p, g) if p[0] == "ratio" else (g, p)
    if len(ratio[1]) != 2 or other[0] in SHAPES:
        return False
    return equal_expressions(("div", ratio[1][0], ratio[1][1]), other, rel_tol)


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
    return a[3:] == b[3:] and equal_expressions(a[1], b[1], rel_tol) and equal_expressions(a[2], b[2], rel_tol)


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
    return strict_p == strict_g and positive_multiple(ep, eg)


def _equal_equations(p: Node, g: Node, rel_tol: float) -> bool:
    """`y = 2x+1` vs `2x+1-y = 0`: (lhs - rhs) of one is a non-zero multiple of the other's."""
    if len(p[1]) != 2 or len(g[1]) != 2:
        return len(p[1]) == len(g[1]) and all(_equal(a, b, rel_tol) for a, b in zip(p[1], g[1]))
    diff = lambda rel: ("add", [rel[1][0], ("neg", rel[1][1])])  # noqa: E731
    return positive_multiple(diff(p), diff(g), allow_negative=True)




