"""The vLLM engines' pure parts, with no vLLM: engine and server arguments, per-prompt seeds,
assembling a group, the configs. (The engines themselves: test_contract.py.)"""

import pytest

from errors import ConfigError
from pipeline.config import VLLMRolloutConfig, VLLMServerRolloutConfig, load_config
from pipeline.rollout import SamplingParams
from pipeline.rollout.vllm import _SEED_STRIDE, assemble_rollouts, engine_options, prompt_seeds, sampling_options
from pipeline.rollout.vllm_server import default_python, server_command


class _Tokenizer:
    def batch_decode(self, ids, skip_special_tokens=True):
        return [" ".join(map(str, x)) for x in ids]


def test_the_config_chooses_an_engine_by_backend_with_its_own_fields():
    cfg = load_config(None, ["rollout.backend=vllm_server", "rollout.correction.mode=mask", "rollout.url=http://h:1"])
    assert isinstance(cfg.rollout, VLLMServerRolloutConfig) and cfg.rollout.correction.cap == 2.0
    assert isinstance(load_config(None, ["rollout.backend=vllm"]).rollout, VLLMRolloutConfig)
    with pytest.raises(ConfigError, match=r"field rollout\.url"):  # the server's field on the colocated engine
        load_config(None, ["rollout.backend=vllm", "rollout.url=http://h:1"])
    with pytest.raises(ConfigError, match=r"field rollout\.correction\.cap"):
        load_config(None, ["rollout.backend=vllm", "rollout.correction.cap=1"])


def test_engine_options_on_a_cpu_fix_the_kv_cache_and_run_eagerly():
    cpu = engine_options(VLLMRolloutConfig(), "/m", "float32", 3, on_cpu=True)
    assert cpu["kv_cache_memory_bytes"] == 2**30 and "gpu_memory_utilization" not in cpu
    assert cpu["enforce_eager"] is True and cpu["skip_tokenizer_init"] is True and cpu["seed"] == 3
    assert cpu["logprobs_mode"] == "processed_logprobs" and cpu["enable_chunked_prefill"] is False
    assert cpu["worker_extension_cls"] == "pipeline.rollout.vllm_worker.WeightSyncExtension"
    gpu = engine_options(VLLMRolloutConfig(gpu_memory_utilization=0.5), "/m", "bfloat16", 0, on_cpu=False)
    assert gpu["gpu_memory_utilization"] == 0.5 and gpu["enforce_eager"] is False and "kv_cache_memory_bytes" not in gpu
    assert "enable_chunked_prefill" not in gpu


def test_server_command_carries_every_engine_option_as_a_flag():
    cfg = VLLMServerRolloutConfig(enable_prefix_caching=False, transfer="nccl", tensor_parallel_size=2,
                                  server_args=["--max-num-seqs", "64"])
    cmd = server_command(cfg, "/py", "/model", "float32", 7, 8123, on_cpu=True)
    assert cmd[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(cmd)
    for part in ("--port 8123", "--model /model", "--seed 7", "--skip-tokenizer-init", "--no-enable-prefix-caching",
                 "--enforce-eager", "--tensor-parallel-size 2", '--weight-transfer-config {"backend": "nccl"}',
                 "--worker-extension-cls pipeline.rollout.vllm_worker.WeightSyncExtension"):
        assert part in joined
    assert cmd[-2:] == ["--max-num-seqs", "64"]


def test_a_missing_vllm_interpreter_is_a_config_error_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("RLVR_VLLM_PYTHON", raising=False)
    with pytest.raises(ConfigError, match="make vllm"):
        default_python(VLLMServerRolloutConfig(python=str(tmp_path / "nope")))


def test_prompt_seeds_never_overlap_between_prompts():
    # vLLM seeds sample k of a request with seed + k: prompts' seeds must be more than n apart.
    seeds = prompt_seeds(SamplingParams(seed=4), 3)
    assert seeds == [4 * 1_000_003 + i * _SEED_STRIDE for i in range(3)]
    assert prompt_seeds(SamplingParams(seed=4), 3) == seeds  # a seed reproduces
    assert prompt_seeds(SamplingParams(greedy=True), 2) == [None, None]


def test_prompt_seeds_without_a_seed_follow_torch_so_a_seeded_step_reproduces():
    import torch

    torch.manual_seed(0)
    a = prompt_seeds(SamplingParams(), 2)
    torch.manual_seed(0)
    assert prompt_seeds(SamplingParams(), 2) == a != prompt_seeds(SamplingParams(), 2)


def test_greedy_asks_for_one_completion_and_repeats_it():
    assert sampling_options(SamplingParams(greedy=True), 4, [1])["n"] == 1
    assert sampling_options(SamplingParams(), 4, [1])["n"] == 4
    out = assemble_rollouts([[9, 9]], 3, [[([5, 1], [-0.5, -0.1])]], [1], _Tokenizer())
    assert out.completion_ids == [[5, 1]] * 3 and out.truncated == [False] * 3 and out.group_size == 3
    assert out.prompt_ids == [[9, 9]] * 3


def test_assembled_rollouts_flag_truncation_by_the_missing_eos():
    out = assemble_rollouts([[7], [8]], 2, [[([3, 2], [-1, -1]), ([4], [-2])], [([2], [-3]), ([5, 6], [-1, -1])]],
                            [2], _Tokenizer())
    assert out.truncated == [False, True, False, True]
    assert out.prompt_ids == [[7], [7], [8], [8]] and out.texts[0] == "3 2"
    with pytest.raises(RuntimeError, match="returned 3 completions for a prompt, not 2"):
        assemble_rollouts([[7]], 2, [[([3], [-1])] * 3], [2], _Tokenizer())


def test_the_colocated_engine_without_vllm_here_says_where_to_run_it(monkeypatch):
    import sys

    from pipeline.rollout.vllm import VLLMRolloutEngine

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm fails, as in the project's venv
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # the engine sets it: restored afterwards
    with pytest.raises(ConfigError, match="make vllm"):
        VLLMRolloutEngine(VLLMRolloutConfig(), "/m", _Tokenizer(), [1], "float32")
