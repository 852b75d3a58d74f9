"""The `math` verifier: is the response's final answer the gold answer?

Per completion: extract the final answer (`extract.py`), parse it without eval (`parse.py`),
decide equality (`equal.py`). Numbers, constants, text, ratios and multiple-choice letters are
decided here in microseconds; anything that needs sympy goes to a pool of worker processes where
each answer has a hard time budget (`verifiers.pool`). Repeated (answer, gold) pairs come from a
cache.

References are read once: `prepare_reference` (also `MathVerifier.prepare_reference`) turns a
reference into a `MathReference`, its answer text and syntax tree, or raises ValueError saying why
it cannot be read; results are cached per process, and `verify` takes raw references or
`MathReference`s. A data loader calls it (through `verifiers.prepare_references`) when a dataset
is loaded, so an unreadable gold is reported with its row rather than masked in training.

Verdicts: equal -> `reward_correct`; not equal, no answer, unparseable or refused answer ->
`reward_wrong` (status ok: that is the model's doing); a reference that cannot be read -> status
error; an answer that overran its budget -> status timeout. Errors and timeouts are masked in
training, never scored.

Defaults, and why: `percent="either"` because graders accept "50%" for 0.5 and GSM8K golds drop
the sign; `rel_tol=1e-6` applies only when a side is written as a decimal or is irrational (so
`0.333` is not `1/3`, but `0.3333333` is; two integers compare exactly); a box is not required
(the spine's tiny task answers bare numbers).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import isfinite
from typing import Any, ClassVar, Literal, NamedTuple, Sequence

from verifiers.base import ERROR, OK, TIMEOUT, Context, Verdict
from verifiers.math.equal import answer_readings, quick_equal
from verifiers.math.extract import choice_in_text, extract_answer, last_boxed, question_numbers
from verifiers.math.parse import ParseError, letter_of
from verifiers.pool import DONE, TIMEOUT as POOL_TIMEOUT, DeadlinePool

__all__ = ["MathVerifier", "MathReference", "prepare_reference", "question_fault"]

_JOB = "verifiers.math.equal:compare_texts"
_Decided = tuple  # (equal: bool | None, status, reason)


class _ForPool(NamedTuple):
    pred: str
    gold: str


@dataclass(frozen=True)
class MathReference:
    """A reference read once: the answer text taken from it (`72` from a GSM8K solution, every box
    of a MATH solution) and that answer's syntax tree. `MathVerifier.prepare_reference` makes one;
    `verify` takes these or raw references."""

    answer: str
    node: Any = field(repr=False, compare=False)
    # Other readings of the same text (`1,22` with a decimal comma): an answer equal to any counts.
    other_nodes: tuple[Any, ...] = field(default=(), repr=False, compare=False)


_pools: dict[tuple[int, float, int], DeadlinePool] = {}
_pools_lock = threading.Lock()


def _shared_pool(workers: int, timeout_s: float, memory_mb: int) -> DeadlinePool:
    """One pool per setting, shared by every MathVerifier in the process."""
    key = (workers, timeout_s, memory_mb)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = DeadlinePool(_JOB, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb,
                                       preload=["sympy", "verifiers.math.symbolic", "verifiers.math.equal"])
        return _pools[key]


class MathVerifier:
    """Scores completions whose final answer equals the reference (see the module doc)."""

    name: ClassVar[str] = "math"
    # The prompt tells a restated question number from an answer (see `verify`); without one
    # (contexts=None) every answer is judged against the reference alone.
    wants_context: ClassVar[bool] = True

    def __init__(
        self,
        reward_correct: float = 1.0,
        reward_wrong: float = 0.0,
        require_boxed: bool = False,
        percent: Literal["either", "value", "fraction"] = "either",
        rel_tol: float = 1e-6,
        timeout_s: float = 3.0,
        workers: int | None = None,
        memory_mb: int = 3072,
        cache_size: int = 100_000,
        prestart: bool = True,
    ):
        for option, value in (("reward_correct", reward_correct), ("reward_wrong", reward_wrong), ("rel_tol", rel_tol),
                             ("timeout_s", timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value):
                raise ValueError(f"MathVerifier {option} must be a finite number, got {value!r}")
        if rel_tol < 0:
            raise ValueError(f"MathVerifier rel_tol must be >= 0, got {rel_tol!r}")
        if timeout_s <= 0:
            raise ValueError(f"MathVerifier timeout_s must be > 0, got {timeout_s!r}")
        if percent not in ("either", "value", "fraction"):
            raise ValueError(f"MathVerifier percent must be 'either', 'value' or 'fraction', got {percent!r}")
        workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        if workers < 1 or memory_mb < 256 or cache_size < 0:
            raise ValueError("MathVerifier needs workers >= 1, memory_mb >= 256, cache_size >= 0")
        self.reward_correct, self.reward_wrong = float(reward_correct), float(reward_wrong)
        self.require_boxed, self.percent, self.rel_tol = require_boxed, percent, float(rel_tol)
        self.timeout_s, self.workers, self.memory_mb = float(timeout_s), workers, memory_mb
        self.cache_size = cache_size
        self.cache_hits = 0
        if prestart:  # ready by the time the first symbolic answer arrives
            self.warm_up()
        self._cache: OrderedDict[tuple[str, str], tuple[bool | None, str, str]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # --- the contract ---------------------------------------------------------------------

    def verify(self, completions: Sequence[str], references: Sequence[Any],
               contexts: Sequence[Context] | None = None) -> list[Verdict]:
        """One verdict per (completion, reference); the sympy work of the batch runs in parallel.
        With `contexts` (the prompts), an answer that only restates a number of its question in
        the form the question gave it is wrong when the gold is that value in another form
        ("Write 2.75 as a mixed number." answered `2.75`)."""
        if len(completions) != len(references):
            raise ValueError(f"{len(completions)} completions but {len(references)} references")
        if contexts is not None and len(contexts) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(contexts)} contexts")
        verdicts: list[Verdict | None] = [None] * len(completions)
        answers: list[tuple[str, MathReference] | None] = [None] * len(completions)
        jobs: dict[tuple[str, str], list[int]] = {}
        for i, (completion, reference) in enumerate(zip(completions, references)):
            start = time.perf_counter()
            decided, answers[i] = self._decide_here(completion, reference)
            if isinstance(decided, _ForPool):
                jobs.setdefault((decided.pred, decided.gold), []).append(i)
            else:
                verdicts[i] = self._verdict(decided, time.perf_counter() - start)
        if jobs:
            self._run_pool(jobs, verdicts)
        if contexts is not None:
            for i, (verdict, answer, context) in enumerate(zip(verdicts, answers, contexts)):
                if answer is not None and verdict.status == OK and verdict.reward == self.reward_correct:  # type: ignore[union-attr]
                    fault = question_fault(answer[0], answer[1], getattr(context, "prompt", "") or "")
                    if fault is not None:
                        verdicts[i] = Verdict(self.reward_wrong, OK, fault, verdict.latency_s)  # type: ignore[union-attr]
        return verdicts  # type: ignore[return-value]

    def prepare_reference(self, reference: Any) -> MathReference:
        """The reference read once, for checking a dataset when it is loaded: its answer and syntax
        tree. Raises ValueError saying why when it has no answer this verifier can read (no marked
        answer in a solution text, an answer outside the grammar, a NaN, a bool). `verify` reads
        raw references the same way, from a shared cache."""
        return prepare_reference(reference)

    def warm_up(self) -> None:
        """Start the worker pool now, so the first symbolic answer does not pay for it."""
        _shared_pool(self.workers, self.timeout_s, self.memory_mb).start_in_background()

    def close(self) -> None:
        """Stop this verifier's worker pool (it restarts on demand; also stopped at exit)."""
        with _pools_lock:
            pool = _pools.pop((self.workers, self.timeout_s, self.memory_mb), None)
        if pool is not None:
            pool.close()

    def __enter__(self) -> "MathVerifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------

    def _decide_here(self, completion: Any, reference: Any) -> "tuple[_Decided | _ForPool, tuple[str, MathReference] | None]":
        """(equal, status, reason) when settled without sympy, else the pair for the pool; with the
        (answer, reference) compared, when there was an answer to compare."""
        try:
            ref = reference if isinstance(reference, MathReference) else prepare_reference(reference)
        except ValueError as e:
            return (None, ERROR, str(e)), None
        pred = extract_answer(completion) if isinstance(completion, str) else None
        return self._decide(completion, ref, pred), (None if pred is None else (pred, ref))

    def _decide(self, completion: Any, ref: MathReference, pred: str | None) -> "_Decided | _ForPool":
        gold, gold_node = ref.answer, ref.node
        if not isinstance(completion, str):
            return (False, OK, "completion is not text")
        if self.require_boxed and last_boxed(completion) is None:
            return (False, OK, "no \\boxed answer")
        if gold_node[0] == "letter":  # a choice: also "A. Because ..." or the last "(C)" of the text
            choice = (letter_of(pred) if pred is not None else None) or choice_in_text(completion)
            same = choice == gold_node[1]
            return (same, OK, "" if same else f"choice {choice} != {gold_node[1]}")
        if pred is None:
            return (False, OK, "no answer found")
        cached = self._cache_get((pred, gold))
        if cached is not None:
            return cached
        try:
            readings = answer_readings(pred)
        except ParseError as e:
            return self._cache_put((pred, gold), (False, OK, f"answer {_clip(repr(pred))} does not parse: {e}"))
        undecided = False
        for pred_node in readings:
            for gold_reading in (gold_node, *ref.other_nodes):
                try:
                    quick = quick_equal(pred_node, gold_reading, self.percent, self.rel_tol)
                except ParseError:  # parses, but means nothing against this gold (`3 = 4%`): not equal
                    continue
                if quick:
                    return self._cache_put((pred, gold), (True, OK, ""))
                undecided |= quick is None
        if undecided:
            return _ForPool(pred, gold)
        return self._cache_put((pred, gold), (False, OK, _differs(pred, gold)))

    def _run_pool(self, jobs: dict[tuple[str, str], list[int]], verdicts: list[Verdict | None]) -> None:
        pool = _shared_pool(self.workers, self.timeout_s, self.memory_mb)
        keys = list(jobs)
        results = pool.map([(pred, gold, self.percent, self.rel_tol) for pred, gold in keys])
        for key, (status, value), elapsed in zip(keys, results, pool.last_elapsed):
            pred, gold = key
            if status == DONE:
                same, reason = value
                decided = self._cache_put(key, (same, OK, reason or ("" if same else _differs(pred, gold))))
            elif status == POOL_TIMEOUT:
                decided = (None, TIMEOUT, f"comparing {_clip(repr(pred))} ran past {self.timeout_s:g}s")
            else:  # a reference that does not parse, or a worker that died (memory limit)
                decided = (None, ERROR, _clip(str(value), 120))
            for i in jobs[key]:
                verdicts[i] = self._verdict(decided, elapsed)

    def _verdict(self, decided: tuple[bool | None, str, str], latency: float) -> Verdict:
        same, status, reason = decided
        if status != OK:
            return Verdict(0.0, status, reason, latency)
        return Verdict(self.reward_correct if same else self.reward_wrong, OK, reason, latency)

    def _cache_get(self, key: tuple[str, str]) -> tuple[bool | None, str, str] | None:
        if not self.cache_size:
            return None
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
            return hit

    def _cache_put(self, key: tuple[str, str], decided: tuple[bool | None, str, str]) -> tuple[bool | None, str, str]:
        if self.cache_size:
            with self._cache_lock:
                self._cache[key] = decided
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return decided


def prepare_reference(reference: Any) -> MathReference:
    """See `MathVerifier.prepare_reference`; cached per distinct reference."""
    key = (type(reference), reference) if isinstance(reference, (str, int, float, Fraction, Decimal)) else None
    if key is None:
        return _prepare(reference)
    outcome = _prepare_cached(key)
    if isinstance(outcome, str):
        raise ValueError(outcome)
    return outcome


@functools.lru_cache(maxsize=100_000)
def _prepare_cached(key: tuple[type, Any]) -> "MathReference | str":
    try:
        return _prepare(key[1])
    except ValueError as e:
        return str(e)  # the reason, cached too: an unreadable row is reported the same way each time


def _prepare(reference: Any) -> MathReference:
    answer = _reference_answer(reference)
    if answer is None:
        raise ValueError(f"reference {_clip(repr(reference))} has no readable answer")
    try:
        node, *others = answer_readings(answer)
    except ParseError as e:
        raise ValueError(f"reference {_clip(repr(answer))} does not parse: {e}") from None
    return MathReference(answer, node, tuple(others))


def _reference_answer(reference: Any) -> str | None:
    """A reference as answer text: a number, or a solution whose answer is marked (or is bare)."""
    if isinstance(reference, bool):
        return None
    if isinstance(reference, float):
        # repr is the shortest decimal that round-trips, so 0.1 means 1/10, not the binary value.
        return repr(reference) if isfinite(reference) else None
    if isinstance(reference, (int, Fraction)):
        return str(reference)
    if isinstance(reference, Decimal):
        return str(reference) if reference.is_finite() else None
    if not isinstance(reference, str):
        return None
    return extract_answer(reference, guess=False)


def question_fault(answer: str, reference: MathReference, question: str) -> str | None:
    """Why an answer found equal to the reference is wrong after all, given its question; else None.

    - A restated number: the answer is a number of the question, written as the question wrote it,
      and the reference is that value in another form (`2.75` for "Write 2.75 as a mixed number.",
      gold `2\\frac{3}{4}`). A question that states its answer in the reference's own form ("Tom has
      5 pens and loses none. How many?") is no conversion, so restating it is no fault.
    - A contradicted choice: the answer names the right letter but states the value of another
      option of the question (`C: 3` where the question lists (C) 2 and (D) 3).
    """
    if not question:
        return None
    if reference.node[0] == "letter":
        return _contradicted_choice(answer, question)
    restated = _restated(answer, reference, question)
    if restated is None:
        return None
    return f"answer {_clip(answer)} restates the question's {_clip(restated)}; the reference is {_clip(reference.answer)}"


def _restated(answer: str, reference: MathReference, question: str) -> str | None:
    try:
        answer_forms = {_form(node) for node in answer_readings(answer)}
    except (ParseError, RecursionError):
        return None
    gold_forms = {_form(node) for node in (reference.node, *reference.other_nodes)}
    if answer_forms & gold_forms:
        return None
    for text, forms in _question_forms(question):
        if forms & answer_forms:
            return text
    return None


# "(A) 0 (B) 1 (C) 2": each option's text, up to the next option, a line end or a trailing "or".
_OPTION = re.compile(r"\(([A-J])\)\s*([^()\n]*?)\s*(?:,|;|\bor\b)?\s*(?=\([A-J]\)|\n|$)")
_LETTER_AND_VALUE = re.compile(r"\s*\(?([A-J])\)?\s*[:.)=]?\s+(\S.*?)[\s.。]*$", re.DOTALL)


def _contradicted_choice(answer: str, question: str) -> str | None:
    options = {letter: text.rstrip(" .?") for letter, text in _OPTION.findall(question[:20_000])}
    said = _LETTER_AND_VALUE.match(answer)
    if len(options) < 2 or said is None or said[1] not in options:
        return None
    letter, value = said[1], said[2]
    if _same_option(value, options[letter]):
        return None
    other = next((k for k, text in options.items() if k != letter and _same_option(value, text)), None)
    if other is None:
        return None
    return f"answer {_clip(answer)} names choice {letter} ({_clip(options[letter])}) but states choice {other}'s value"


def _same_option(value: str, option: str) -> bool:
    squeeze = lambda text: re.sub(r"[\s$]", "", text).lower()  # noqa: E731
    if squeeze(value) == squeeze(option):
        return True
    try:
        return any(quick_equal(a, b, "value", 0.0) is True for a in answer_readings(value) for b in answer_readings(option))
    except (ParseError, RecursionError):
        return False


@functools.lru_cache(maxsize=4096)
def _question_forms(question: str) -> tuple[tuple[str, frozenset], ...]:
    """Each number of a question with its forms (a GRPO group shares one question)."""
    found = []
    for text in question_numbers(question):
        try:
            found.append((text, frozenset(_form(node) for node in answer_readings(text))))
        except (ParseError, RecursionError):
            continue
    return tuple(found)


def _form(node: Any) -> Any:
    """A syntax tree as a hashable form: `5.00` and `5` are one form (an integer written with
    zeros), `25%` and `25` are one (GSM8K golds drop the sign), `0.75` and `3/4` are two."""
    if isinstance(node, list):
        return tuple(_form(n) for n in node)
    if not isinstance(node, tuple) or not node:
        return node
    if node[0] == "num" and len(node) == 3:
        return ("num", node[1], bool(node[2]) and node[1].denominator != 1)
    if node[0] == "percent":
        return _form(node[1])
    return tuple(_form(n) for n in node)


def _differs(pred: str, gold: str) -> str:
    return f"answer {_clip(pred)} != reference {_clip(gold)}"


def _clip(text: str, limit: int = 60) -> str:
    """Keep reasons short: a runaway completion must not flood the logs."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
