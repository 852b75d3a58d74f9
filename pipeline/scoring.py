"""Scores completions with the verifiers the rows name; failures become masked verdicts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from verifiers import Verdict, registry, run_verifier

from pipeline.config import RunConfig

__all__ = ["Scorer"]


class Scorer:
    """Builds each named verifier once (so an unknown name fails before any training), then
    scores mixed batches, each completion by its own row's verifier.

    A verifier with `wants_prompt = True` (the trained reward model) is given the prompt with each
    reference, `{"prompt", "answer", "system"}`, instead of the gold answer alone. The
    `reward_model` verifier defaults to this run's reward model (`RunConfig.reward_model_path`).
    """

    def __init__(self, cfg: RunConfig, names: set[str]):
        self.verifiers = {name: registry.get(name, **_options(cfg, name)) for name in sorted(names)}

    def score(self, completions: Sequence[str], references: Sequence[Any], names: Sequence[str],
              prompts: Sequence[str] | None = None, system: str | None = None) -> list[Verdict]:
        by_name: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            by_name[name].append(i)
        verdicts: list[Verdict | None] = [None] * len(completions)
        for name, indices in by_name.items():
            verifier = self.verifiers[name]
            if getattr(verifier, "wants_prompt", False):
                if prompts is None:
                    raise ValueError(f"verifier {name!r} scores (prompt, completion) pairs; pass the prompts")
                refs = [{"prompt": prompts[i], "answer": references[i], "system": system} for i in indices]
            else:
                refs = [references[i] for i in indices]
            batch = run_verifier(verifier, [completions[i] for i in indices], refs)
            for i, verdict in zip(indices, batch):
                verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]


def _options(cfg: RunConfig, name: str) -> dict[str, Any]:
    options = dict(cfg.verifiers.options.get(name, {}))
    if name == "reward_model" and "path" not in options and "output_dir" not in options:
        options["path"] = str(cfg.reward_model_path)
    return options
