"""The `length` verifier: DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), a reward in
[-1, 0] that grows more negative as a completion nears and reaches the generation limit:

    R(y) = 0                              if |y| <= L_max - L_cache
         = ((L_max - L_cache) - |y|) / L_cache   if L_max - L_cache < |y| <= L_max
         = -1                             if |y| > L_max

Options (`verifiers.options.length`): `max_length` (L_max; default: the run's
`rollout.max_new_tokens`), `buffer` (L_cache; default max_length // 5, at least 1), `unit`
("tokens": the sampled token ids, which it takes from each completion's `Context`; "chars": the
text). Without the token ids a verdict is an error (masked), never a guessed length. Meant as a
component of a composite reward: `{math: 1.0, length: 1.0}`.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Mapping, Sequence

from verifiers.base import ERROR, OK, Context, Verdict

__all__ = ["LengthVerifier", "overlong_penalty"]


def overlong_penalty(length: int, max_length: int, buffer: int) -> float:
    """DAPO's soft overlong punishment of one response of `length` units."""
    start = max_length - buffer
    if length <= start:
        return 0.0
    if length <= max_length:
        return (start - length) / buffer
    return -1.0


class LengthVerifier:
    name = "length"
    wants_context = True

    @classmethod
    def run_defaults(cls, run: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """L_max defaults to the run's generation limit, as in DAPO."""
        return {"max_length": run["max_new_tokens"]} if "max_length" not in options else {}

    def __init__(self, max_length: int, buffer: int | None = None, unit: Literal["tokens", "chars"] = "tokens"):
        buffer = max(1, max_length // 5) if buffer is None else buffer
        if max_length < 1 or not 1 <= buffer <= max_length:
            raise ValueError(f"need max_length >= 1 and 1 <= buffer <= max_length, got {max_length} and {buffer}")
        if unit not in ("tokens", "chars"):
            raise ValueError(f"unit must be 'tokens' or 'chars', got {unit!r}")
        self.max_length, self.buffer, self.unit = max_length, buffer, unit

    def verify(self, completions: Sequence[str], references: Sequence[Any],
               contexts: Sequence[Context] | None = None) -> list[Verdict]:
        out = []
        for text, context in zip(completions, contexts or [Context()] * len(completions)):
            start = time.perf_counter()
            if self.unit == "chars":
                length = len(text)
            elif context.completion_ids is None:
                out.append(Verdict(0.0, ERROR, "no sampled token ids to measure (set unit: chars to count characters)"))
                continue
            else:
                length = len(context.completion_ids)
            reward = overlong_penalty(length, self.max_length, self.buffer)
            reason = f"{length} {self.unit} (limit {self.max_length}, buffer {self.buffer})" if reward else ""
            out.append(Verdict(reward, OK, reason, time.perf_counter() - start))
        return out
