"""A numeric answer checker: extract the final answer, parse it exactly, compare with a tolerance.

Answers are found in this order, and the first rule that finds one decides:
the last complete `\\boxed{...}`, a GSM8K `#### x` line, "the answer is x", the last number.
Numbers are parsed into `fractions.Fraction` (integers with thousands separators, decimals,
`a/b`, `\\frac{a}{b}`, mixed numbers like `3\\frac{1}{2}`); symbolic answers (`\\sqrt{2}`, `2x`)
do not parse and score as wrong. Text is never evaluated (no eval, no sympify).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import isfinite
from typing import Any, ClassVar, Sequence

from verifiers.base import ERROR, OK, Verdict

__all__ = ["MathVerifier", "extract_answer", "parse_number"]

# One unsigned number: 1,234,567.89 | 1234 | 0.5 | .5 | 1e-3. Exponents stop at 3 digits:
# Fraction("1e99999999") would compute a 100-million-digit integer.
_NUM = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{1,3})?"
# A whole answer: optional sign, a number, optionally "/ number".
_NUMBER = re.compile(rf"([-+]?)\s*({_NUM})(?:\s*/\s*({_NUM}))?")
# A number inside running text. Not after a letter, digit, `.`, `^`, `_`, `{`, `\` or `/`, so
# `x^2`, `a_1`, `\frac{x}{2}` and the 2 of `v2` are not read as numbers.
_NUMBER_IN_TEXT = re.compile(rf"(?<![\w.^_{{\\/])-?{_NUM}(?:/{_NUM})?")
# The same, anchored, for what follows "the answer is"; the number must end there.
_LEADING_NUMBER = re.compile(rf"-?{_NUM}(?:/{_NUM})?(?![\w^_{{/\\]|[.,]\d)")

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(r"answer\s*(?:is\b|:|=)\s*:?\s*", re.IGNORECASE)  # the answer follows on its line

_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")  # \frac12 -> \frac{1}{2}
# Digit runs are bounded: int() refuses strings over 4300 digits.
_MIXED = re.compile(r"(?<![\w.^_{}\\])(-?)(\d{1,30})\s*\\frac\s*\{\s*(\d{1,30})\s*\}\s*\{\s*(\d{1,30})\s*\}")
_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_ASSIGNMENT = re.compile(r"^[A-Za-z]\w*\s*=\s*")  # "x = 5"
_DEGREES_PERCENT = re.compile(r"(?:\^\s*\{?\s*\\circ\s*\}?|°|%)$")
_UNIT_WORDS = re.compile(r"\s+[A-Za-z]+(?:\s+[A-Za-z]+)*$")  # "18 dollars", "5 apples each"
_MAX_ANSWER_CHARS = 200  # no number is longer; bounds the work spent on a runaway box


def extract_answer(text: str) -> str | None:
    """The final-answer text of a completion or solution, or None when it contains no answer."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    gsm8k = _GSM8K.findall(text)
    if gsm8k:
        return gsm8k[-1]
    answer_is = list(_ANSWER_IS.finditer(text))
    if answer_is:
        tail = text[answer_is[-1].end() :].split("\n", 1)[0]
        tail = _normalize_latex(tail).strip()
        tail = _ASSIGNMENT.sub("", tail)
        leading = _LEADING_NUMBER.match(tail)
        return leading.group() if leading else tail
    numbers = _NUMBER_IN_TEXT.findall(_normalize_latex(text))
    return numbers[-1] if numbers else None


def parse_number(text: str) -> Fraction | None:
    """The exact value of an answer that is a single number (units, `$`, `x =` allowed), else None.

    "50%" parses as 50: a percentage is compared as the number written, never as 0.5.
    """
    s = _normalize_latex(text).strip()
    if len(s) > _MAX_ANSWER_CHARS:
        return None
    s = _ASSIGNMENT.sub("", s.rstrip(".").strip())
    s = _UNIT_WORDS.sub("", s).strip()
    s = _DEGREES_PERCENT.sub("", s).strip()
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None
    sign, num, den = m.groups()
    try:
        value = _to_fraction(num) / (_to_fraction(den) if den else 1)
    except ZeroDivisionError:
        return None
    return -value if sign == "-" else value


@dataclass(frozen=True)
class MathVerifier:
    """Rewards a completion whose final number equals the reference within `rel_tol`.

    A wrong or unparseable completion is scored (status ok, `reward_wrong`); an unparseable
    reference is status error, so bad gold data is masked out instead of teaching the model.
    """

    name: ClassVar[str] = "math"

    reward_correct: float = 1.0
    reward_wrong: float = 0.0
    require_boxed: bool = False
    rel_tol: float = 1e-6

    def __post_init__(self) -> None:
        for field in ("reward_correct", "reward_wrong", "rel_tol"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value):
                raise ValueError(f"MathVerifier {field} must be a finite number, got {value!r}")
        if self.rel_tol < 0:
            raise ValueError(f"MathVerifier rel_tol must be >= 0, got {self.rel_tol!r}")

    def verify(self, completions: Sequence[str], references: Sequence[Any]) -> list[Verdict]:
        """One verdict per (completion, reference) pair, each timed on its own."""
        verdicts = []
        for completion, reference in zip(completions, references, strict=True):
            start = time.perf_counter()
            reward, status, reason = self._score(completion, reference)
            verdicts.append(Verdict(reward, status, reason, time.perf_counter() - start))
        return verdicts

    def _score(self, completion: str, reference: Any) -> tuple[float, str, str]:
        gold = _reference_value(reference)
        if gold is None:
            return 0.0, ERROR, f"reference {_clip(repr(reference))} has no parseable number"
        if self.require_boxed and _last_boxed(completion) is None:
            return self.reward_wrong, OK, "no \\boxed answer"
        answer = extract_answer(completion)
        if answer is None:
            return self.reward_wrong, OK, "no answer found"
        value = parse_number(answer)
        if value is None:
            return self.reward_wrong, OK, f"answer {_clip(repr(answer))} is not a number"
        if not _close(value, gold, self.rel_tol):
            return self.reward_wrong, OK, f"answer {_clip(str(value))} != reference {_clip(str(gold))}"
        return self.reward_correct, OK, ""


def _reference_value(reference: Any) -> Fraction | None:
    """A reference as an exact number: a number, a numeric string, or a solution with a marked
    answer (box, ####, "the answer is"). No last-number guess: unmarked gold text is an error."""
    if isinstance(reference, bool):
        return None
    if isinstance(reference, float):
        # repr is the shortest decimal that round-trips, so 0.1 means 1/10, not the binary value.
        return Fraction(repr(reference)) if isfinite(reference) else None
    if isinstance(reference, Decimal):
        return Fraction(reference) if reference.is_finite() else None
    if isinstance(reference, (int, Fraction)):
        return Fraction(reference)
    if not isinstance(reference, str):
        return None
    value = parse_number(reference)
    if value is not None:
        return value
    if _last_boxed(reference) is None and not _GSM8K.search(reference) and not _ANSWER_IS.search(reference):
        return None
    answer = extract_answer(reference)
    return parse_number(answer) if answer is not None else None


def _last_boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}` whose braces close (nested braces allowed)."""
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    # One pass pairing every brace, so a text full of unclosed boxes stays linear.
    closing, open_braces = {}, []
    for m in re.finditer(r"[{}]", text[starts[0] - 1 :]):
        i = m.start() + starts[0] - 1
        if m.group() == "{":
            open_braces.append(i)
        elif open_braces:
            closing[open_braces.pop()] = i
    for start in reversed(starts):
        if start - 1 in closing:
            return text[start : closing[start - 1]]
    return None


def _normalize_latex(s: str) -> str:
    """Rewrite LaTeX number notation as plain text: `\\frac{1}{2}` -> `1/2`, `\\$18` -> `18`."""
    for old, new in (
        ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
        ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", " "), ("~", " "),
        ("{,}", ","), ("\\$", ""), ("$", ""), ("\\%", "%"), ("\u2212", "-"),
    ):
        s = s.replace(old, new)
    s = _LATEX_WRAPPERS.sub(r" \1 ", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _MIXED.sub(_mixed_to_fraction, s)
    return _FRAC.sub(_frac_to_fraction, s)


def _mixed_to_fraction(m: re.Match[str]) -> str:
    sign, whole, num, den = m.groups()
    if int(den) == 0:
        return m.group()
    value = int(whole) + Fraction(int(num), int(den))
    return _fraction_text(-value if sign else value)


def _frac_to_fraction(m: re.Match[str]) -> str:
    num, den = parse_number(m.group(1)), parse_number(m.group(2))
    if num is None or not den:  # symbolic, or a zero denominator: leave it to fail parsing
        return m.group()
    return _fraction_text(num / den)


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _to_fraction(num: str) -> Fraction:
    return Fraction(num.replace(",", ""))


def _close(a: Fraction, b: Fraction, rel_tol: float) -> bool:
    """|a - b| <= rel_tol * max(|a|, |b|), in exact arithmetic (so 0 only matches 0)."""
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def _clip(text: str, limit: int = 60) -> str:
    """Keep reasons short: a runaway completion must not flood the logs."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
