"""Preference data for the reward model, DPO and KTO: three row kinds, validated with file and row.

- pair:    `{prompt, chosen, rejected}` (optional numeric `margin`, used by the reward model);
- ranking: `{prompt, responses: [K texts], ranking: [K indices, best first]}`, expanded into its
           K(K-1)/2 ordered (better, worse) pairs, as InstructGPT trained its reward model; an
           entry of the ranking may be a list of indices that tie (`[[0, 2], 1]`): they are
           never paired with each other;
- binary:  `{prompt, completion, label}` with a boolean label (desirable or not), for KTO.

Pair and ranking rows may be mixed in one file; KTO also reads them, each pair giving one
desirable and one undesirable row. Other fields of a row (the scores a generate_preferences stage
kept) are ignored. Without a file, the built-in preference task: prompts of the
arithmetic task, each with K responses whose true order is known (see `builtin_preference_rows`),
so a stage can be shown to learn without human labels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errors import DataError
from pipeline.config import ArithmeticTaskConfig, DataSourceConfig, PreferenceDataConfig, RunConfig
from pipeline.data import load_rows
from pipeline.losses.reward import ranking_to_pairs
from pipeline.tasks import ArithmeticTask

__all__ = [
    "PreferencePair",
    "BinaryFeedback",
    "PreferenceData",
    "parse_pairs",
    "parse_binary",
    "builtin_preference_rows",
    "load_preference_data",
    "EncodedPair",
    "encode_pairs",
    "pack_pairs",
]


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None


@dataclass(frozen=True)
class BinaryFeedback:
    prompt: str
    completion: str
    desirable: bool


@dataclass
class PreferenceData:
    """Training and held-out rows as the stages need them; `train_binary`/`eval_binary` are the
    KTO view (from binary rows, or from the pairs when the source has none)."""

    train_pairs: list[PreferencePair]
    eval_pairs: list[PreferencePair]
    train_binary: list[BinaryFeedback]
    eval_binary: list[BinaryFeedback]
    system: str | None = None


def _text(row: dict, field: str, where: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        got = "missing" if value is None else f"{type(value).__name__} {value!r}"[:80]
        raise DataError(f"{where}: field {field!r} must be non-empty text ({got}; row has {sorted(row)})")
    return value


def _row_kind(row: dict, where: str) -> str:
    if "responses" in row or "ranking" in row:
        return "ranking"
    if "chosen" in row or "rejected" in row:
        return "pair"
    if "completion" in row or "label" in row:
        return "binary"
    raise DataError(
        f"{where}: not a preference row (has {sorted(row)}); expected {{prompt, chosen, rejected}}, "
        "{prompt, responses, ranking} or {prompt, completion, label}"
    )


def _pairs_of(row: dict, where: str) -> list[PreferencePair]:
    prompt = _text(row, "prompt", where)
    if _row_kind(row, where) == "pair":
        chosen, rejected = _text(row, "chosen", where), _text(row, "rejected", where)
        margin = row.get("margin")
        if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
            raise DataError(f"{where}: field 'margin' must be a number, got {margin!r}")
        return [PreferencePair(prompt, chosen, rejected, None if margin is None else float(margin))]
    responses, ranking = row.get("responses"), row.get("ranking")
    if not isinstance(responses, list) or len(responses) < 2:
        raise DataError(f"{where}: field 'responses' must be a list of at least 2 texts, got {responses!r}"[:300])
    for i, r in enumerate(responses):
        if not isinstance(r, str) or not r.strip():
            raise DataError(f"{where}: responses[{i}] must be non-empty text, got {r!r}")
    k = len(responses)
    tiers = [t if isinstance(t, list) else [t] for t in ranking] if isinstance(ranking, list) else None
    if (
        tiers is None
        or any(not tier or any(isinstance(i, bool) or not isinstance(i, int) for i in tier) for tier in tiers)
        or sorted(i for tier in tiers for i in tier) != list(range(k))
    ):
        raise DataError(
            f"{where}: field 'ranking' must be a permutation of 0..{k - 1} (indices into responses, best "
            f"first; a list of indices for responses that tie), got {ranking!r}"
        )
    return [PreferencePair(prompt, responses[a], responses[b]) for a, b in ranking_to_pairs(tiers)]


def parse_pairs(rows: list[dict], source: str, skip_binary: bool = False) -> list[PreferencePair]:
    """Pair and ranking rows -> pairs (rankings expanded); errors name the source and 1-based row.

    A binary row is an error, or passed over with `skip_binary` (a file mixing kinds for KTO)."""
    out: list[PreferencePair] = []
    for number, row in enumerate(rows, start=1):
        where = f"{source}: row {number}"
        if _row_kind(row, where) == "binary":
            if skip_binary:
                continue
            raise DataError(f"{where}: a binary {{prompt, completion, label}} row gives no pair; use it with the kto stage")
        out.extend(_pairs_of(row, where))
    return out


def parse_binary(rows: list[dict], source: str) -> list[BinaryFeedback]:
    """Binary rows as they are, pair and ranking rows as one desirable and one undesirable row per pair."""
    out: list[BinaryFeedback] = []
    for number, row in enumerate(rows, start=1):
        out.extend(_binary_of(row, f"{source}: row {number}"))
    return out


def _binary_of(row: dict, where: str) -> list[BinaryFeedback]:
    if _row_kind(row, where) != "binary":
        return _as_binary(_pairs_of(row, where))
    prompt, completion = _text(row, "prompt", where), _text(row, "completion", where)
    label = row.get("label")
    if not isinstance(label, bool):
        raise DataError(f"{where}: field 'label' must be true or false, got {label!r}")
    return [BinaryFeedback(prompt, completion, label)]


def _as_binary(pairs: list[PreferencePair]) -> list[BinaryFeedback]:
    return [fb for p in pairs for fb in (BinaryFeedback(p.prompt, p.chosen, True), BinaryFeedback(p.prompt, p.rejected, False))]


# --- the built-in preference task ------------------------------------------------------------
_FILLERS = (" um", " or so", " I think", "...", " maybe", " right?", " hmm")


def builtin_preference_rows(
    task: ArithmeticTaskConfig, train_size: int, eval_size: int, k: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """(train, held-out) ranking rows on prompts of the arithmetic task, with a known true order:

        1. the correct answer, terse ("19")
        2. the correct answer, rambling ("19 I think")
        3. a wrong answer, terse ("85": the answer to another problem of the task)
        4. a wrong answer, rambling ("85 maybe")

    (K < 4 keeps the first K.) Correctness outranks style. Responses are shuffled and each row's
    `ranking` gives the true order. Prompts are distinct, never from the task's evaluation split,
    and the two splits share none; the rows are a pure function of (task, seed).
    """
    arith = ArithmeticTask(task.model_copy(update={"sft_size": 0}))
    seen = {p.prompt for p in arith.eval_problems}
    rng = random.Random(f"{seed}/preference")
    rows: list[dict] = []
    attempts = 0
    while len(rows) < eval_size + train_size:
        attempts += 1
        if attempts > 50 * (eval_size + train_size) + 1000:
            raise DataError(
                f"preference: cannot draw {eval_size + train_size} distinct prompts from the task; "
                "raise task.max_operand or lower preference.size / preference.eval_size"
            )
        problem = arith.problem(rng)
        if problem.prompt in seen:
            continue
        seen.add(problem.prompt)
        rows.append(_ranking_row(problem.prompt, problem.answer, k, rng, arith))
    return rows[eval_size:], rows[:eval_size]


def _ranking_row(prompt: str, answer: str, k: int, rng: random.Random, arith: ArithmeticTask) -> dict:
    # A wrong answer is the answer to another problem of the task: a number of the right kind and
    # size, so only its relation to this prompt gives it away.
    wrong = answer
    while wrong == answer:
        wrong = arith.problem(rng).answer
    fill_a, fill_b = rng.choice(_FILLERS), rng.choice(_FILLERS)
    best_first = [str(answer), f"{answer}{fill_a}", str(wrong), f"{wrong}{fill_b}"][:k]
    order = list(range(k))
    rng.shuffle(order)  # the i-th best response goes to slot order[i]
    responses = [""] * k
    for rank, slot in enumerate(order):
        responses[slot] = best_first[rank]
    return {"prompt": prompt, "responses": responses, "ranking": order}


def load_preference_data(cfg: RunConfig, generated: str | None = None) -> PreferenceData:
    """The run's preference rows: a generate_preferences stage's output directory (`generated`:
    its train.jsonl and eval.jsonl), else the built-in task, or `preference.path` (+ `eval_path`,
    or a held-out carve of `eval_size` prompts, so no prompt is in both splits). Every row of a file
    is validated, with its 1-based row number, before anything is carved."""
    pref: PreferenceDataConfig = cfg.preference
    system = getattr(cfg.task, "system_prompt", None)
    if generated is not None:
        train_file, eval_file = Path(generated) / "train.jsonl", Path(generated) / "eval.jsonl"
        if not train_file.is_file():
            raise DataError(f"{generated}: not a generate_preferences output (no train.jsonl)")
        train = _parse_rows(_read_all(train_file), str(train_file))
        held = _parse_rows(_read_all(eval_file), str(eval_file)) if _has_rows(eval_file) else []
    elif pref.path is None:
        if cfg.task.kind != "arithmetic":
            raise DataError("preference: set preference.path (the built-in preference task needs task.kind=arithmetic)")
        train_rows, held_rows = builtin_preference_rows(cfg.task, pref.size, pref.eval_size, pref.ranking_size, pref.seed)
        train = _parse_rows(train_rows, "built-in preference task")
        held = _parse_rows(held_rows, "built-in preference task")
    else:
        train = _parse_rows(_read(pref.path, pref), pref.path)
        if pref.eval_path is not None:
            held = _parse_rows(_read(pref.eval_path, pref), pref.eval_path)
        else:
            train, held = _carve(train, pref)
    return PreferenceData(
        train_pairs=[p for row in train for p in row[1]],
        eval_pairs=[p for row in held for p in row[1]],
        train_binary=[b for row in train for b in row[2]],
        eval_binary=[b for row in held for b in row[2]],
        system=system,
    )


_Parsed = tuple[str, list[PreferencePair], list[BinaryFeedback]]  # (prompt, its pairs, its KTO rows)


def _parse_rows(rows: list[dict], source: str) -> list[_Parsed]:
    out = []
    for number, row in enumerate(rows, start=1):
        where = f"{source}: row {number}"
        if _row_kind(row, where) == "binary":
            out.append((_text(row, "prompt", where), [], _binary_of(row, where)))
        else:
            pairs = _pairs_of(row, where)
            out.append((pairs[0].prompt, pairs, _as_binary(pairs)))
    return out


def _read_all(path: Path) -> list[dict]:
    return load_rows(DataSourceConfig(path=str(path)), required=("prompt",))


def _has_rows(path: Path) -> bool:
    return path.is_file() and any(line.strip() for line in path.open())


def _read(path: str, pref: PreferenceDataConfig) -> list[dict]:
    source = DataSourceConfig(path=path, split=pref.split, limit=pref.limit)
    return load_rows(source, required=("prompt",))


def _carve(rows: list[_Parsed], pref: PreferenceDataConfig) -> tuple[list[_Parsed], list[_Parsed]]:
    prompts = sorted({prompt for prompt, _, _ in rows})
    if pref.eval_size >= len(prompts):
        raise DataError(
            f"{pref.path}: {len(prompts)} distinct prompts cannot give a held-out split of "
            f"preference.eval_size={pref.eval_size}; lower it or set preference.eval_path"
        )
    random.Random(f"{pref.seed}/carve").shuffle(prompts)
    held = set(prompts[: pref.eval_size])
    return [r for r in rows if r[0] not in held], [r for r in rows if r[0] in held]


# --- tokenised pairs, as the reward model and DPO consume them -------------------------------
EncodedPair = tuple[list[int], list[int], list[int]]  # (prompt ids, chosen ids, rejected ids)


def encode_pairs(tokenizer, pairs: list[PreferencePair], max_length: int, system: str | None = None) -> list[EncodedPair]:
    """Prompt and both completions through the chat template (each completion ends the way the
    assistant's turn ends), truncated to max_length like SFT demonstrations. A ranking's responses
    recur across its pairs, so each (prompt, response) is encoded once."""
    from pipeline.tokens import encode_demonstration

    cache: dict[tuple[str, str], tuple[list[int], list[int]]] = {}

    def encode(prompt: str, response: str) -> tuple[list[int], list[int]]:
        key = (prompt, response)
        if key not in cache:
            cache[key] = encode_demonstration(tokenizer, prompt, response, max_length, system)
        return cache[key]

    out = []
    for p in pairs:
        prompt, chosen = encode(p.prompt, p.chosen)
        _, rejected = encode(p.prompt, p.rejected)
        out.append((prompt, chosen, rejected))
    return out


def pack_pairs(encoded: list[EncodedPair], pad_id: int):
    """One `PackedBatch` of 2N sequences: rows 0..N-1 the chosen completions, N..2N-1 the rejected."""
    from pipeline.tokens import pack

    prompts = [p for p, _, _ in encoded] * 2
    completions = [c for _, c, _ in encoded] + [r for _, _, r in encoded]
    return pack(prompts, completions, pad_id)
