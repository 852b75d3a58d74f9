"""Shared fixtures: a small, fast run config on the tiny preset, a private preset cache, and where vLLM is."""

import os
from pathlib import Path

import pytest

from pipeline.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    # Presets built by tests go to a cache of their own (subprocesses inherit the variable).
    os.environ["RLVR_CACHE"] = str(tmp_path_factory.mktemp("rlvr-cache"))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    yield


def small_overrides(out: Path) -> list[str]:
    return [
        f"output_dir={out}",
        "task.sft_size=256",
        "task.eval_size=32",
        "sft.steps=4",
        "sft.batch_size=32",
        "sft.micro_batch_size=16",
        "sft.checkpoint_every=2",
        "grpo.steps=4",
        "grpo.prompts_per_step=8",
        "grpo.group_size=4",
        "grpo.micro_batch_size=16",
        "grpo.checkpoint_every=2",
        "grpo.eval_every=0",
        "rollout.batch_size=64",
    ]


@pytest.fixture
def tiny_cfg(tmp_path) -> RunConfig:
    return load_config(REPO / "configs" / "tiny.yaml", small_overrides(tmp_path / "run"))


# --- vLLM ------------------------------------------------------------------------------------
# The server engine runs vLLM in its own virtualenv (`make vllm`, found as the server engine finds
# it: $RLVR_VLLM_PYTHON or .venv-vllm); the colocated engine needs vLLM importable in this
# interpreter, so its tests run from that virtualenv (tests/test_vllm_venv.py starts them there).
VLLM_TEST_OPTIONS = {"kv_cache_gb": 0.25, "enforce_eager": True}


def vllm_python() -> Path:
    return Path(os.environ.get("RLVR_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")


@pytest.fixture(scope="session")
def vllm_server_python() -> str:
    """The interpreter with vLLM that starts servers; skips when it was never built."""
    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM virtualenv at {python}: `make vllm` builds it (`make test` does)")
    return str(python)


@pytest.fixture(scope="session")
def vllm_in_process() -> None:
    """Skips unless vLLM imports in this interpreter (the colocated engine's tests)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not importable in this interpreter; tests/test_vllm_venv.py runs these tests in "
                    "the vLLM virtualenv")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip without a CUDA device (CI has none; bench/gpu_check.sh runs them)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture
def fake_entry_points(monkeypatch):
    """`install(group, *entry_points)`: the given entry points replace the installed ones of that
    group; every other group (fsspec's, transformers' own lookups) still sees the real ones."""
    import importlib.metadata

    real = importlib.metadata.entry_points
    faked: dict[str, list] = {}

    def entry_points(**kwargs):
        group = kwargs.get("group")
        return list(faked[group]) if group in faked else real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)

    def install(group: str, *eps) -> None:
        faked[group] = list(eps)

    return install
