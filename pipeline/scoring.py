"""Scores completions with the verifiers the rows name; failures become masked verdicts."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from errors import DataError
from verifiers import Context, Verdict, prepare_references, registry, run_verifier

from pipeline.config import RunConfig

if TYPE_CHECKING:
    from pipeline.data import PromptRow, TaskData

__all__ = ["Scorer"]


class Scorer:
    """Builds each named verifier once (so an unknown name fails before any training), then
    scores mixed batches, each completion by its own row's verifier.

    Each completion may come with its `Context` (prompt, system message, token ids); a verifier
    that asks for contexts (`wants_context = True`, e.g. the trained reward model) gets them. The
    `reward_model` verifier defaults to this run's reward model (`RunConfig.reward_model_path`).

    References are read once: `prepare(rows)` has each row's verifier prepare its reference (a
    verifier with `prepare_reference`, e.g. `math` parsing a gold) and keeps the results, so an
    unreadable gold fails as a `DataError` naming its row before any training, and `score` hands
    the verifier the prepared reference instead of re-reading the raw one for every sample. A
    verifier without `prepare_reference` gets its raw references.
    """

    def __init__(self, cfg: RunConfig, names: set[str]):
        self.verifiers = {name: registry.get(name, **_options(cfg, name)) for name in sorted(names)}
        self._prepared: dict[str, dict[Any, Any]] = {name: {} for name in self.verifiers}

    @classmethod
    def for_task(cls, cfg: RunConfig, data: "TaskData", extra: Iterable[str] = ()) -> "Scorer":
        """The scorer of a task's rows (plus the verifiers named in `extra`), with every reference
        known at load time prepared: raises DataError naming the rows whose reference is unreadable."""
        scorer = cls(cfg, data.verifier_names() | set(extra))
        scorer.prepare(data.fixed_prompt_rows())
        return scorer

    def prepare(self, rows: Sequence["PromptRow"]) -> None:
        """Prepare the rows' references, each with its row's verifier; see the class docstring."""
        by_name: dict[str, list[PromptRow]] = defaultdict(list)
        for row in rows:
            if _hashable(row.answer):
                by_name[row.verifier].append(row)
        for name, named in by_name.items():
            verifier = self.verifiers[name]
            if not hasattr(verifier, "prepare_reference"):
                continue
            fresh = {row.answer: row.where or f"row {n}" for n, row in enumerate(named, start=1)
                     if row.answer not in self._prepared[name]}
            try:
                prepared = prepare_references(verifier, list(fresh), list(fresh.values()))
            except ValueError as e:
                raise DataError(f"{e}\nFix or remove these rows, or give them a verifier that reads their "
                                "answers (the task's verifier_field).") from None
            self._prepared[name].update(zip(fresh, prepared))

    def score(self, completions: Sequence[str], references: Sequence[Any], names: Sequence[str],
              contexts: Sequence[Context] | None = None) -> list[Verdict]:
        by_name: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            by_name[name].append(i)
        verdicts: list[Verdict | None] = [None] * len(completions)
        for name, indices in by_name.items():
            verifier = self.verifiers[name]
            if getattr(verifier, "wants_context", False) and contexts is None:
                raise ValueError(f"verifier {name!r} scores completions in their context; pass the contexts")
            prepared = self._prepared[name]
            refs = [prepared.get(references[i], references[i]) if _hashable(references[i]) else references[i]
                    for i in indices]
            batch = run_verifier(verifier, [completions[i] for i in indices], refs,
                                 None if contexts is None else [contexts[i] for i in indices])
            for i, verdict in zip(indices, batch):
                verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _options(cfg: RunConfig, name: str) -> dict[str, Any]:
    options = dict(cfg.verifiers.options.get(name, {}))
    if name == "reward_model" and "path" not in options and "output_dir" not in options:
        options["path"] = str(cfg.reward_model_path)
    return options
