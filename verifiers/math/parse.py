"""Read an answer (LaTeX or plain text) into a small syntax tree, without `eval`.

A hand-written tokenizer and recursive-descent parser accept a whitelisted grammar: numbers,
one-letter variables (with subscripts), Greek letters, pi / e / i / infinity, `+ - * / ^ !`,
implicit multiplication, `\\frac`, `\\sqrt[n]{}`, `\\binom`, `|x|`, and the functions in `FUNCTIONS`.
Above the expressions sit the answer shapes: relations (`x = 3`, `1 < x \\le 2`), lists
(`1, 2`), sets (`\\{1, 2\\}`), tuples and intervals (`(1, 2]`), unions (`\\cup`), matrices,
multiple-choice letters and `\\text{...}` answers. Anything else raises `ParseError`, and an
answer that does not parse is simply not equal to anything.

Nodes are plain tuples, so they cross process boundaries cheaply and nothing in them executes:

    ("num", Fraction, inexact)      ("sym", name)        ("const", "pi" | "E" | "I" | "oo")
    ("add", [a, b, ...])            ("neg", a)           ("mul", [a, b, ...])   ("div", a, b)
    ("pow", a, b)                   ("fact", a)          ("abs", a)             ("root", a, n)
    ("func", name, a)               ("log", a, base)     ("binom", n, k)
    ("rel", [e0, e1, ...], [op0, ...])       ("list" | "set" | "tuple", [items])
    ("interval", lo, hi, lo_closed, hi_closed)   ("union", [intervals])   ("matrix", [[cells]])
    ("text", normalised)            ("letter", "B")      ("percent", node)
    ("ratio", [a, b, ...])          ("time", [7, 30], on_24_hour_clock)         ("base", "132", 4)
    ("latex", source)               (LaTeX outside the grammar, compared as its spacing-free source)
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

__all__ = ["ParseError", "parse_answer", "normalize_text", "FUNCTIONS", "MAX_ANSWER_CHARS"]

Node = tuple[Any, ...]

MAX_ANSWER_CHARS = 1000  # longer "answers" are refused before any parsing
_MAX_DEPTH = 60  # nesting of brackets / operators
_MAX_DIGITS = 400  # digits in one number literal

FUNCTIONS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "exp", "ln", "log", "sqrt", "abs",
}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
}
_CONSTANT_WORDS = {"pi": "pi", "infty": "oo", "infinity": "oo", "inf": "oo", "oo": "oo"}
_RELATIONS = {"=", "<", ">", "<=", ">=", "!="}

# Plain-text spellings of LaTeX commands and symbols, applied before tokenizing.
_REPLACEMENTS = [
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"), ("\\dbinom", "\\binom"),
    ("\\tbinom", "\\binom"), ("\\displaystyle", ""), ("\\left", ""), ("\\right", ""), ("\\bigl", ""),
    ("\\bigr", ""), ("\\Bigl", ""), ("\\Bigr", ""), ("\\big", ""), ("\\Big", ""), ("\\!", ""), ("\\,", " "),
    ("\\;", " "), ("\\:", " "), ("\\ ", " "), ("\\quad", " "), ("\\qquad", " "), ("~", " "),
    ("{,}", ""), ("\\cdot", "*"), ("\\times", "*"), ("\\ast", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"),
    ("÷", "/"), ("\u2212", "-"), ("\u2013", "-"), ("\\leqslant", "<="), ("\\geqslant", ">="), ("\\leq", "<="),
    ("\\geq", ">="), ("\\le", "<="), ("\\ge", ">="), ("\\lt", "<"), ("\\gt", ">"), ("\\neq", "!="), ("\\ne", "!="),
    ("≤", "<="), ("≥", ">="), ("≠", "!="), ("=<", "<="), ("=>", ">="), ("π", "\\pi"), ("∞", "\\infty"),
    ("√", "\\sqrt"), ("∪", "\\cup"), ("\\lvert", "|"), ("\\rvert", "|"), ("\\vert", "|"), ("\\mid", "|"),
    ("\\lbrace", "\\{"), ("\\rbrace", "\\}"), ("\\lbrack", "["), ("\\rbrack", "]"), ("\\varnothing", "\\emptyset"),
    ("±", "\\pm"), ("\\mp", "\\pm"), ("∓", "\\pm"), ("\\colon", ":"), ("\\ratio", ":"), ("∶", ":"), ("\\textnormal", "\\text"),
    ("\\mathbb{R}", "(-\\infty, \\infty)"), ("\\mathbb R", "(-\\infty, \\infty)"), ("ℝ", "(-\\infty, \\infty)"),
]
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname|boxed|fbox)\s*\{([^{}]*)\}")
# A unit in a text wrapper right after a number: `5\text{ cm}`, `12\mbox{ m/s}`, `9\,\mathrm{cm}^2`.
_UNIT_TEXT = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\s*\{\s*(?!(?:or|and|et|ou|und|oder)\s*\})[^\W\d_][^{}\d]*\}(?:\s*\^\s*\{?\d\}?)?")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_PERCENT = re.compile(r"\\?%\s*$")
_PERCENT_WORD = re.compile(
    r"(?<=[\d}])\s*(?:\\(?:text|mbox|mathrm)\s*\{\s*(?:percent|per\s?cent|percentage|pct)\s*\}"
    r"|(?:percent|per\s?cent|percentage|pct)\b\.?)", re.IGNORECASE)
_CURRENCY = re.compile(r"\\\$|\$|€|£|¥|\\euro|\b(?:USD|EUR|GBP|Rs\.?)(?=\s*\d)")
_UNIT_TAIL = re.compile(r"(?<=[\d)}.\s])\s*([^\W\d_]{2,}(?:\s*\^\s*\{?\d\}?)?(?:\s*/\s*[^\W\d_]+)?)\s*\.?$")
_MIXED_PLAIN = re.compile(r"^(-?)(\d{1,30})\s+(\d{1,30})\s*/\s*(\d{1,30})$")
# `2\frac{3}{4}`, and `2\frac34` the same (a one-digit argument needs no braces)
_MIXED_LATEX = re.compile(r"(?<![\w.^_}])(\d{1,30})\s*\\frac\s*(?:\{\s*(\d{1,30})\s*\}|(\d))\s*(?:\{\s*(\d{1,30})\s*\}|(\d))")
_LETTER = re.compile(r"^\(?\s*([A-Ja-j])\s*\)?(?:$|[.:)]|\s)")
_LETTER_STRICT = re.compile(r"^\(?\s*([A-J])\s*\)$|^\(?([A-J])\)?$|^\(([a-j])\)$")
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])")
_MATRIX = re.compile(r"\\begin\s*\{([pbvBV]?matrix|array)\}(?:\s*\{[^{}]*\})?(.*?)\\end\s*\{\1\}", re.DOTALL)
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d{1,3}(?![\d.]))?|\.\d+)"
    r"|(?P<cmd>\\[A-Za-z]+|\\[{}|\\])"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op><=|>=|!=|[-+*/^_!()\[\]{},|=<>&;':]))"
)
_UNIT_WORDS_KEEP = FUNCTIONS | set(_CONSTANT_WORDS) | {"or", "and"}


class ParseError(ValueError):
    """The text is not an answer this grammar reads; it then equals nothing."""


def normalize_text(text: str) -> str:
    """Text answers compare after this: wrappers off, lower case, single spaces, no end stop."""
    s = _WRAPPER.sub(r"\1", text)
    s = re.sub(r"[\\{}$]", " ", s)
    s = re.sub(r"\s+", " ", s).strip().strip(".").strip().lower()
    return s


def parse_answer(text: str) -> Node:
    """The syntax tree of an answer. Raises ParseError for anything outside the grammar."""
    if len(text) > MAX_ANSWER_CHARS:
        raise ParseError(f"answer of {len(text)} characters is longer than {MAX_ANSWER_CHARS}")
    s = _undouble_escapes(text.strip())
    letter = _LETTER_STRICT.match(normalize_text(s).upper() if _is_wrapped_letter(s) else s)
    if letter:
        return ("letter", next(g for g in letter.groups() if g).upper())
    labelled = re.fullmatch(r"\(([A-J])\)\s+\S.{0,40}|([A-J])[.)]\s+\S.{0,40}", _WRAPPER.sub(r"\1", s).replace("\\ ", " "))
    if labelled:  # "\text{(C)}\ 3", "C. x = 42": a choice with its value
        return ("letter", labelled.group(1) or labelled.group(2))
    if _is_text_answer(s):
        words = normalize_text(s)
        spelled = _number_words(words)
        if spelled is not None:
            return ("num", Fraction(spelled), False)
        return _SETS_IN_WORDS.get(re.sub(r"^(?:x\s+is\s+|the\s+set\s+of\s+)", "", words), ("text", words))
    s, percent = _normalize(s)
    if not s:
        raise ParseError("empty answer")
    try:
        node = _parse_structure(_tokenize(s))
    except ParseError:
        words = normalize_text(text)
        if re.search(r"[^\W\d_]{2,}", words) and not re.search(r"[=<>^/*]", words):
            return ("text", words)
        opaque = _opaque(s)
        if opaque is not None:
            return opaque
        raise
    return ("percent", node) if percent else node


def other_readings(text: str) -> list[Node]:
    """Other ways a writer may mean a bare number: `1000,99` / `2,74` / `0,111` with a decimal
    comma, `1.234.567` with dots between thousands (as in German or Spanish; `1.234` stays the
    English decimal)."""
    unit = r"\s*\$?(?:\s*[^\W\d_]+){0,3}\.?\s*"  # "1.000 Euro"
    m = re.fullmatch(r"\s*\$?\s*(-?)(\d+),(\d+)" + unit, text)
    if m and not (len(m.group(3)) == 3 and m.group(2) != "0" and len(m.group(2)) <= 3):
        value = _number(f"{m.group(2)}.{m.group(3)}")
        return [("neg", value) if m.group(1) else value]
    m = re.fullmatch(r"\s*\$?\s*(-?)(\d{1,3}(?:\.\d{3}){2,})" + unit, text)
    if m:
        value = _number(m.group(2).replace(".", ""))
        return [("neg", value) if m.group(1) else value]
    return []


_REALS: Node = ("interval", ("neg", ("const", "oo")), ("const", "oo"), False, False)
_SETS_IN_WORDS: dict[str, Node] = {
    **{w: _REALS for w in ("all real numbers", "all reals", "real numbers", "any real number", "every real number")},
    **{w: ("set", []) for w in ("no solution", "no solutions", "no real solution", "no real solutions",
                                 "the empty set", "empty set", "none")},
}
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}


def _number_words(text: str) -> int | None:
    """`eighteen`, `twenty-five`, `one hundred and five`, `three thousand`: the number, else None."""
    words = [w for w in re.split(r"[\s-]+", text.strip().rstrip(".")) if w and w != "and"]
    if not words or len(words) > 8:
        return None
    total = current = 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0
        else:
            return None
    return total + current


def letter_of(text: str) -> str | None:
    """The choice letter at the start of an answer like `(B)`, `B`, `B) 12`, `\\text{(C)}`."""
    m = _LETTER.match(normalize_text(text).upper() if "\\" in text else text.strip())
    return m.group(1).upper() if m else None


_KNOWN_COMMANDS = (
    "frac|dfrac|tfrac|cfrac|sqrt|left|right|le|ge|leq|geq|lt|gt|ne|neq|pi|infty|cdot|times|div|text|textbf|"
    "mathrm|mathbf|boxed|in|cup|cap|pm|mp|sin|cos|tan|log|ln|exp|begin|end|circ|quad|qquad|approx|emptyset|"
    "varnothing|binom|dbinom|alpha|beta|gamma|theta|lambda|mu|sigma|omega|phi|infty|mid|vert|lvert|rvert"
)


def _undouble_escapes(s: str) -> str:
    """Text escaped twice (`\\\\frac12`, as in a JSON dump of a Python literal) read as LaTeX."""
    if "\\\\" not in s:
        return s
    if re.search(r"(?<!\\)\\\\[A-Za-z]", s) and not re.search(r"(?<!\\)\\[A-Za-z]", s):
        return s.replace("\\\\", "\\")  # every command doubled: row breaks are doubled too
    return re.sub(r"(?<!\\)\\\\(?=(?:" + _KNOWN_COMMANDS + r")(?![A-Za-z]))", r"\\", s)


def _exact_part(s: str) -> str:
    """`\\frac{\\sqrt3}{3} \\approx 0.577` -> the exact value; `x \\approx 11` -> 11."""
    m = re.search(r"\\approx|≈", s)
    if not m:
        return s
    left, right = s[: m.start()].strip(), s[m.end() :].strip()
    if not left or re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?\s*=?", left):
        return right
    return left


def _opaque(s: str) -> Node | None:
    """An answer with LaTeX this grammar does not model (`\\sum`, `\\overline{AB}`) compares as its
    spacing-free source, so a reference holding one is still readable; unbalanced braces are not."""
    if not re.search(r"\\[A-Za-z]{2,}", s) or s.count("{") != s.count("}"):
        return None
    return ("latex", re.sub(r"\s+", "", s))


def _is_text_answer(s: str) -> bool:
    """`\\text{Monday}`, or a plain word answer (`Monday`, `no solution`): compared as text."""
    whole = re.fullmatch(r"\\(?:text|textbf|textit|mathrm|mbox)\s*\{([^{}]*)\}\.?", s)
    if whole:
        s = whole.group(1)
    words = re.findall(r"[^\W\d_]+", s)
    if not words or re.search(r"[\d\\^=<>+*/]", s):
        return False
    if whole:
        return any(len(w) >= 2 for w in words)
    return any(len(w) >= 3 and w.lower() not in _UNIT_WORDS_KEEP and w not in _GREEK for w in words)


def _is_wrapped_letter(s: str) -> bool:
    return bool(re.fullmatch(r"\\(?:text|textbf|mathrm|mathbf)\s*\{\s*\(?[A-Ja-j]\)?\s*\}", s))


def _normalize(s: str) -> tuple[str, bool]:
    """LaTeX spelled plainly, math delimiters, currency, degrees and units off; percent noted."""
    s = s.replace("\\\\", " \x00 ")  # a matrix row break, kept safe from `\ ` (a space)
    for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(opener) and s.endswith(closer) and len(s) >= len(opener) + len(closer):
            s = s[len(opener) : len(s) - len(closer)].strip()
    s = _exact_part(s)
    s = re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", "*", s)  # "10 x 6": x between numbers is a times sign
    # Thousands separators: 12{,}345, 14 {, }916, 11,\! 111
    s = re.sub(r"(?<=\d)\s*(?:\{\s*,\s*\}|,\s*\\!)\s*(?=\d{3})", ",", s)
    s = _PERCENT_WORD.sub("%", s)  # "28 percent", "28\\text{ pct}"
    for old, new in _REPLACEMENTS:
        s = s.replace(old, new)
    s = _UNIT_TEXT.sub("", s)  # 12\text{ m/s} -> 12
    for _ in range(3):  # \text{...} inside \boxed{...}: unwrap from the inside out
        s = _WRAPPER.sub(r" \1 ", s)
    s = _DEGREES.sub("", s)
    clock = re.fullmatch(r"\s*(\d{1,2})(:\d{2}(?::\d{2})?)?\s*([ap])\.?\s?m\.?\s*", s, re.IGNORECASE)
    if clock and int(clock.group(1)) <= 12:  # 6:30 p.m. -> 18:30
        hour = int(clock.group(1)) % 12 + (12 if clock.group(3).lower() == "p" else 0)
        s = f"{hour:02d}{clock.group(2) or ':00'}"  # two hour digits: a 24-hour time
    s = _CURRENCY.sub("", s).strip()
    s = re.sub(r"\.$", "", s).strip()
    percent = bool(_PERCENT.search(s))
    s = _PERCENT.sub("", s).strip()
    for _ in range(3):
        m = _UNIT_TAIL.search(s)
        if not m or m.group(1).split("^")[0].strip().lower() in _UNIT_WORDS_KEEP or m.start() == 0:
            break
        if not re.search(r"[\d)}]\s*$", s[: m.start()]):
            break
        s = s[: m.start()].strip()
    words = re.match(r"^(.*?\d)\s+((?:[^\W\d_]{2,})(?:\s+[^\W\d_]+){0,3})\s*\.?$", s)
    if words and not set(words.group(2).lower().split()) & _UNIT_WORDS_KEEP and words.group(2).split()[0].lower() not in (
            "in", "on", "at", "of", "for", "to", "by", "from", "with", "is", "are", "was"):
        s = words.group(1)  # "4 cups of flour", "12 apples in all" (but not "12345 in scientific notation")
    if not percent and _PERCENT.search(s):  # "50 % of them" after the unit went
        percent, s = True, _PERCENT.sub("", s).strip()
    s = re.sub(r"^[A-Za-z]\w*\s*\\in\s*", "", s)  # "x \in [1, 2]" -> "[1, 2]"
    s = re.sub(r"\s+(?:or|and|et|und|ou|или|и)\s+", ", ", s)  # "x = 1 or x = 2" -> a list
    s = re.sub(r"(?<=[)\]}])\s*(?:or|and)\s*(?=[(\[{\\])", ", ", s)  # "(11,7)or(7,11)"
    s = re.sub(r"(?:\s*\x00\s*|\\)+$", "", s).strip()  # a stray line break at the end: "185\\"
    wrapped = re.fullmatch(r"[(\[]\s*(\\begin\s*\{(\w+)\}.*\\end\s*\{\2\})\s*[)\]]", s, re.DOTALL)
    if wrapped:  # \left[\begin{array}...\end{array}\right]: the brackets are the matrix's own
        s = wrapped.group(1)
    # Digits grouped by spaces (a thin space `\,` became one above): "3 500", "4 321.5".
    s = re.sub(r"(?<![\d.,])\d{1,3}(?:[ \u2009\u202f\u00a0]\d{3})+(?![\d/])", lambda m: re.sub(r"\s", "", m.group()), s)
    mixed = _MIXED_PLAIN.match(s)
    if mixed:
        sign, whole, num, den = mixed.groups()
        s = f"{sign}({whole}+{num}/{den})"
    s = _MIXED_LATEX.sub(lambda m: f"({m[1]}+{m[2] or m[3]}/{m[4] or m[5]})", s)
    if not re.search(r"[(\[{]|,\s", s):  # 1,234,567 is a number; "(1,234)" and "1, 234" are not
        s = _THOUSANDS.sub(lambda m: m.group().replace(",", ""), s)
    return s, percent


def _tokenize(s: str) -> list[tuple[str, str]]:
    matrix = _MATRIX.search(s)
    if matrix:
        if s[: matrix.start()].strip() or s[matrix.end() :].strip():
            raise ParseError("text around a matrix")
        rows = [r for r in matrix.group(2).split("\x00") if r.strip()]
        cells = [[_tokenize(c) for c in row.split("&")] for row in rows]
        return [("matrix", cells)]  # type: ignore[list-item]
    tokens: list[tuple[str, str]] = []
    pos = 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise ParseError(f"unexpected {s[pos:pos + 10]!r}")
        kind = m.lastgroup or "op"
        value = m.group(kind)
        if kind == "num" and len(value) > _MAX_DIGITS:
            raise ParseError(f"a number of {len(value)} digits")
        if kind == "word" and (tokens[-1:] == [("op", "_")] or tokens[-2:] == [("op", "_"), ("op", "{")]):
            tokens.append(("sym", value))  # a subscript is a label: S_{MBCN}, x_{max}
        elif kind == "word":
            tokens.extend(_word_tokens(value))
        else:
            tokens.append((kind, value))
        pos = m.end()
    return tokens


def _word_tokens(word: str) -> list[tuple[str, str]]:
    """`sin` is a function, `pi` a constant; other runs of up to three letters are products of
    variables (`xy`); a longer run is a word."""
    lower = word.lower()
    if lower in FUNCTIONS:
        return [("func", lower)]
    if lower in _CONSTANT_WORDS:
        return [("const", _CONSTANT_WORDS[lower])]
    if word in _GREEK:
        return [("sym", word)]
    if len(word) > 3:  # "results": a word, not the product r*e*s*u*l*t*s
        raise ParseError(f"the word {word!r} in an answer")
    return [("sym", ch) for ch in word]


# --- answer shapes ---------------------------------------------------------------------------


def _split_top(tokens: list[Any], separators: set[str]) -> list[list[Any]]:
    parts: list[list[Any]] = [[]]
    depth = 0
    for tok in tokens:
        value = tok[1]
        if tok[0] in ("op", "cmd") and value in ("(", "[", "{", "\\{"):
            depth += 1
        elif tok[0] in ("op", "cmd") and value in (")", "]", "}", "\\}"):
            depth -= 1
        if depth == 0 and tok[0] in ("op", "cmd") and value in separators:
            parts.append([])
            continue
        parts[-1].append(tok)
    return parts


def _parse_structure(tokens: list[Any]) -> Node:
    if len(tokens) == 1 and tokens[0][0] == "matrix":
        return ("matrix", [[_parse_structure(c) for c in row] for row in tokens[0][1]])
    unions = _split_top(tokens, {"\\cup"})
    if len(unions) > 1:
        return ("union", [_parse_item(u) for u in unions])
    groups = _split_top(tokens, {";"})
    if len(groups) > 1 and any(len(_split_top(g, {","})) > 1 for g in groups):
        # "p=5, q=2; p=7, q=2": solutions separated by semicolons, each of several values
        return ("list", [_parse_structure(g) for g in groups])
    items = _split_top(tokens, {",", ";"})
    if len(items) > 1:
        return ("list", _flatten([_parse_item(i) for i in items]))
    return _parse_item(tokens)


def _flatten(items: list[Node]) -> list[Node]:
    """Lists inside a list (the two readings of a `\\pm`) become its items."""
    out: list[Node] = []
    for item in items:
        out.extend(item[1] if item[0] == "list" else [item])
    return out


def _parse_item(tokens: list[Any]) -> Node:
    if not tokens:
        raise ParseError("empty item")
    if any(t[1] == "\\pm" for t in tokens):  # a \pm b: both solutions
        plus = [("op", "+") if t[1] == "\\pm" else t for t in tokens]
        minus = [("op", "-") if t[1] == "\\pm" else t for t in tokens]
        return ("list", [_parse_item(plus), _parse_item(minus)])
    first, last = tokens[0][1], tokens[-1][1]
    if first == "\\emptyset" and len(tokens) == 1:
        return ("set", [])
    if first in ("\\{", "{") and last == ("\\}" if first == "\\{" else "}") and _closes_at_end(tokens):
        inner = tokens[1:-1]
        if len(inner) > 2 and inner[0][0] == "sym" and inner[1] == ("op", "|"):
            return _parse_structure(inner[2:])  # {x | x > 1}: the set of reals the condition holds on
        parts = _split_top(inner, {",", ";"})
        if first == "\\{" or len(parts) > 1:  # {4, 6, 9} written without backslashes is a set too
            return ("set", [_parse_item(p) for p in parts] if inner else [])
    if first in ("(", "[") and last in (")", "]") and _closes_at_end(tokens):
        parts = _split_top(tokens[1:-1], {",", ";"})
        if len(parts) == 2:
            return ("interval", _parse_item(parts[0]), _parse_item(parts[1]), first == "[", last == "]")
        if len(parts) > 2:
            return ("tuple", [_parse_item(p) for p in parts])
    sides: list[list[Any]] = [[]]
    ops: list[str] = []
    depth = 0
    for tok in tokens:
        if tok[1] in ("(", "[", "{", "\\{"):
            depth += 1
        elif tok[1] in (")", "]", "}", "\\}"):
            depth -= 1
        if depth == 0 and tok[0] == "op" and tok[1] in _RELATIONS:
            ops.append(tok[1])
            sides.append([])
        else:
            sides[-1].append(tok)
    if not ops:
        return _parse_side(tokens)
    return ("rel", [_parse_side(side) for side in sides], ops)


def _parse_side(tokens: list[Any]) -> Node:
    """One side of a relation: a ratio `3 : 8` (or a clock time `7:30`), a bracketed shape, or an
    expression."""
    ratio = _split_top(tokens, {":"})
    if len(ratio) > 1:
        if all(len(p) == 1 and p[0][0] == "num" and p[0][1].isdigit() for p in ratio) and all(
                len(p[0][1]) == 2 for p in ratio[1:]) and len(ratio) <= 3:
            # 7:30, 12:00:05; with two hour digits (07:30, 19:30) it is read on a 24-hour clock
            return ("time", [int(p[0][1]) for p in ratio], len(ratio[0][0][1]) == 2 or int(ratio[0][0][1]) > 12)
        return ("ratio", [_Parser(part).expression() for part in ratio])
    if tokens and tokens[0][1] in ("(", "[", "\\{", "{") and _closes_at_end(tokens) and len(
            _split_top(tokens[1:-1], {",", ";"})) > 1:
        return _parse_item(tokens)
    return _Parser(tokens).expression()


def _closes_at_end(tokens: list[Any]) -> bool:
    """True when the opening bracket at 0 is closed by the last token (not earlier)."""
    depth = 0
    for i, tok in enumerate(tokens):
        if tok[1] in ("(", "[", "{", "\\{"):
            depth += 1
        elif tok[1] in (")", "]", "}", "\\}"):
            depth -= 1
            if depth == 0:
                return i == len(tokens) - 1
    return False


# --- expressions -----------------------------------------------------------------------------

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_IMPLICIT_START = {"num", "sym", "const", "func", "word"}
_IMPLICIT_CMDS = {"\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty"} | {"\\" + f for f in FUNCTIONS}


class _Parser:
    """Recursive descent over one expression's tokens; depth-limited."""

    def __init__(self, tokens: list[Any]):
        self.tokens = list(tokens)
        self.i = 0
        self.depth = 0

    def expression(self) -> Node:
        if not self.tokens:
            raise ParseError("empty expression")
        node = self._add()
        if self.i != len(self.tokens):
            raise ParseError(f"unexpected {self.tokens[self.i][1]!r}")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise ParseError("answer ends too early")
        self.i += 1
        return tok

    def _expect(self, value: str) -> None:
        tok = self._take()
        if tok[1] != value:
            raise ParseError(f"expected {value!r}, found {tok[1]!r}")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ParseError("nested too deeply")

    def _add(self) -> Node:
        terms = [self._mul()]
        while (tok := self._peek()) is not None and tok[1] in ("+", "-"):
            self.i += 1
            term = self._mul()
            terms.append(("neg", term) if tok[1] == "-" else term)
        return terms[0] if len(terms) == 1 else ("add", terms)

    def _mul(self) -> Node:
        node = self._unary()
        while (tok := self._peek()) is not None:
            if tok[1] in ("*", "/"):
                self.i += 1
                right = self._unary()
                node = ("div", node, right) if tok[1] == "/" else _product(node, right)
            elif tok[0] in _IMPLICIT_START or tok[1] in ("(", "{") or tok[1] in _IMPLICIT_CMDS or (
                tok[0] == "cmd" and tok[1][1:] in _GREEK
            ):
                node = _product(node, self._power())
            else:
                break
        return node

    def _unary(self) -> Node:
        tok = self._peek()
        if tok is not None and tok[1] in ("-", "+"):
            self.i += 1
            self._enter()
            inner = self._unary()
            self.depth -= 1
            return ("neg", inner) if tok[1] == "-" else inner
        return self._power()

    def _power(self) -> Node:
        base = self._postfix()
        tok = self._peek()
        if tok is not None and tok[1] == "^":
            self.i += 1
            self._enter()
            exponent = self._group() if self._peek_is("{") else self._unary()
            self.depth -= 1
            return ("pow", base, exponent)
        return base

    def _postfix(self) -> Node:
        node = self._primary()
        while (tok := self._peek()) is not None and tok[1] in ("!", "'"):
            self.i += 1
            if tok[1] == "!":
                node = ("fact", node)
            elif node[0] == "sym":
                node = ("sym", node[1] + "'")
            else:
                raise ParseError("a prime on an expression")
        return node

    def _peek_is(self, value: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[1] == value

    def _group(self) -> Node:
        """`{ expr }`, or one token's worth (`\\frac12`, `\\sqrt2`, `x^2`)."""
        self._enter()
        try:
            tok = self._peek()
            if tok is not None and tok[1] == "{":
                self.i += 1
                inner = self._add()
                self._expect("}")
                return inner
            if tok is not None and tok[0] == "num" and len(tok[1]) > 1 and tok[1].isdigit():
                # \frac12: the argument is one digit; the rest stays for the next argument
                self.tokens[self.i] = ("num", tok[1][1:])
                return ("num", Fraction(int(tok[1][0])), False)
            return self._postfix()
        finally:
            self.depth -= 1

    def _primary(self) -> Node:
        self._enter()
        try:
            return self._primary_inner()
        finally:
            self.depth -= 1

    def _primary_inner(self) -> Node:
        kind, value = self._take()
        if kind == "num":
            if self._peek_is("_") and value.isdigit():
                return self._base_literal(value)
            return _number(value)
        if kind == "sym":
            if self._peek_is("_"):
                self.i += 1
                sub = self._take() if not self._peek_is("{") else None
                if sub is None:
                    start = self.i
                    self._group()
                    label = "".join(t[1] for t in self.tokens[start:self.i])
                else:
                    label = sub[1]
                return ("sym", f"{value}_{label.strip('{}')}")
            return ("sym", value)
        if kind == "const":
            return ("const", value)
        if kind == "func":
            return self._function(value)
        if value in _OPENERS:
            inner = self._add()
            closing = self._take()[1]
            if closing not in (")", "]", "}"):
                raise ParseError(f"unbalanced {value!r}")
            return inner
        if value == "|":
            inner = self._add()
            self._expect("|")
            return ("abs", inner)
        if kind == "cmd":
            return self._command(value[1:])
        raise ParseError(f"unexpected {value!r}")

    def _base_literal(self, digits: str) -> Node:
        """`132_4`, `204_{5}`: digits in a base from 2 to 10."""
        self.i += 1
        braced = self._peek_is("{")
        if braced:
            self.i += 1
        kind, base = self._take()
        if braced:
            self._expect("}")
        if kind != "num" or not base.isdigit() or not 2 <= int(base) <= 10 or any(int(d) >= int(base) for d in digits):
            raise ParseError(f"{digits}_{base} is not a number in a base from 2 to 10")
        return ("base", digits, int(base))

    def _command(self, name: str) -> Node:
        if name == "frac":
            return ("div", self._group(), self._group())
        if name == "sqrt":
            index = None
            if self._peek_is("["):
                self.i += 1
                index = self._add()
                self._expect("]")
            return ("root", self._group(), index or ("num", Fraction(2), False))
        if name == "binom":
            return ("binom", self._group(), self._group())
        if name == "pi":
            return ("const", "pi")
        if name == "infty":
            return ("const", "oo")
        if name in _GREEK:
            return ("sym", name)
        if name in FUNCTIONS:
            return self._function(name)
        raise ParseError(f"\\{name} is not part of an answer")

    def _function(self, name: str) -> Node:
        power = None
        if self._peek_is("^"):  # \sin^2 x
            self.i += 1
            power = self._group()
        base = None
        if name == "log" and self._peek_is("_"):
            self.i += 1
            base = self._group()
        if self._peek_is("(") or self._peek_is("{"):
            self.i += 1
            arg = self._add()
            self._take()
        else:
            arg = self._power()
        if name == "sqrt":
            node: Node = ("root", arg, ("num", Fraction(2), False))
        elif name == "abs":
            node = ("abs", arg)
        elif name == "log" and base is not None:
            node = ("log", arg, base)
        else:
            node = ("func", name, arg)
        return ("pow", node, power) if power is not None else node


def _product(a: Node, b: Node) -> Node:
    if a[0] == "mul":
        return ("mul", [*a[1], b])
    return ("mul", [a, b])


def _number(text: str) -> Node:
    """A literal: exact as a Fraction; `inexact` when written with a decimal point or exponent."""
    mantissa, _, exponent = text.lower().partition("e")
    value = Fraction(mantissa if mantissa not in ("", ".") else "0")
    if exponent:
        value *= Fraction(10) ** int(exponent)
    return ("num", value, "." in mantissa)
