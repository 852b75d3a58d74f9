"""Scores completions with the verifiers the rows name; failures become masked verdicts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from errors import ConfigError
from verifiers import Context, UnknownVerifierError, Verdict, registry, run_verifier
from verifiers.composite import CompositeVerifier, composite_weights

from pipeline.config import RunConfig

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
    """

    def __init__(self, cfg: RunConfig, names: set[str]):
        self.verifiers = {name: _build(cfg, name) for name in sorted(names)}

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
            batch = run_verifier(verifier, [completions[i] for i in indices], [references[i] for i in indices],
                                 None if contexts is None else [contexts[i] for i in indices])
            for i, verdict in zip(indices, batch):
                verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]


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
