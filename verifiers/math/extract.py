"""Find the final answer in a response (or in a reference solution).

The first rule that finds an answer decides:
1. the last complete `\\boxed{...}` / `\\fbox{...}` (nested braces; a later box retracts an
   earlier one);
2. the last GSM8K `#### x` line;
3. the last "the answer is x" / "Answer: x" / "final answer: x", or the same phrase in Spanish,
   French, German, Portuguese, Italian, Russian, Chinese or Japanese, up to the end of its line;
4. the whole text, when it is short and has no prose (a bare answer such as `3/4` or `2x+1`);
5. the last display or inline math (`$...$`, `\\(...\\)`, `\\[...\\]`), else the last number.

Every regex here is linear in the text: a 100,000-character response costs milliseconds.
"""

from __future__ import annotations

import re

__all__ = ["extract_answer", "last_boxed"]

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_PHRASE = re.compile(
    r"(?:\b(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=|would\s+be|will\s+be)"
    r"|\bla\s+respuesta\s+(?:final\s+)?(?:es|:)|\brespuesta(?:\s+final)?\s*:"
    r"|\bla\s+r[ée]ponse\s+(?:finale\s+)?(?:est|:)|\br[ée]ponse(?:\s+finale)?\s*:"
    r"|\bdie\s+(?:endg[üu]ltige\s+)?antwort\s+(?:ist|lautet|:)|\bantwort\s*:|\bergebnis\s*:"
    r"|\ba\s+resposta\s+(?:final\s+)?(?:[ée]|:)|\bresposta(?:\s+final)?\s*:"
    r"|\bla\s+risposta\s+(?:finale\s+)?(?:[èe]|:)|\brisposta\s*:"
    r"|ответ\s*(?::|равен|—|-)|окончательный\s+ответ\s*:?"
    r"|最终答案(?:是|为|：|:)|答案(?:是|为|：|:)|答え(?:は|：|:))"
    r"\s*:?\s*",
    re.IGNORECASE,
)
_MATH_SPANS = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^$\n]+?)\$", re.DOTALL)
# A number in running text, not glued to a letter, `^`, `_`, `{` or `\` (so `x^2`, `a_1`, `v2`
# are not numbers): thousands separators, decimals, a fraction `a/b`.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.^_{\\/])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?(?![\w^_])")
_PROSE = re.compile(r"[^\W\d_]{4,}", re.UNICODE)  # a word of 4+ letters outside a LaTeX command
_LATEX_WORDS = re.compile(r"\\(?:text|mathrm|mbox|textbf|operatorname|begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+")
_BARE_LIMIT = 120  # a longer text without a marked answer is prose, not a bare answer


def extract_answer(text: str, guess: bool = True) -> str | None:
    """The final-answer text of a response or solution, or None when it contains no answer.

    `guess=False` stops before rule 5: a reference solution must mark its answer (or be one)."""
    if not isinstance(text, str):
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    lines = _GSM8K.findall(text)
    if lines:
        return _tidy(lines[-1]) or None
    phrases = list(_ANSWER_PHRASE.finditer(text))
    if phrases:
        tail = _tidy(text[phrases[-1].end() :].split("\n", 1)[0])
        if tail:
            return tail
    stripped = text.strip()
    if stripped and len(stripped) <= _BARE_LIMIT and "\n" not in stripped and not _looks_like_prose(stripped):
        return _tidy(stripped)
    if not guess:
        return None
    spans = list(_MATH_SPANS.finditer(text))
    if spans:
        last = spans[-1]
        return next(g for g in last.groups() if g is not None).strip()
    numbers = _NUMBER_IN_TEXT.findall(text)
    return numbers[-1] if numbers else None


def last_boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}` / `\\fbox{...}` whose braces close."""
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    # One pass pairing every brace, so a text full of unclosed boxes stays linear.
    closing: dict[int, int] = {}
    open_braces: list[int] = []
    first = starts[0] - 1
    for m in re.finditer(r"\\[{}]|[{}]", text[first:]):
        if len(m.group()) == 2:  # an escaped brace (a LaTeX set) does not nest
            continue
        i = m.start() + first
        if m.group() == "{":
            open_braces.append(i)
        elif open_braces:
            closing[open_braces.pop()] = i
    for start in reversed(starts):
        if start - 1 in closing:
            return text[start : closing[start - 1]]
    return None


def _tidy(tail: str) -> str:
    """An answer phrase's tail: drop a trailing full stop and wrapping bold or math markers."""
    tail = tail.strip().strip("*").strip()
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed.strip()
    tail = tail.rstrip().rstrip(".。").rstrip()
    return tail.strip().strip("*").strip()


def _looks_like_prose(text: str) -> bool:
    """True when the text has words outside LaTeX commands and `\\text{}` (a sentence, not an
    answer). Units after a number ("18 dollars") count as an answer, not prose."""
    outside_math = _MATH_SPANS.sub(" ", text)
    if outside_math != text and re.search(r"[^\W\d_]{2,}", _LATEX_WORDS.sub(" ", outside_math)):
        return True  # "Hence $x = 5$": words around math
    bare = _LATEX_WORDS.sub(" ", text)
    words = _PROSE.findall(bare)
    if len(words) < 2:
        return False  # "Monday", "5 apples": an answer
    # "18 dollars", "5 apples each": a leading number followed by words only is an answer.
    return not re.match(r"^\s*[-+$€£]?\s*\d[\d,.]*\s*%?\s*[^\W\d_]+(?:\s+[^\W\d_]+){0,2}\s*\.?$", bare)
