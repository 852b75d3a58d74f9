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

__all__ = ["encode_prompt", "encode_demonstration", "PackedBatch", "pack", "GroupedBatch", "pack_groups", "pad_rows"]


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


@dataclass
class GroupedBatch:
    """Completions that share prompts, each distinct prompt stored once: the layout of a forward
    that runs every prompt once and its completions on its KV cache (`forward.grouped_completion_logprobs`)."""

    prompt_ids: torch.Tensor  # (P, Tp) left-padded, one row per distinct prompt
    prompt_mask: torch.Tensor  # (P, Tp)
    owner: torch.Tensor  # (B,) long: the prompt row of each completion
    completion_ids: torch.Tensor  # (B, Tc) right-padded
    completion_mask: torch.Tensor  # (B, Tc) float, 1 on real completion tokens

    def to(self, device) -> "GroupedBatch":
        return GroupedBatch(*(t.to(device) for t in vars(self).values()))


def pack_groups(prompts: Sequence[list[int]], completions: Sequence[list[int]], pad_id: int) -> GroupedBatch:
    """`pack`'s completions, with equal prompts (a GRPO group's) stored once."""
    rows: dict[tuple[int, ...], int] = {}
    owner = [rows.setdefault(tuple(p), len(rows)) for p in prompts]
    distinct = [list(p) for p in rows]
    tp = max(len(p) for p in distinct)
    tc = max(max(len(c) for c in completions), 1)
    prompt_ids = torch.full((len(distinct), tp), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(distinct), tp), dtype=torch.long)
    for row, p in enumerate(distinct):
        prompt_ids[row, tp - len(p) :] = torch.tensor(p, dtype=torch.long)
        prompt_mask[row, tp - len(p) :] = 1
    completion_ids = torch.full((len(completions), tc), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((len(completions), tc))
    for row, c in enumerate(completions):
        completion_ids[row, : len(c)] = torch.tensor(c, dtype=torch.long)
        completion_mask[row, : len(c)] = 1
    return GroupedBatch(prompt_ids, prompt_mask, torch.tensor(owner, dtype=torch.long), completion_ids, completion_mask)


def pad_rows(rows: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    """Ragged per-token values (e.g. a sampler's log-probs) as a `(B, width)` float32 tensor,
    zero past each row's end; rows line up with `pack`'s completion columns."""
    out = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
    return out
