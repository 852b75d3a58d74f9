"""The model registry: promotions copy the checkpoint and swap promoted/ atomically, rejections
are recorded with their reasons, a re-run finds its decisions, rollback restores the previous one."""

import json
import os

import pytest

from errors import UserError
from flows.registry import ModelRegistry


def _checkpoint(tmp_path, name, content):
    path = tmp_path / "runs" / name
    path.mkdir(parents=True)
    (path / "model.safetensors").write_text(content)
    return str(path)


def test_promote_reject_and_roll_back(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.current() is None and registry.current_checkpoint() is None
    registry.start("tiny", {"heldout_accuracy": 0.0})
    assert registry.current_checkpoint() == "tiny" and not registry.promoted.exists()

    first = registry.promote(1, _checkpoint(tmp_path, "r1", "one"), {"heldout_accuracy": 0.3})
    assert first["version"] == "v1-round-1"
    assert (registry.promoted / "model.safetensors").read_text() == "one"
    assert os.readlink(registry.promoted) == "models/v1-round-1"
    registry.reject(2, _checkpoint(tmp_path, "r2", "two"), {"heldout_accuracy": 0.1}, ["held-out accuracy 0.1 < 0.3"])
    assert registry.current()["version"] == "v1-round-1"  # a rejection leaves promoted/ alone
    registry.promote(3, _checkpoint(tmp_path, "r3", "three"), {"heldout_accuracy": 0.4})
    assert (registry.promoted / "model.safetensors").read_text() == "three"
    assert registry.current_checkpoint() == str((tmp_path / "registry" / "models" / "v2-round-3").resolve())

    assert registry.decision(2)["event"] == "rejected" and registry.decision(4) is None
    back = registry.rollback()
    assert (back["from"], back["to"]) == ("v2-round-3", "v1-round-1")
    assert (registry.promoted / "model.safetensors").read_text() == "one"
    assert registry.current()["metrics"] == {"heldout_accuracy": 0.3}
    with pytest.raises(UserError, match="first promotion; there is none before it"):
        registry.rollback()
    events = [e["event"] for e in json.loads((tmp_path / "registry" / "history.json").read_text())]
    assert events == ["start", "promoted", "rejected", "promoted", "rolled_back"]


def test_rollback_with_nothing_promoted_is_a_user_error(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.start("tiny", {"heldout_accuracy": 0.0})
    with pytest.raises(UserError, match="nothing is promoted"):
        registry.rollback()


def test_a_promotion_copies_the_checkpoint_so_the_round_directory_may_go(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    ckpt = _checkpoint(tmp_path, "r1", "one")
    registry.promote(1, ckpt, {"heldout_accuracy": 0.3})
    import shutil

    shutil.rmtree(ckpt)
    assert (registry.promoted / "model.safetensors").read_text() == "one"
    assert not list((tmp_path / "registry" / "models").glob(".*.tmp"))
