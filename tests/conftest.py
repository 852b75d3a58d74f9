"""Shared fixtures: a small, fast run config on the tiny preset, and a private preset cache."""

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
