"""Composite rewards: several verifiers, each with a weight, scored as one, e.g. correctness 1.0 +
format 0.2 + an overlong penalty:

    reward = sum_i weight_i * reward_i

Every component scores every completion. When any component's verdict is masked (a timeout, an
error), the composite verdict is masked too, with that component's status and reason: the sample
leaves training instead of being scored on the components that happened to work. The component
verdicts ride along in `Verdict.parts`, so each is logged per step.

A composite is named in the config (`verifiers.composites: {shaped: {math: 1.0, format: 0.2}}`,
then `task.verifier: shaped`) or spelt inline by a data row, `math=1,format=0.2`. The scorer builds
the components through the registry, each with its own options.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from errors import ConfigError
from verifiers.base import Context, Verdict, Verifier, run_verifier

__all__ = ["CompositeVerifier", "composite_weights"]


def composite_weights(name: str, named: Mapping[str, Mapping[str, float]]) -> dict[str, float] | None:
    """The components of a composite (verifier name -> weight): a composite of the config by name,
    or the inline spelling `math=1,format=0.2`; None for a plain verifier name."""
    if name in named:
        return dict(named[name])
    if "=" not in name and "," not in name:
        return None
    weights: dict[str, float] = {}
    for term in name.split(","):
        part, sep, weight = (x.strip() for x in term.partition("="))
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not part or not sep or not math.isfinite(value) or part in weights:
            raise ConfigError(f"verifier {name!r}: a composite is spelt name=weight,name=weight,... with finite "
                              f"weights and distinct names (bad term {term!r})")
        weights[part] = value
    return weights


class CompositeVerifier:
    """Scores with every component; reward = sum of weight * component reward; any masked
    component masks the sample."""

    wants_context = True

    def __init__(self, name: str, parts: Sequence[tuple[str, float, Verifier]]):
        if not parts:
            raise ValueError(f"composite {name!r} has no components")
        self.name = name
        self.parts = list(parts)

    @property
    def weights(self) -> dict[str, float]:
        return {part: weight for part, weight, _ in self.parts}

    def verify(self, completions: Sequence[str], references: Sequence[Any],
               contexts: Sequence[Context] | None = None) -> list[Verdict]:
        scored = [(part, weight, run_verifier(verifier, completions, references, contexts))
                  for part, weight, verifier in self.parts]
        return [self._combine([(part, weight, verdicts[i]) for part, weight, verdicts in scored])
                for i in range(len(completions))]

    @staticmethod
    def _combine(parts: list[tuple[str, float, Verdict]]) -> Verdict:
        named = tuple((part, v) for part, _, v in parts)
        latency = sum(v.latency_s for _, _, v in parts)
        flags = tuple(dict.fromkeys(f for _, _, v in parts for f in v.flags))
        for part, _, v in parts:
            if not v.scored:  # no judgement from one component: none for the sample
                return Verdict(0.0, v.status, f"{part}: {v.reason or v.status}", latency, flags, named)
        reason = "; ".join(f"{part}: {v.reason}" for part, _, v in parts if v.reason)
        return Verdict(sum(w * v.reward for _, w, v in parts), "ok", reason, latency, flags, named)
