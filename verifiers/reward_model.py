"""A trained reward model as a verifier: it scores (prompt, completion) pairs with the scalar
head of the reward_model stage's model, so GRPO can use it like any rule-based verifier and PPO
takes its score from it, through the same contract (a failure is a masked verdict, never a 0).

Options (`verifiers.options.reward_model`): `path` (the trained model's directory; in a run, the
run's reward model by default: `reward_model.path`, else `<output_dir>/reward_model/final`), `output_dir`, `device` ("auto": CUDA when available),
`batch_size`, `max_length`, `system`, `dtype`.

It asks for each completion's `Context` (`wants_context = True`): it scores the completion after
the context's prompt, and when the context's token ids are in its own vocabulary, it scores those
ids exactly as sampled instead of re-tokenising the text. Called without contexts, its references
are the prompts: each one the prompt text, or a mapping with a "prompt" key (and optionally
"system"). The reward is the raw score (higher is better; its scale is whatever the
Bradley-Terry training gave it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from verifiers.base import OK, Context, Verdict

__all__ = ["RewardModelVerifier"]


class RewardModelVerifier:
    name = "reward_model"
    wants_context = True

    @classmethod
    def run_defaults(cls, run: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """In a run, the run's reward model, unless the options say where it is."""
        return {} if "path" in options or "output_dir" in options else {"path": run["reward_model_path"]}

    def __init__(
        self,
        path: str | None = None,
        output_dir: str | None = None,
        device: str = "auto",
        batch_size: int = 64,
        max_length: int = 512,
        system: str | None = None,
        dtype: str = "float32",
    ):
        from pipeline.forward import RewardModel

        if path is None and output_dir is None:
            raise ValueError(
                "the reward_model verifier needs the trained model: set verifiers.options.reward_model.path "
                "(or output_dir, to use <output_dir>/reward_model/final)"
            )
        if batch_size < 1 or max_length < 8:
            raise ValueError(f"batch_size must be >= 1 and max_length >= 8, got {batch_size} and {max_length}")
        where = Path(path) if path is not None else Path(output_dir) / "reward_model" / "final"
        self.system = system
        self.reward_model = RewardModel(where, dtype=dtype, device=device, batch_size=batch_size, max_length=max_length)

    @property
    def model(self):
        return self.reward_model.model

    @property
    def tokenizer(self):
        return self.reward_model.tokenizer

    def verify(self, completions: Sequence[str], references: Sequence[Any],
               contexts: Sequence[Context] | None = None) -> list[Verdict]:
        start = time.perf_counter()
        rm = self.reward_model
        if contexts and all(c.prompt_ids is not None and c.completion_ids is not None
                            and c.vocabulary == rm.vocabulary for c in contexts):
            scores = rm.score_ids([list(c.prompt_ids) for c in contexts], [list(c.completion_ids) for c in contexts])
        else:
            prompts = [self._prompt_of(r, c) for r, c in zip(references, contexts or [None] * len(references))]
            scores = rm.score_texts([p for p, _ in prompts], list(completions), [s for _, s in prompts])
        latency = (time.perf_counter() - start) / max(len(completions), 1)
        return [Verdict(float(s), OK, latency_s=latency) for s in scores.tolist()]

    def _prompt_of(self, reference: Any, context: Context | None) -> tuple[str, str | None]:
        if context is not None and context.prompt:
            return context.prompt, context.system if context.system is not None else self.system
        if isinstance(reference, str):
            return reference, self.system
        if isinstance(reference, Mapping) and isinstance(reference.get("prompt"), str):
            return reference["prompt"], reference.get("system", self.system)
        raise ValueError(
            f"the reward_model verifier scores a completion after its prompt: call it with contexts, or "
            f"give the prompt text (or a mapping with 'prompt') as the reference, got {type(reference).__name__}"
        )
