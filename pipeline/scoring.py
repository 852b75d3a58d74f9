"""Scores completions with the verifiers the rows name; failures become masked verdicts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from verifiers import Context, Verdict, registry, run_verifier

from pipeline.config import RunConfig

__all__ = ["Scorer"]


class Scorer:
    """Builds each named verifier once (so an unknown name fails before any training), then
    scores mixed batches, each completion by its own row's verifier.

    Each completion may come with its `Context` (prompt, system message, token ids); a verifier
    that asks for contexts (`wants_context = True`, e.g. the trained reward model) gets them. The
    `reward_model` verifier defaults to this run's reward model (`RunConfig.reward_model_path`).
    """

    def __init__(self, cfg: RunConfig, names: set[str]):
        self.verifiers = {name: registry.get(name, **_options(cfg, name)) for name in sorted(names)}

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
            batch = run_verifier(verifier, [completions[i] for i in indices], [references[i] for i in indices],
                                 None if contexts is None else [contexts[i] for i in indices])
            for i, verdict in zip(indices, batch):
                verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]


def _options(cfg: RunConfig, name: str) -> dict[str, Any]:
    options = dict(cfg.verifiers.options.get(name, {}))
    if name == "reward_model" and "path" not in options and "output_dir" not in options:
        options["path"] = str(cfg.reward_model_path)
    return options
