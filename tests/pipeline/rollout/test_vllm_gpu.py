"""The vLLM paths that exist only on a GPU: sleep mode between generations (the weights offloaded
or freed, then reloaded) and NCCL weight transfer to a server. Run by bench/gpu_check.sh on a
machine with CUDA and vLLM; skipped elsewhere."""

import pytest
import torch

from pipeline.config import ModelConfig, TinyModelConfig, VLLMRolloutConfig, VLLMServerRolloutConfig
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import SamplingParams, make_engine, policy_tensors
from pipeline.rollout.weight_check import WeightArrivalCheck
from pipeline.tokens import encode_prompt

pytestmark = [pytest.mark.gpu, pytest.mark.vllm]
GPU_OPTIONS = {"gpu_memory_utilization": 0.2, "enforce_eager": True}


def _tiny(seed: int):
    cfg = ModelConfig(tiny=TinyModelConfig(num_heads=2))
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    return load_causal_lm(source, cfg, tokenizer, seed=seed).cuda(), tokenizer


def _round_trip(engine, tokenizer):
    """A -> B -> A through the engine: A's, B's, then A's log-probs again, each proved by the probe."""
    model_a, _ = _tiny(0)
    model_b, _ = _tiny(1)
    prompt = encode_prompt(tokenizer, "12+7=")
    check = WeightArrivalCheck(prompt, tokenizer.pad_token_id, tolerance=1e-3)
    greedy = SamplingParams(max_new_tokens=6, greedy=True)
    seen = []
    for model in (model_a, model_b, model_a):
        engine.update_weights(policy_tensors(model))
        seen.append(engine.generate([prompt], 1, greedy).logprobs)
        assert check(engine, model) < 1e-3
    assert seen[0] == seen[2] and seen[0] != seen[1]


@pytest.mark.parametrize("level", [1, 2])
def test_the_colocated_engine_sleeps_between_generations_and_wakes_with_the_new_weights(vllm_in_process, level):
    model, tokenizer = _tiny(0)
    engine = make_engine(VLLMRolloutConfig(**GPU_OPTIONS, sleep_level=level), tokenizer, model=model)
    try:
        _round_trip(engine, tokenizer)
    finally:
        engine.close()


def test_nccl_weight_transfer_to_a_server(vllm_in_process, vllm_server_python):
    # The trainer side of NCCL needs vLLM in this interpreter too.
    model, tokenizer = _tiny(0)
    cfg = VLLMServerRolloutConfig(**GPU_OPTIONS, python=vllm_server_python, transfer="nccl")
    engine = make_engine(cfg, tokenizer, model=model)
    try:
        _round_trip(engine, tokenizer)
    finally:
        engine.close()
