"""Find the final answer in a response (or in a reference solution).

Before anything else, dollar signs used as currency (`$12 + $30 = $42`) are told apart from
LaTeX's `$...$`, chat-template debris is cut off, and GSM8K calculator notes (`<<3*4=12>>`) go.
Then the first rule that finds an answer decides:

1. `\\boxed{...}` / `\\fbox{...}` (nested braces): the last box, together with the boxes just
   before it when only connectors separate them (`\\boxed{2} and \\boxed{5}` is the list `2, 5`);
   a box further back is retracted by a later one. A reference's boxes are all its answer.
2. the last GSM8K `#### x` line;
3. the last final-answer phrase: "the answer is", "Answer:", "A:", "**Answer:**", "Final Answer:
   The final answer is $x$. I hope it is correct.", and the same in Spanish, French, German,
   Portuguese, Italian, Russian, Chinese, Japanese and Korean; its value is the math right after it,
   or the value its sentence states ("The largest $n$ is 34.");
4. the whole text, when it is short and has no prose (a bare answer such as `3/4` or `2x+1`), or
   is math spans joined by "and" / "or" / commas (`$21, 16$ or $11$`);
5. a bold value in the last lines (`**42**`);
6. the last number or math span of the text, skipping an approximation that follows the value
   (`7/12 \\approx 0.58` gives `7/12`), and taking the right-hand side of a chain (`3 + 4 = 7`).

Rules 5 and 6 guess, so a reference (`guess=False`) must mark its answer or be one.
Every regex here is linear in the text: a 100,000-character response costs milliseconds.
"""

from __future__ import annotations

import re

__all__ = ["extract_answer", "last_boxed", "all_boxed", "choice_in_text", "mask_currency", "question_numbers",
           "CURRENCY_MARK"]

CURRENCY_MARK = "\ue000"  # stands in for a currency `$`; same length, so positions are kept

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
# Text after which a response is no longer answering: the chat template's own markers, or the
# model starting a new exercise on its own.
_DEBRIS = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end)\|>|</s>|<\|user\|>")
_NEW_EXERCISE = re.compile(r"\n\s*(Q|Question|Problem|Human|User|Exercise)\s*(?:\d+\s*)?[:：.]", re.IGNORECASE)
_CALCULATOR = re.compile(r"<<[^<>\n]{0,200}>>")
_PHRASE = (
    r"(?<![/\w])(?:the\s+)?(?:correct\s+|final\s+)?answer\s*(?:is|should\s+be|would\s+be|will\s+be|:|：|-|—)"
    r"|(?<![/\w])final\s+answer\s*="
    r"|(?<![A-Za-z])final\s+answer\s*(?:[:：]|\*\*|(?=\n))|(?:^|\n)[ \t>#*]*final\s+answer\b"
    r"|(?:^|\n)[ \t>#*]*(?:A|Ans)\s*[:：]"
    r"|\*\*\s*(?:final\s+)?answer\s*:?\s*\*\*\s*:?|[\"']?(?:final_?)?answer[\"']\s*:"
    r"|\bla\s+respuesta\s+(?:final\s+|correcta\s+)?(?:es|ser[íi]a|:)|\brespuesta(?:\s+final)?\s*[:：]"
    r"|\bla\s+r[ée]ponse\s+(?:finale\s+)?(?:est|serait|:)|\br[ée]ponse(?:\s+finale)?\s*[:：]"
    r"|\bdie\s+(?:endg[üu]ltige\s+|richtige\s+)?antwort\s+(?:ist|lautet|:)|\bantwort\s*[:：]|\bergebnis\s*[:：]"
    r"|\ba\s+resposta\s+(?:final\s+|correta\s+)?(?:[ée]|:)|\bresposta(?:\s+final)?\s*[:：]"
    r"|\bla\s+risposta\s+(?:finale\s+|corretta\s+)?(?:[èe]|:)|\brisposta(?:\s+finale)?\s*[:：]"
    r"|ответ\s*(?::|равен|—|-|будет)|окончательный\s+ответ\s*:?"
    r"|最终答案\s*(?:是|为|：|:)|答案\s*(?:是|为|應為|应为|：|:)|(?:^|\n)\s*答\s*[:：]|答え\s*(?:は|：|:)"
    r"|정답\s*(?:은|:)|답\s*(?:은|:)|đáp\s+án\s*(?:là|:)"
)
_ANSWER_PHRASE = re.compile(r"(?:" + _PHRASE + r")[ \t]*[:：]?[ \t]*", re.IGNORECASE)
_MATH_SPANS = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$((?:[^$\n\\]|\\.)+?)\$", re.DOTALL)
# A number in running text, not glued to a Latin letter, `^`, `_`, `{` or `\` (so `x^2`, `a_1`,
# `v2` are not numbers; CJK text around a number is fine): thousands separators, decimals, a
# fraction `a/b`, a trailing percent sign.
_NUMBER_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9_.^{\\/])-?" + CURRENCY_MARK + r"?(?:\d{1,3}(?:,\d{3})+|\d+,\d{1,2}(?![\d,])|\d+)(?:\.\d+)?"
    r"(?:[eE][-+]?\d{1,3}|\s?(?:×|\\times|\\cdot|\*)\s?10\s?\^\s?\{?-?\d{1,3}\}?|/\d+(?:\.\d+)?|(?::\d+)+)?"
    r"(?:\s?\\?%)?(?:(?![A-Za-z0-9_^])|(?=(?:[kcm]?m|kg|mg|g|ml|l|s|h|min|ft|lb|oz)(?:²|³|\^?\d)?(?![A-Za-z0-9])))"
)  # a unit may be glued on: 5cm, 1,000.99m²
_LATEX_WORDS = re.compile(
    r"\\begin\s*\{[^{}]*\}(?:\s*\{[lcr|\s]*\})?|\\(?:text|mathrm|mbox|textbf|operatorname|end)\s*\{[^{}]*\}|\\[A-Za-z]+")
_BARE_LIMIT = 120  # a longer text without a marked answer is prose, not a bare answer
# What may stand between boxes that together give one answer: `\boxed{2}, \boxed{5}`,
# `\boxed{1} and \boxed{2}`, `$\boxed{(1,2)}$ \quad \text{or} \quad $\boxed{(2,1)}$`.
_BOX_GAP = re.compile(
    r"(?:\s|[,;.、，；&$]|\\[()\[\]]|\\q?quad\b|\\[,;:! ]|\\\\|\\(?:text|mathrm|textbf)\s*\{\s*(?:and|or|,|;)?\s*\}"
    r"|\b(?:and|or|et|ou|y|e|und|oder)\b|и|или|和|或|以及|与|及)*",
    re.IGNORECASE,
)
_NAMED_GAP = re.compile(r"(?:[\s$,;]|\\[()]|\band\b)*[A-Za-z](?:_\{?\w+\}?)?\s*=(?:\s|\$|\\[()])*")
_LEADING_VALUE = re.compile(r"[-+]?" + CURRENCY_MARK + r"?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?:\s?\\?%)?(?=\s+[^\W\d_]{2,})")
_NEGATION = re.compile(r"(?:not|never|n't|no\s+longer)\b", re.IGNORECASE)
_APPROX = re.compile(r"(?:\\approx|≈|\\sim|~|\babout\b|\bapproximately\b|\broughly\b|\baround\b|\bcirca\b|约|大约)\s*$",
                     re.IGNORECASE)
# Where an answer stops and its justification starts: "14, because ...", "25 (rounded ...)",
# "120 minutes (2 hours)", `12, "steps": 3` (JSON).
_REASON = re.compile(
    r"[,;]\s+(?=[^\W\d_]{2,})|,\s*(?=[\"'][^\W\d_])|\s+\((?=[^\W\d_]{2,})|(?<=[^\W\d_]{2})\s+\("
    r"|\s+(?:because|since|as|which|so|given|when|if)\b", re.IGNORECASE)
# Full-width digits and signs, as Chinese and Japanese text writes them: １２ -> 12.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_SENTENCE_END = re.compile(r"(?<!\.)\.(?=\s|$)|[。！？\n]|(?<![\d)}!])[!?](?=\s|$)")
_STATES = re.compile(
    r"\s(?:is|are|was|were|equals|equal\s+to|be|makes|gives|becomes|est|es|ist|é|è|son|sont|sind|равно|равен)\s"
    r"|=|是|为|等于|は|：|(?<!\\):(?=\s)",
    re.IGNORECASE,
)


def extract_answer(text: str, guess: bool = True) -> str | None:
    """The final-answer text of a response or solution, or None when it contains no answer.

    `guess=False` (references) stops before rules 5 and 6, and takes every box of the text."""
    if not isinstance(text, str):
        return None
    text = _clean(text)
    if guess:
        # The model went on to set itself a new exercise: what came before it answers, when it
        # marks an answer or holds a value ("Problem:" may also head a restatement of the question).
        cut = _NEW_EXERCISE.search(text)
        if cut and cut.start() > 0:
            before = text[: cut.start()]
            marked = all_boxed(before) or _GSM8K.search(before) or _phrases(before)
            if marked and _marked_answer(before, reference=False) is not None or (
                    cut.group(1).lower() not in ("problem", "exercise") and _last_value(before) is not None):
                text = before
    answer = _marked_answer(text, reference=not guess)
    if answer is None and guess:
        answer = _bold_answer(text) or _last_value(text)
    return _unmask(answer).strip() or None if answer is not None else None


# The numbers a question states: mixed numbers, fractions (LaTeX or a/b), percents, decimals and
# integers (with thousands commas), each with its sign when the minus is not a subtraction.
_FRAC = r"\\[dt]?frac\s*(?:\{\s*\d+\s*\}|\d)\s*(?:\{\s*\d+\s*\}|\d)"
_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_QUESTION_NUMBER = re.compile(
    r"(?<![\w)}])-?(?:\d+\s*" + _FRAC + r"|" + _FRAC + r"|\d+\s+\d+/\d+(?![\d/])|\d+(?:\.\d+)?/\d+(?:\.\d+)?"
    r"|(?:" + _DECIMAL + r")\s?\\?%|" + _DECIMAL + r")"
)


def question_numbers(question: str) -> list[str]:
    """The numbers a question states, as written (`2.75`, `5/8`, `2\\frac{3}{4}`, `25%`, `1,000`)."""
    return [m.group(0) for m in _QUESTION_NUMBER.finditer(question[:20_000])]


def last_boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}` / `\\fbox{...}` whose braces close."""
    boxes = all_boxed(text)
    return boxes[-1][2] if boxes else None


def all_boxed(text: str) -> list[tuple[int, int, str]]:
    """(start, end, contents) of every `\\boxed{...}` / `\\fbox{...}` whose braces close, in order;
    of nested boxes only the innermost is kept."""
    starts = [m for m in _BOX.finditer(text)]
    if not starts:
        return []
    # One pass pairing every brace, so a text full of unclosed boxes stays linear.
    closing: dict[int, int] = {}
    open_braces: list[int] = []
    first = starts[0].end() - 1
    for m in re.finditer(r"\\[{}]|[{}]", text[first:]):
        if len(m.group()) == 2:  # an escaped brace (a LaTeX set) does not nest
            continue
        i = m.start() + first
        if m.group() == "{":
            open_braces.append(i)
        elif open_braces:
            closing[open_braces.pop()] = i
    boxes: list[tuple[int, int, str]] = []
    for m in starts:
        end = closing.get(m.end() - 1)
        if end is None:
            continue
        while boxes and m.start() < boxes[-1][1]:
            boxes.pop()  # a box inside another: the inner one, opened last, is the answer
        boxes.append((m.start(), end + 1, text[m.end() : end]))
    return boxes


def choice_in_text(text: str) -> str | None:
    """A multiple-choice letter in a response with no marked answer: at its start (`A. Because
    ...`, `(B) 12`), else the last `(C)` in it."""
    if not isinstance(text, str):
        return None
    start = re.match(r"\s*\(?([A-J])(?:\)|[.:])(?:\s|$)", text)
    if start:
        return start.group(1)
    found = re.findall(r"\(([A-J])\)", text[-2000:])
    return found[-1] if found else None


def mask_currency(text: str) -> str:
    """`text` with every `$` that is a currency sign (and `\\$`) replaced by CURRENCY_MARK.

    A `$` before a number opens math only when a closing `$` follows on the same line with math
    between (no words, not ending in a space) and is not itself a price (`$12 + $30`)."""
    if "$" not in text:
        return text
    out = list(text)
    i, n = 0, len(text)
    while True:
        i = text.find("$", i)
        if i < 0:
            break
        if i > 0 and text[i - 1] == "\\":
            out[i - 1], out[i] = " ", CURRENCY_MARK
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "$":  # display math `$$...$$`
            close = text.find("$$", i + 2)
            i = close + 2 if close >= 0 else i + 2
            continue
        close = _closing_dollar(text, i + 1)
        if close is not None and _is_math(text[i + 1 : close]):
            i = close + 1
            continue
        if re.match(r"\s?-?\s?\d", text[i + 1 : i + 4]):
            out[i] = CURRENCY_MARK
        i += 1
    return "".join(out)


# --- the rules -------------------------------------------------------------------------------


def _clean(text: str) -> str:
    debris = _DEBRIS.search(text)
    if debris:
        text = text[: debris.start()]
    text = _CALCULATOR.sub("", text)
    if any("\uff01" <= ch <= "\uff5e" for ch in text):
        text = text.translate(_FULL_WIDTH)
    return mask_currency(text)


def _marked_answer(text: str, reference: bool) -> str | None:
    boxes = all_boxed(text)
    if not boxes and reference:
        unclosed = list(_BOX.finditer(text))
        if unclosed:  # a reference cut off inside its box: what follows the last one is the answer
            return text[unclosed[-1].end() :].strip().rstrip("$.").strip() or None
    boxed = None
    if boxes:
        group = _trailing_group(text, boxes, loose=reference)
        if len(group) > 1 and any(_NAMED_GAP.fullmatch(text[a[1] : b[0]]) for a, b in zip(group, group[1:])):
            boxed = _named_boxes(text, group)  # x = \boxed{2}, y = \boxed{-1}
        else:
            parts = list(dict.fromkeys(b[2].strip() for b in group if b[2].strip()))  # `\boxed{4} ... \boxed{4}`
            boxed = ", ".join(parts) or None
    phrases = _phrases(text)
    if boxed is not None:
        # A final-answer line after the box restates or corrects it ("... \boxed{255}. So she has
        # $10,455. Final Answer: The final answer is $10,455$."); a prose one does not count.
        if phrases and phrases[-1].start() > boxes[-1][1]:
            later = _answer_after(text[phrases[-1].end() :], strict=True)
            if later:
                return later
        return boxed
    lines = _GSM8K.findall(text)
    if lines:
        return _tidy(lines[-1]) or None
    for phrase in reversed(phrases):
        answer = _answer_after(text[phrase.end() :])
        if answer:
            return answer
    return _bare_answer(text)


def _named_boxes(text: str, group: list[tuple[int, int, str]]) -> str:
    """`x = \\boxed{2}, y = \\boxed{-1}` read as `x = 2, y = -1`."""
    name = re.search(r"([A-Za-z](?:_\{?\w+\}?)?\s*=\s*)[$\\(\s]*$", text[: group[0][0]])
    pieces = [name.group(1) if name else ""]
    for box, following in zip(group, group[1:] + [None]):
        pieces.append(box[2])
        if following is not None:
            pieces.append(re.sub(r"\$|\\[()\[\]]", " ", text[box[1] : following[0]]))
    return "".join(pieces).strip()


_PHRASE_HINT = re.compile(
    r"answer|resp|r[ée]pon|antwort|ergebnis|rispost|ответ|答|답|đáp|(?:^|\n)[ \t>#*]*(?:A|Ans)\s*[:：]", re.IGNORECASE)


def _phrases(text: str) -> list[re.Match[str]]:
    """Every final-answer phrase, in order. The full pattern is slow to try at every position, so
    it is tried only around the places a cheap keyword search finds."""
    found: dict[int, re.Match[str]] = {}
    for hint in _PHRASE_HINT.finditer(text):
        for m in _ANSWER_PHRASE.finditer(text, max(0, hint.start() - 40), min(len(text), hint.end() + 40)):
            if m.start() <= hint.start() < m.end() or hint.start() <= m.start() < hint.end():
                found.setdefault(m.start(), m)
    return [found[k] for k in sorted(found)]


def _trailing_group(text: str, boxes: list[tuple[int, int, str]], loose: bool) -> list[tuple[int, int, str]]:
    """The last box and those before it separated only by connectors; for a reference also by a
    few words (`\boxed{1} papers and \boxed{2} bins`)."""
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        gap = text[box[1] : group[-1][0]]
        if _BOX_GAP.fullmatch(gap) is None and _NAMED_GAP.fullmatch(gap) is None and not (
                loose and len(re.findall(r"[^\W\d_]+", gap)) <= 3 and not re.search(r"[.:;!?]\s|\n", gap)):
            break
        group.append(box)
    return group[::-1]


def _answer_after(tail: str, strict: bool = False) -> str | None:
    """The answer that follows a final-answer phrase: on its line, else on the next line.
    `strict`: only an answer written right after the phrase, not one read out of a sentence."""
    tail = tail.lstrip(" \t*:：")
    first_line, _, rest = tail.partition("\n")
    if not first_line.strip(" *.`"):
        first_line = rest.lstrip().split("\n", 1)[0]  # "The answer is:\n\n$$42$$"
        if first_line.startswith("$$") or first_line.startswith("\\["):
            span = _MATH_SPANS.match(rest.lstrip())
            if span:
                return next(g for g in span.groups() if g is not None).strip()
    line = re.split(r"\bI hope it is correct|\bI hope this helps", first_line, maxsplit=1, flags=re.IGNORECASE)[0]
    line = line.strip().strip("*").strip()
    if _NEGATION.match(line):
        return None
    quoted = re.match(r"([\"'])(.+?)\1", line)
    if quoted:  # JSON: "answer": "42"
        line = quoted.group(2).strip()
    while line.count("}") > line.count("{") and line.endswith(("}", ",")):  # JSON: "answer": 42}
        line = line[:-1].rstrip()
    if not line:
        return None
    boxed = last_boxed(line)
    if boxed is not None:
        return boxed.strip()
    span = _MATH_SPANS.match(line)
    if span and (span.end() == len(line) or not re.match(r"\s*[A-Za-z0-9]", line[span.end():])
                 or _looks_like_prose(line[span.end():])):
        return next(g for g in span.groups() if g is not None).strip()  # "$7$. I hope ..."
    sentence = _first_sentence(line)
    head = _REASON.split(sentence, maxsplit=1)[0]  # "14, because 2 * 7 = 14", "25 (rounded ...)"
    if _PLACEHOLDER.fullmatch(head):  # the instruction's template quoted back: 'a "So the answer is...", which'
        return None
    if head.strip() and not _looks_like_prose(head):
        return _tidy(head) or None
    lead = _LEADING_VALUE.match(head)
    if lead:  # "64 groups of 8 students": the value said right after the phrase, not the last one
        return lead.group().strip()
    if strict:
        return None
    # A sentence after the phrase states the answer only if it is the last thing said with a
    # number in it ("Answer: First, 3 apples cost $6. ..." is a heading, not an answer).
    if re.search(r"\d", tail[tail.find(sentence) + len(sentence) :]):
        return None
    return _value_in_sentence(sentence)


# Dots, an ellipsis, blanks and quotes alone: a placeholder, not an answer.
_PLACEHOLDER = re.compile(r"[\s.…_\"'“”‘’*]*")


def _bare_answer(text: str) -> str | None:
    stripped = text.strip()
    if not stripped or len(stripped) > _BARE_LIMIT or "\n" in stripped:
        return None
    if not _looks_like_prose(stripped):
        return _tidy(stripped) or None
    # "$125$ miles", "$21,16$ or $11$", "$1$ and $2$ and $3$": math spans, connectors, one word.
    spans = list(_MATH_SPANS.finditer(stripped))
    rest = re.sub(r"\b(?:and|or)\b|[,;.]", " ", _MATH_SPANS.sub(" ", stripped), flags=re.IGNORECASE)
    if spans and len(rest.split()) <= 1:
        return ", ".join(next(g for g in s.groups() if g is not None).strip() for s in spans)
    return None


def _bold_answer(text: str) -> str | None:
    """`**42**` or `**$10**` in the last two non-empty lines."""
    lines = [line for line in text.strip().split("\n") if line.strip()][-2:]
    for line in reversed(lines):
        bolds = re.findall(r"\*\*([^*\n]{1,80})\*\*", line)
        for bold in reversed(bolds):
            bold = bold.strip()
            if not re.search(r"\d", bold) or bold.endswith(":") or re.match(r"(?:step|part|case|method|option)\b",
                                                                             bold, re.IGNORECASE):
                continue  # a label ("**Step 3:**"), not a value
            value = bold.rstrip(".")
            if not _looks_like_prose(value):
                return value
            if _STATES.search(value):
                return _value_in_sentence(value)
    return None


def _last_value(text: str) -> str | None:
    """The last number or math span in the text (rule 6)."""
    text = _normalize_number_text(text)
    candidates: list[tuple[int, int, str]] = []
    spans = list(_MATH_SPANS.finditer(text))
    outside = list(text)
    for s in spans:
        content = next(g for g in s.groups() if g is not None).strip()
        if content:
            candidates.append((s.start(), s.end(), content))
        outside[s.start() : s.end()] = " " * (s.end() - s.start())
    plain = "".join(outside)
    candidates += [(m.start(), m.end(), m.group()) for m in _NUMBER_IN_TEXT.finditer(plain)]
    # A symbolic right-hand side with no digit, stated after the last number: "i^2 equals -i".
    candidates += [(m.start(1), m.end(1), m.group(1).strip()) for m in _RHS.finditer(plain, max(0, len(plain) - 600))
                   if not re.search(r"\d", m.group(1)) and re.search(r"[A-Za-z]", m.group(1))
                   and re.search(r"[-+*/^()]", m.group(1)) and m.group(1).count("(") == m.group(1).count(")")]
    if not candidates:
        return None
    candidates.sort()
    k = len(candidates) - 1
    # `7/12 \approx 0.58`: the value stated before an approximation of it.
    while k > 0 and _approximates(text[candidates[k - 1][1] : candidates[k][0]]):
        k -= 1
    start, end, value = candidates[k]
    if value.count("=") and not re.search(r"\\(?:begin|text)", value):
        value = _last_of_chain(value)
    elif plain[start:end] == value:
        value = _right_hand_side(plain, start, end) or value
    return value


_RHS = re.compile(r"(?:=|\bequals\b|\bis\s+equal\s+to\b)\s*"
                  r"((?:[-+*/^×÷·().\d\s]|(?<![A-Za-z])[A-Za-z](?![A-Za-z])|\b(?:sqrt|pi)\b)+?)"
                  r"\s*(?=[A-Za-z]{2,}|[,;!?。]|\.(?:\s|$)|$)")


def _right_hand_side(text: str, start: int, end: int) -> str | None:
    """A value written in plain text as the right-hand side of an equation, when the last number is
    part of it: `(x^2 - 1)/(x - 1) = x + 1` gives `x + 1` (the number alone would be `1`)."""
    line_start = max(text.rfind("\n", 0, start), text.rfind(". ", 0, start), start - 300) + 1
    for m in reversed(list(_RHS.finditer(text, line_start, min(len(text), end + 80)))):
        if m.start(1) <= start and end <= m.end(1) + 1:
            rhs = m.group(1).strip()
            while rhs.count(")") > rhs.count("(") and rhs.endswith(")"):
                rhs = rhs[:-1].rstrip()
            return rhs if re.search(r"[A-Za-z+\-*/^×÷·(]", rhs) and rhs.count("(") == rhs.count(")") else None
        if m.end(1) < start:
            break
    return None


def _approximates(gap: str) -> bool:
    """Whether the text between two values says the second approximates the first: `7/12 \\approx
    0.58`, `7/12, or about 0.58`, `7/12 (roughly 0.58)`."""
    if not _APPROX.search(gap):
        return False
    words = re.sub(r"\\approx|\\sim|≈|~|[\s,;()$=]|\b(?:or|about|approximately|roughly|around|circa|which|is|i\.e\.)\b"
                   r"|约|大约", "", gap, flags=re.IGNORECASE)
    return not words


def _value_in_sentence(sentence: str) -> str | None:
    """The value a sentence states: after its last "is" / "=" / ":", else its last value."""
    statements = list(_STATES.finditer(sentence))
    if statements:
        after = sentence[statements[-1].end() :].strip()
        if _NEGATION.match(after):
            return None  # "the final answer is not 2" says what the answer is not
        head = _MATH_SPANS.match(after)
        if head:
            return next(g for g in head.groups() if g is not None).strip()
        number = re.match(r"[-+]?" + CURRENCY_MARK + r"?\s?(?:\d[\d,]*(?:\.\d+)?(?:/\d+)?(?:\s?\\?%)?)", after)
        if number:
            return number.group()
        if after and len(after) <= 40 and not _looks_like_prose(after):
            return _tidy(after)
    return _last_value(sentence)


def _first_sentence(line: str) -> str:
    """Up to the end of the first sentence, outside math spans (a decimal point is not one)."""
    hidden = _MATH_SPANS.sub(lambda m: "x" * len(m.group()), line)
    end = _SENTENCE_END.search(hidden)
    return line[: end.start()] if end else line


def _last_of_chain(value: str) -> str:
    """`48 + 24 = 72` -> `72`; a chain's last link is its value (an approximation is not)."""
    depth, last = 0, -1
    for i, ch in enumerate(value):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "=" and depth == 0 and value[i - 1 : i] not in ("<", ">", "!") and value[i + 1 : i + 2] != "=":
            last = i
    if last < 0:
        return value
    rhs = value[last + 1 :].strip()
    approx = re.search(r"\\approx|≈", rhs)
    if not approx:
        return rhs or value
    exact = rhs[: approx.start()].strip()
    return exact or value


def _tidy(tail: str) -> str:
    """An answer phrase's tail: drop a trailing full stop and wrapping bold or math markers."""
    tail = tail.strip().strip("*").strip()
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed.strip()
    tail = tail.rstrip().rstrip(".。").rstrip().strip("*").strip()
    whole = _MATH_SPANS.fullmatch(tail)
    return next(g for g in whole.groups() if g is not None).strip() if whole else tail


def _unmask(answer: str) -> str:
    return answer.replace(CURRENCY_MARK, "")


def _closing_dollar(text: str, start: int) -> int | None:
    """The next single `$` on the same line after `start`, or None."""
    i = start
    while True:
        j = text.find("$", i)
        if j < 0:
            return None
        newline = text.find("\n", start, j)
        if newline >= 0:
            return None
        if text[j - 1] == "\\":
            i = j + 1
            continue
        return j


def _is_math(content: str) -> bool:
    """Whether `$content$` is LaTeX math rather than two prices with words between."""
    if not content.strip() or (content[-1].isspace() and not content[0].isspace()):
        return False  # "$12 + $30": a price, words or an operator, then the next price
    bare = _LATEX_WORDS.sub(" ", content)
    return not re.search(r"[^\W\d_]{3,}", bare)


def _normalize_number_text(text: str) -> str:
    """Thousands separators of LaTeX and of print, spelled plainly: `12{,}345`, `12,\\!345`,
    `4\\,321.5`, `98\\,765\\,432`, `3 500` (a thin or plain space before three digits)."""
    if "\\" in text or "{" in text:
        text = re.sub(r"(?<=\d)(?:\{,\}|,\\!|,\s?\\!\s?)(?=\d{3})", ",", text)
    text = re.sub(r"(?<=\d)(?:\\[,!]|\\thinspace\s?|[\u2009\u202f\u00a0])(?=\d{3}(?!\d))", "", text)
    return re.sub(r"(?<![\d.,])(\d{1,3})(?: (\d{3}))+(?![\d.,]?\d)",
                  lambda m: m.group().replace(" ", ""), text)


def _looks_like_prose(text: str) -> bool:
    """True when the text is a sentence rather than an answer: words before its first number or
    math ("So she has 12", "approximately 42", "所以一共是 96"), or more than three after it, or
    words around math ("Hence $x = 5$ here"). An answer may carry units ("18 dollars", "5 apples
    each"), connectors ("x = 1 or x = 2"), `\\text{}` and LaTeX commands; a word alone ("Monday",
    "no solution") is a text answer."""
    outside_math = _MATH_SPANS.sub(" 0 ", text)
    bare = _LATEX_WORDS.sub(" ", outside_math).replace("**", " ")
    words = [(m.start(), m.group()) for m in re.finditer(r"[^\W\d_]{2,}", bare)
             if m.group().lower() not in _NOT_PROSE and not _is_math_name(bare, m)]
    value = re.search(r"\d", bare)
    if value is None:
        return len(words) > 3
    if outside_math != text and words:
        return True
    last_value = max(m.end() for m in re.finditer(r"\d", bare))
    # Words before the first value, or between values ("98 + 0 results in 99"), make a sentence;
    # after the last value they are units.
    return any(start < last_value for start, _ in words) or len(words) > 3


def _is_math_name(text: str, word: re.Match[str]) -> bool:
    """`AB` in `AB = 9`, `PQ` in `|PQ|`: a short name of letters beside an operator."""
    if len(word.group()) > 4 or not word.group().isascii():
        return False
    before, after = text[: word.start()].rstrip()[-1:], text[word.end() :].lstrip()[:1]
    return bool(before and before in "=|(+-*/^_<>{}" or after and after in "=|)+-*/^_<>({}")


_NOT_PROSE = {"and", "or", "et", "ou", "und", "oder", "pi", "sqrt", "sin", "cos", "tan", "log", "ln", "exp", "inf",
              "infinity", "oo"}
