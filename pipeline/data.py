"""Rows for every stage, from the built-in task or from datasets, validated with file and row.

Two row kinds here: `SFTRow` (prompt, response) for demonstrations and `PromptRow` (prompt,
answer, verifier, and the row's other columns) for RL and evaluation. `TaskData` is what the
trainers see: a fixed SFT set, a fixed held-out set, and `rl_batch(step, n)`, a deterministic
function of the step (so a resumed run draws exactly the prompts it would have drawn).

A row's verifier is a name, or several with weights (a composite: `{"math": 1, "format": 0.2}`
in the row, written `math=1,format=0.2`; see `verifiers.composite`).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from errors import DataError
from pipeline.config import DatasetTaskConfig, DataSourceConfig, RunConfig
from pipeline.tasks import ArithmeticTask, WordProblemTask

__all__ = ["SFTRow", "PromptRow", "TaskData", "EpochSampler", "build_task_data", "load_rows", "load_demonstrations"]

_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class SFTRow:
    prompt: str
    response: str


@dataclass(frozen=True)
class PromptRow:
    prompt: str
    answer: Any
    verifier: str
    # The data row's other columns (all but the prompt and the answer), which verifiers that ask for
    # contexts see as `Context.row`.
    row: Mapping[str, Any] = field(default_factory=dict, hash=False)
    where: str = field(default="", compare=False)  # "FILE: row N" for a dataset row, for errors


@dataclass
class TaskData:
    sft_rows: list[SFTRow]
    eval_rows: list[PromptRow]
    system: str | None = None  # system message put before every prompt
    _rl_rows: list[PromptRow] | None = None
    _task: ArithmeticTask | WordProblemTask | None = None
    _verifier: str = "math"
    _seed: int = 0
    _samplers: dict[str, "EpochSampler"] = field(default_factory=dict)

    def verifier_names(self) -> set[str]:
        return {r.verifier for r in self.fixed_prompt_rows()} | {self._verifier}

    def fixed_prompt_rows(self) -> list[PromptRow]:
        """The held-out rows and a dataset's RL rows: every prompt row known when the data is loaded
        (a built-in task makes its RL problems as it goes)."""
        return self.eval_rows + (self._rl_rows or [])

    def rl_batch(self, step: int, count: int, stream: str = "") -> list[PromptRow]:
        """The `count` prompts of RL step `step` (0-based); reshuffled every epoch of a dataset.

        Another `stream` is an independent sequence of prompts (deterministic by seed, stream and
        step): a GRPO step's refills, a generation stage's prompts."""
        if self._task is not None:
            return [PromptRow(p.prompt, p.answer, self._verifier) for p in self._task.rl_problems(step, count, stream)]
        rows = self._rl_rows or []
        if stream not in self._samplers:
            self._samplers[stream] = EpochSampler(len(rows), self._seed if not stream else f"{self._seed}/{stream}")
        return [rows[i] for i in self._samplers[stream].batch(step, count)]


class EpochSampler:
    """Batches of indices into n items, reshuffled every epoch; batch `step` is a pure function of
    (seed, step), so a resumed run continues exactly where the killed one was."""

    def __init__(self, n: int, seed: int | str):
        if n < 1:
            raise ValueError("EpochSampler needs at least one item")
        self.n = n
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def batch(self, step: int, count: int) -> list[int]:
        out = []
        for position in range(step * count, (step + 1) * count):
            epoch, index = divmod(position, self.n)
            out.append(self._order(epoch)[index])
        return out

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(self.n))
            random.Random(f"{self.seed}/epoch/{epoch}").shuffle(order)
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = order
        return self._orders[epoch]


def build_task_data(cfg: RunConfig) -> TaskData:
    """The run's rows; with `eval.verifier` set, the held-out rows are scored by it instead of their own
    (correctness alone, when training on a composite reward)."""
    task = cfg.task
    if task.kind in ("arithmetic", "word_problems"):
        arith = ArithmeticTask(task) if task.kind == "arithmetic" else WordProblemTask(task)
        data = TaskData(
            sft_rows=[SFTRow(p.prompt, p.answer) for p in arith.sft_problems],
            eval_rows=[PromptRow(p.prompt, p.answer, task.verifier) for p in arith.eval_problems],
            _task=arith,
            _verifier=task.verifier,
            _seed=cfg.seed,
        )
    else:
        data = _dataset_task_data(task, cfg.seed)
    if cfg.eval.verifier:
        data.eval_rows = [PromptRow(r.prompt, r.answer, cfg.eval.verifier, r.row, r.where) for r in data.eval_rows]
    return data


def _dataset_task_data(task: DatasetTaskConfig, seed: int) -> TaskData:
    def prompt_of(text: str) -> str:
        return task.prompt_template.format(prompt=text)

    def prompt_rows(source: DataSourceConfig) -> list[PromptRow]:
        fields = (source.prompt_field, source.answer_field)
        return [
            PromptRow(prompt_of(r[fields[0]]), r[fields[1]],
                      _row_verifier(r, source, task.verifier, f"{source.path}: row {number}"),
                      {k: v for k, v in r.items() if k not in fields}, where=f"{source.path}: row {number}")
            for number, r in enumerate(load_rows(source, required=fields), start=1)
        ]

    rl = prompt_rows(task.rl)
    if task.eval is not None:
        eval_rows = prompt_rows(task.eval)
    else:
        if task.eval_size >= len(rl):
            raise DataError(
                f"{task.rl.path}: {len(rl)} rows cannot give a held-out split of task.eval_size={task.eval_size}"
            )
        order = list(range(len(rl)))
        random.Random(f"{task.seed}/carve").shuffle(order)
        held = set(order[: task.eval_size])
        eval_rows = [rl[i] for i in sorted(held)]
        rl = [r for i, r in enumerate(rl) if i not in held]
    sft = []
    if task.sft is not None:
        fields = (task.sft.prompt_field, task.sft.response_field)
        sft = [SFTRow(prompt_of(r[fields[0]]), r[fields[1]]) for r in load_rows(task.sft, required=fields)]
    return TaskData(
        sft_rows=sft, eval_rows=eval_rows, system=task.system_prompt, _rl_rows=rl, _verifier=task.verifier, _seed=seed
    )


def _row_verifier(row: dict, source: DataSourceConfig, default: str, where: str) -> str:
    """The row's verifier: a name, or a mapping of names to weights (a composite reward), which
    becomes its canonical spelling `name=weight,...`."""
    value = row.get(source.verifier_field) if source.verifier_field else None
    if isinstance(value, Mapping):  # a parquet struct column gives every row every key: None is absent
        value = {k: w for k, w in value.items() if w is not None}
    if value is None or value == "" or value == {}:
        return default
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) and k and isinstance(w, (int, float)) and not isinstance(w, bool)
                   and math.isfinite(w) for k, w in value.items()):
            raise DataError(f"{where}: field {source.verifier_field!r} must be a verifier name or a mapping of "
                            f"verifier names to finite weights, got {value!r}"[:300])
        return ",".join(f"{k}={float(w):g}" for k, w in value.items())
    return str(value)


def load_demonstrations(path: str | Path) -> list[SFTRow]:
    """SFT rows `{prompt, response}` from a JSONL file (a rejection_sampling stage's output)."""
    source = DataSourceConfig(path=str(path))
    return [SFTRow(r["prompt"], str(r["response"])) for r in load_rows(source, required=("prompt", "response"))]


def load_rows(source: DataSourceConfig, required: tuple[str, ...]) -> list[dict]:
    """Rows of a local file or hub dataset; every required field present and non-empty.

    Errors name the file, the 1-based row and the field.
    """
    path = Path(source.path).expanduser()
    if path.suffix in _LOCAL_FORMATS or path.exists():
        if not path.is_file():
            raise DataError(f"{source.path}: data file not found")
        if path.suffix == ".jsonl":
            rows = _read_jsonl(path)
        else:
            rows = _read_with_datasets(_LOCAL_FORMATS.get(path.suffix, "json"), str(path), source)
    else:
        rows = _read_with_datasets(source.path, None, source)
    if source.limit is not None:
        rows = rows[: source.limit]
    if not rows:
        raise DataError(f"{source.path}: no rows")
    for number, row in enumerate(rows, start=1):
        for field in required:
            value = row.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(
                    f"{source.path}: row {number}: field {field!r} is missing or empty "
                    f"(row has {sorted(row)}; set the *_field options to map columns)"
                )
            if field == source.prompt_field and not isinstance(value, str):
                raise DataError(f"{source.path}: row {number}: field {field!r} must be text, got {type(value).__name__}")
    return rows


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open() as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: row {number}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: row {number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _read_with_datasets(builder: str, data_file: str | None, source: DataSourceConfig) -> list[dict]:
    import datasets

    try:
        if data_file is not None:
            ds = datasets.load_dataset(builder, data_files=data_file, split=source.split)
        else:
            ds = datasets.load_dataset(builder, source.name, split=source.split)
    except Exception as e:  # datasets raises many kinds; all mean "this source cannot be read"
        raise DataError(f"{source.path}: cannot load dataset ({type(e).__name__}: {e})") from None
    return ds.to_list()
