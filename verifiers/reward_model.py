"""A trained reward model as a verifier: it scores (prompt, completion) pairs with the scalar
head of the reward_model stage's model, so GRPO can use it like any rule-based verifier and PPO
uses it as its score.

Options (`verifiers.options.reward_model`): `path` (the trained model's directory; default
`<output_dir>/reward_model/final`), `output_dir`, `device` ("auto": CUDA when available),
`batch_size`, `max_length`, `system`, `dtype`.

Its references are the prompts: each one the prompt text, or a mapping with a "prompt" key (and
optionally "system"). `wants_prompt = True` says so to a caller that holds rows: it should pass
`{"prompt": row.prompt, "answer": row.answer}` rather than the gold answer alone, which this
verifier cannot tell from a prompt. The reward is the raw score (higher is better; its scale is whatever the
Bradley-Terry training gave it). A failure to score a batch becomes error verdicts through
`run_verifier`, never a zero reward.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from verifiers.base import OK, Verdict

__all__ = ["RewardModelVerifier"]


class RewardModelVerifier:
    name = "reward_model"
    wants_prompt = True  # references are prompts (or mappings holding one), not gold answers

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
        import torch

        from pipeline.models import load_reward_model

        if path is None and output_dir is None:
            raise ValueError(
                "the reward_model verifier needs the trained model: set verifiers.options.reward_model.path "
                "(or output_dir, to use <output_dir>/reward_model/final)"
            )
        if batch_size < 1 or max_length < 8:
            raise ValueError(f"batch_size must be >= 1 and max_length >= 8, got {batch_size} and {max_length}")
        self.path = Path(path) if path is not None else Path(output_dir) / "reward_model" / "final"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        self.system = system
        model, self.tokenizer = load_reward_model(self.path, dtype)
        self.model = model.to(self.device).eval().requires_grad_(False)

    def verify(self, completions: Sequence[str], references: Sequence[Any]) -> list[Verdict]:
        start = time.perf_counter()
        prompts, systems = zip(*(self._prompt_of(r) for r in references)) if references else ((), ())
        scores = self.score_texts(list(prompts), list(completions), list(systems))
        latency = (time.perf_counter() - start) / max(len(completions), 1)
        return [Verdict(float(s), OK, latency_s=latency) for s in scores.tolist()]

    def score_texts(self, prompts: list[str], completions: list[str], systems: list[str | None] | None = None):
        """Scores `(N,)` of completion texts after their prompts, tokenised as the stage trained on
        them: the chat template's prompt, then the assistant's turn ending with its end token."""
        from pipeline.tokens import encode_demonstration

        systems = systems or [self.system] * len(prompts)
        encoded = [encode_demonstration(self.tokenizer, p, c, self.max_length, s)
                   for p, c, s in zip(prompts, completions, systems)]
        return self.score_ids([p for p, _ in encoded], [c for _, c in encoded])

    def score_ids(self, prompt_ids: Sequence[list[int]], completion_ids: Sequence[list[int]]):
        """Scores `(N,)` (float32, on the CPU) of token sequences in this model's vocabulary."""
        import torch

        from pipeline.tokens import pack
        from pipeline.trainers.reward_model import sequence_scores

        out = []
        with torch.inference_mode():
            for start in range(0, len(prompt_ids), self.batch_size):
                batch = pack(prompt_ids[start : start + self.batch_size], completion_ids[start : start + self.batch_size],
                             self.tokenizer.pad_token_id)
                out.append(sequence_scores(self.model, batch.to(self.device)).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def shares_vocabulary(self, tokenizer) -> bool:
        """True when `tokenizer` maps text to the same ids, so a policy's samples can be scored as ids."""
        return tokenizer.get_vocab() == self.tokenizer.get_vocab()

    def _prompt_of(self, reference: Any) -> tuple[str, str | None]:
        if isinstance(reference, str):
            return reference, self.system
        if isinstance(reference, Mapping) and isinstance(reference.get("prompt"), str):
            return reference["prompt"], reference.get("system", self.system)
        raise ValueError(
            f"the reward_model verifier's reference must be the prompt text or a mapping with 'prompt', "
            f"got {type(reference).__name__}"
        )
