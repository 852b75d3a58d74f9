"""The verifier contract: completions in, one `Verdict` per completion out.

A verdict carries a status besides its reward, so an infrastructure failure (a sandbox that timed
out, a verifier that crashed, a gold answer that does not parse) is masked out of training instead
of being scored as a silent zero reward.

A verifier may also read its references ahead of scoring: `prepare_reference(reference)` returns
the reference in the form `verify` takes fastest, or raises ValueError saying why the verifier
cannot use it. `prepare_references` calls it over a dataset's rows when the data is loaded, so an
unreadable gold is reported with its row instead of being discovered as masked samples in training.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

__all__ = ["OK", "TIMEOUT", "ERROR", "STATUSES", "Verdict", "Context", "Verifier", "PreparesReferences",
           "prepare_references", "run_verifier", "summarize"]

logger = logging.getLogger(__name__)

OK = "ok"  # scored: the reward is the verifier's judgement, right or wrong
TIMEOUT = "timeout"  # the verifier ran out of its budget; no judgement
ERROR = "error"  # the verifier or its input failed; no judgement
STATUSES = (OK, TIMEOUT, ERROR)


@dataclass(frozen=True)
class Verdict:
    """One completion's score. Only `scored` verdicts (status ok) enter advantages."""

    reward: float
    status: str
    reason: str = ""
    latency_s: float = 0.0
    # Short machine-readable labels of what the verifier saw besides the score (e.g. "tamper" when
    # a program tried to game its tests); trainers count each flag per verifier and step.
    flags: tuple[str, ...] = ()
    # A composite reward's components: (verifier name, its verdict), logged per component.
    parts: tuple[tuple[str, "Verdict"], ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Verdict status {self.status!r} is not one of {STATUSES}")
        # A NaN or infinite reward would poison every advantage in its group.
        if not math.isfinite(self.reward):
            raise ValueError(f"Verdict reward must be finite, got {self.reward!r}")
        if self.latency_s < 0:
            raise ValueError(f"Verdict latency_s must be >= 0, got {self.latency_s!r}")
        object.__setattr__(self, "reward", float(self.reward))
        if isinstance(self.flags, str) or not all(isinstance(f, str) and f for f in self.flags):
            raise ValueError(f"Verdict flags must be a tuple of non-empty strings, got {self.flags!r}")
        object.__setattr__(self, "flags", tuple(self.flags))
        if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], Verdict)
                   for p in self.parts):
            raise ValueError(f"Verdict parts must be (name, Verdict) pairs, got {self.parts!r}"[:300])
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def scored(self) -> bool:
        """True when the reward is a judgement (status ok), False for timeout and error."""
        return self.status == OK


@dataclass(frozen=True)
class Context:
    """What a caller knows of one completion besides its reference. A verifier that sets
    `wants_context = True` is called as `verify(completions, references, contexts)`; the others
    keep the two-argument call.

    `prompt` and `system` are the texts the completion answers; `row` holds the data row's other
    columns; `prompt_ids` / `completion_ids` are the tokens as sampled, in the vocabulary whose
    fingerprint is `vocabulary` (`pipeline.forward.vocabulary_fingerprint`), so a model-based
    verifier with the same vocabulary can score the ids without re-tokenising the text.
    """

    prompt: str = ""
    system: str | None = None
    row: Mapping[str, Any] = field(default_factory=dict)
    prompt_ids: tuple[int, ...] | None = None
    completion_ids: tuple[int, ...] | None = None
    vocabulary: str | None = None


@runtime_checkable
class Verifier(Protocol):
    """Scores completions against references; returns one Verdict per completion, in order."""

    name: str

    def verify(self, completions: Sequence[str], references: Sequence[Any]) -> list[Verdict]: ...


@runtime_checkable
class PreparesReferences(Protocol):
    """Optional beside `Verifier`: reads a reference once (parsing a gold answer, say); `verify`
    takes the result in place of the raw reference. Raises ValueError with the reason when the
    reference cannot be used."""

    def prepare_reference(self, reference: Any) -> Any: ...


def prepare_references(verifier: Verifier, references: Sequence[Any], rows: Sequence[Any] | None = None,
                       limit: int = 5) -> list[Any]:
    """Every reference prepared by `verifier` (unchanged when it has no `prepare_reference`).

    Raises ValueError listing up to `limit` unreadable references, each named by its row label
    (`rows[i]`, e.g. "train.jsonl line 12", or its index) with the verifier's reason."""
    if not isinstance(verifier, PreparesReferences):
        return list(references)
    prepared: list[Any] = []
    problems: list[str] = []
    for i, reference in enumerate(references):
        try:
            prepared.append(verifier.prepare_reference(reference))
        except ValueError as e:
            problems.append(f"{rows[i] if rows is not None else f'row {i}'}: {e}")
            prepared.append(None)
    if problems:
        more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
        raise ValueError(f"{len(problems)} reference(s) that verifier {verifier.name!r} cannot read{more}:\n  "
                         + "\n  ".join(problems[:limit]))
    return prepared


def run_verifier(verifier: Verifier, completions: Sequence[str], references: Sequence[Any],
                 contexts: Sequence[Context] | None = None) -> list[Verdict]:
    """Call `verifier.verify` (with the contexts, when it asks for them), turning an exception into
    one ERROR verdict per completion.

    The error verdicts carry the time the failed call took. A verifier that returns the wrong
    number of verdicts, or something that is not a Verdict, has a bug: that raises RuntimeError.
    """
    if len(completions) != len(references):
        raise ValueError(f"{len(completions)} completions but {len(references)} references")
    wants_context = getattr(verifier, "wants_context", False)
    if wants_context:
        contexts = list(contexts) if contexts is not None else [Context() for _ in completions]
        if len(contexts) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(contexts)} contexts")
    start = time.perf_counter()
    try:
        if wants_context:
            verdicts = list(verifier.verify(completions, references, contexts))  # type: ignore[call-arg]
        else:
            verdicts = list(verifier.verify(completions, references))
    except Exception as e:
        elapsed = time.perf_counter() - start
        reason = f"verifier {verifier.name!r} raised {type(e).__name__}: {e}"
        logger.warning("%s; %d completions masked as errors", reason, len(completions), exc_info=True)
        return [Verdict(0.0, ERROR, reason, elapsed) for _ in completions]
    if len(verdicts) != len(completions):
        raise RuntimeError(
            f"verifier {verifier.name!r} returned {len(verdicts)} verdicts for {len(completions)} completions"
        )
    for v in verdicts:
        if not isinstance(v, Verdict):
            raise RuntimeError(f"verifier {verifier.name!r} returned {type(v).__name__}, not a Verdict")
    return verdicts


def summarize(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Counts per status, mean reward over ok verdicts, mean latency over all verdicts.

    Means are None when there is nothing to average (no verdicts, or none ok), so a metrics line
    never reports an error-only batch as a reward of 0.
    """
    summary: dict[str, Any] = {"n": len(verdicts)}
    summary.update({s: sum(v.status == s for v in verdicts) for s in STATUSES})
    ok_rewards = [v.reward for v in verdicts if v.scored]
    summary["reward_mean"] = sum(ok_rewards) / len(ok_rewards) if ok_rewards else None
    summary["latency_mean_s"] = sum(v.latency_s for v in verdicts) / len(verdicts) if verdicts else None
    return summary
