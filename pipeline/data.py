"""Rows for every stage, from the built-in task or from datasets, validated with file and row.

Two row kinds here: `SFTRow` (prompt, response) for demonstrations and `PromptRow` (prompt,
answer, verifier) for RL and evaluation. `TaskData` is what the trainers see: a fixed SFT set, a
fixed held-out set, and `rl_batch(step, n)`, a deterministic function of the step (so a resumed
run draws exactly the prompts it would have drawn).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from errors import DataError
from pipeline.config import DatasetTaskConfig, DataSourceConfig, RunConfig
from pipeline.tasks import ArithmeticTask, WordProblemTask

__all__ = ["SFTRow", "PromptRow", "TaskData", "EpochSampler", "build_task_data", "load_rows"]

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
    _sampler: "EpochSampler | None" = None

    def verifier_names(self) -> set[str]:
        return {r.verifier for r in self.fixed_prompt_rows()} | {self._verifier}

    def fixed_prompt_rows(self) -> list[PromptRow]:
        """The held-out rows and a dataset's RL rows: every prompt row known when the data is loaded
        (a built-in task makes its RL problems as it goes)."""
        return self.eval_rows + (self._rl_rows or [])

    def rl_batch(self, step: int, count: int) -> list[PromptRow]:
        """The `count` prompts of RL step `step` (0-based); reshuffled every epoch of a dataset."""
        if self._task is not None:
            return [PromptRow(p.prompt, p.answer, self._verifier) for p in self._task.rl_problems(step, count)]
        rows = self._rl_rows or []
        if self._sampler is None:
            self._sampler = EpochSampler(len(rows), self._seed)
        return [rows[i] for i in self._sampler.batch(step, count)]


class EpochSampler:
    """Batches of indices into n items, reshuffled every epoch; batch `step` is a pure function of
    (seed, step), so a resumed run continues exactly where the killed one was."""

    def __init__(self, n: int, seed: int):
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
    task = cfg.task
    if task.kind in ("arithmetic", "word_problems"):
        arith = ArithmeticTask(task) if task.kind == "arithmetic" else WordProblemTask(task)
        return TaskData(
            sft_rows=[SFTRow(p.prompt, p.answer) for p in arith.sft_problems],
            eval_rows=[PromptRow(p.prompt, p.answer, task.verifier) for p in arith.eval_problems],
            _task=arith,
            _verifier=task.verifier,
            _seed=cfg.seed,
        )
    return _dataset_task_data(task, cfg.seed)


def _dataset_task_data(task: DatasetTaskConfig, seed: int) -> TaskData:
    def prompt_of(text: str) -> str:
        return task.prompt_template.format(prompt=text)

    def prompt_rows(source: DataSourceConfig) -> list[PromptRow]:
        fields = (source.prompt_field, source.answer_field)
        return [
            PromptRow(prompt_of(r[fields[0]]), r[fields[1]], _row_verifier(r, source, task.verifier),
                      where=f"{source.path}: row {number}")
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


def _row_verifier(row: dict, source: DataSourceConfig, default: str) -> str:
    if source.verifier_field and row.get(source.verifier_field):
        return str(row[source.verifier_field])
    return default


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
