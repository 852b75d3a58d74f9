"""Scores completions with the verifiers the rows name; failures become masked verdicts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from verifiers import Verdict, registry, run_verifier

from pipeline.config import VerifiersConfig

__all__ = ["Scorer"]


class Scorer:
    """Builds each named verifier once (so an unknown name fails before any training), then
    scores mixed batches, each completion by its own row's verifier."""

    def __init__(self, cfg: VerifiersConfig, names: set[str]):
        self.verifiers = {name: registry.get(name, **cfg.options.get(name, {})) for name in sorted(names)}

    def score(self, completions: Sequence[str], references: Sequence[Any], names: Sequence[str]) -> list[Verdict]:
        by_name: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            by_name[name].append(i)
        verdicts: list[Verdict | None] = [None] * len(completions)
        for name, indices in by_name.items():
            batch = run_verifier(
                self.verifiers[name], [completions[i] for i in indices], [references[i] for i in indices]
            )
            for i, verdict in zip(indices, batch):
                verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]
