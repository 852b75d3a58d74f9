"""From text to token ids and back to padded tensors.

Prompts go through the tokenizer's chat template (with the generation prompt); a completion is
everything the assistant says after it, ending with the EOS token. Training batches are laid out
as [left-padded prompt | right-padded completion], with explicit position ids so a training
forward sees exactly the positions that `generate` saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["encode_prompt", "encode_demonstration", "PackedBatch", "pack", "pad_rows"]


def encode_prompt(tokenizer, prompt: str, system: str | None = None) -> list[int]:
    if tokenizer.chat_template:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    text = f"{system}\n\n{prompt}" if system else prompt
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def encode_demonstration(
    tokenizer, prompt: str, response: str, max_length: int, system: str | None = None
) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids): the completion is the assistant's turn as the chat template
    writes it (so it ends the way the model must learn to stop), truncated to fit max_length."""
    prompt_ids = encode_prompt(tokenizer, prompt, system)
    completion: list[int] | None = None
    if tokenizer.chat_template:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": response},
        ]
        full = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        if full[: len(prompt_ids)] == prompt_ids:
            completion = full[len(prompt_ids) :]
    if completion is None:  # no template, or one whose prompt is not a prefix of the dialogue
        completion = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(prompt_ids) >= max_length:
        prompt_ids = prompt_ids[-(max_length // 2) :]
    return prompt_ids, completion[: max_length - len(prompt_ids)]


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # (B, Tp + Tc)
    attention_mask: torch.Tensor  # (B, Tp + Tc)
    position_ids: torch.Tensor  # (B, Tp + Tc)
    completion_ids: torch.Tensor  # (B, Tc)
    completion_mask: torch.Tensor  # (B, Tc) float, 1 on real completion tokens

    def to(self, device) -> "PackedBatch":
        return PackedBatch(*(t.to(device) for t in vars(self).values()))


def pack(prompts: Sequence[list[int]], completions: Sequence[list[int]], pad_id: int) -> PackedBatch:
    tp = max(len(p) for p in prompts)
    tc = max(max(len(c) for c in completions), 1)
    b = len(prompts)
    input_ids = torch.full((b, tp + tc), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((b, tp + tc), dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        input_ids[row, tp - len(p) : tp] = torch.tensor(p, dtype=torch.long)
        input_ids[row, tp : tp + len(c)] = torch.tensor(c, dtype=torch.long)
        attention_mask[row, tp - len(p) : tp + len(c)] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return PackedBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        completion_ids=input_ids[:, tp:],
        completion_mask=attention_mask[:, tp:].float(),
    )


def pad_rows(rows: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    """Ragged per-token values (e.g. a sampler's log-probs) as a `(B, width)` float32 tensor,
    zero past each row's end; rows line up with `pack`'s completion columns."""
    out = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
    return out
