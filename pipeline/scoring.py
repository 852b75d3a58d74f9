"""Scores completions with the verifiers the rows name; failures become masked verdicts."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from errors import ConfigError, DataError
from verifiers import Context, UnknownVerifierError, Verdict, prepare_references, registry, run_verifier
from verifiers.composite import CompositeVerifier, composite_weights

from pipeline.config import RunConfig

if TYPE_CHECKING:
    from pipeline.data import PromptRow, TaskData

__all__ = ["Scorer", "run_facts"]


class Scorer:
    """Builds each named verifier once (so an unknown name fails before any training), then
    scores mixed batches, each completion by its own row's verifier.

    Each completion may come with its `Context` (prompt, system message, the row's other columns,
    token ids); a verifier that asks for contexts (`wants_context = True`) gets them. A name may be
    a composite (`verifiers.composites`, or spelt `math=1,format=0.2`): its components are built
    here, each with its own options. A verifier class may declare `run_defaults(run, options)`,
    options it takes from the run when the config does not set them (`run_facts`: the reward
    model's path for `reward_model`, the generation limit for `length`).

    References are read once: `prepare(rows)` has each row's verifier prepare its reference (a
    verifier with `prepare_reference`, e.g. `math` parsing a gold) and keeps the results, so an
    unreadable gold fails as a `DataError` naming its row before any training, and `score` hands
    the verifier the prepared reference instead of re-reading the raw one for every sample. A
    verifier without `prepare_reference` gets its raw references.
    """

    def __init__(self, cfg: RunConfig, names: set[str]):
        self.verifiers = {name: _build(cfg, name) for name in sorted(names)}
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

    def components(self) -> dict[str, list[str]]:
        """Composite name -> its components' names, for the verifiers built here."""
        return {name: list(v.weights) for name, v in self.verifiers.items() if isinstance(v, CompositeVerifier)}

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


def run_facts(cfg: RunConfig) -> dict[str, Any]:
    """What a verifier's `run_defaults` may read of the run (plain values: verifiers import no
    pipeline config)."""
    return {"output_dir": str(cfg.output_path), "reward_model_path": str(cfg.reward_model_path),
            "max_new_tokens": cfg.rollout.max_new_tokens, "seed": cfg.seed, "threads": cfg.threads,
            "dtype": cfg.model.dtype, "model_cache_dir": cfg.model.cache_dir}


def _build(cfg: RunConfig, name: str):
    weights = composite_weights(name, cfg.verifiers.composites)
    if weights is None:
        return _plain(cfg, name)
    where = f"verifiers.composites.{name}" if name in cfg.verifiers.composites else f"composite verifier {name!r}"
    parts = []
    for part, weight in weights.items():
        if composite_weights(part, cfg.verifiers.composites) is not None:
            raise ConfigError(f"{where}: component {part!r} is itself a composite; list its components instead")
        try:
            parts.append((part, weight, _plain(cfg, part)))
        except UnknownVerifierError as e:
            raise UnknownVerifierError(f"{where}: {e}") from None
    return CompositeVerifier(name, parts)


def _plain(cfg: RunConfig, name: str):
    options = dict(cfg.verifiers.options.get(name, {}))
    run_defaults = getattr(registry.factory(name), "run_defaults", None)
    if run_defaults is not None:
        options = {**run_defaults(run_facts(cfg), options), **options}
    return registry.get(name, **options)
