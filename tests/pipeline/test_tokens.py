"""Text to token ids (through the chat template) and back to padded tensors."""

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.models import load_tokenizer, resolve_model
from pipeline.tokens import encode_demonstration, encode_prompt, pack, pad_rows


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model("tiny", ModelConfig()))


def test_a_prompt_goes_through_the_chat_template_with_the_generation_prompt(tokenizer):
    ids = encode_prompt(tokenizer, "12+7=", system="be brief")
    assert tokenizer.decode(ids) == "<|system|>be brief<|user|>12+7=<|assistant|>"


def test_a_demonstration_is_the_assistants_turn_ending_with_its_end_token(tokenizer):
    prompt, completion = encode_demonstration(tokenizer, "12+7=", "19", max_length=64)
    assert prompt == encode_prompt(tokenizer, "12+7=")
    assert tokenizer.decode(completion) == "19<|end|>" and completion[-1] == tokenizer.eos_token_id


def test_a_long_demonstration_is_cut_to_max_length(tokenizer):
    prompt, completion = encode_demonstration(tokenizer, "1+" * 40 + "1=", "41", max_length=16)
    assert len(prompt) == 8 and len(prompt) + len(completion) <= 16  # the prompt keeps its last half
    assert prompt[-1] == encode_prompt(tokenizer, "1=")[-1]  # ... ending with the generation prompt


def test_pack_left_pads_prompts_right_pads_completions_and_numbers_positions():
    batch = pack([[5, 6, 7], [8]], [[10], [11, 12]], pad_id=0)
    # row 0: [5 6 7 | 10 pad]; row 1: [pad pad 8 | 11 12]
    assert batch.input_ids.tolist() == [[5, 6, 7, 10, 0], [0, 0, 8, 11, 12]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 3], [0, 0, 0, 1, 2]]
    assert batch.completion_ids.tolist() == [[10, 0], [11, 12]]
    assert batch.completion_mask.tolist() == [[1.0, 0.0], [1.0, 1.0]]


def test_pack_keeps_one_column_for_empty_completions():
    batch = pack([[5]], [[]], pad_id=0)
    assert batch.completion_ids.shape == (1, 1) and batch.completion_mask.tolist() == [[0.0]]


def test_pad_rows_lines_up_with_the_completion_columns():
    out = pad_rows([[-0.5], [-1.0, -2.0]], width=3)
    assert out.dtype == torch.float32
    assert out.tolist() == [[-0.5, 0.0, 0.0], [-1.0, -2.0, 0.0]]
