"""Trackers through accelerate: every metrics.jsonl row reaches TensorBoard with the same values."""

import math

import pytest

from errors import ConfigError
from pipeline.config import load_config
from pipeline.metrics import check_trackers, read_metrics, tracker_config


def _scalars(logdir) -> dict[tuple[str, int], list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[tuple[str, int], list[float]] = {}
    for events in logdir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for e in acc.Scalars(tag):
                out.setdefault((tag, e.step), []).append(e.value)
    return out


def test_tensorboard_holds_every_value_of_metrics_jsonl(tiny_cfg):
    from pipeline.trainers.grpo import train_grpo
    from pipeline.trainers.sft import train_sft

    sft = train_sft(tiny_cfg)
    train_grpo(tiny_cfg, sft["model"])
    for stage in ("sft", "grpo"):
        logged = _scalars(tiny_cfg.output_path / "tensorboard" / stage)
        rows = read_metrics(tiny_cfg.output_path / stage / "metrics.jsonl")
        expected = [(k, r["step"], v) for r in rows for k, v in r.items()
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)]
        assert len(expected) >= 20, stage
        for key, step, value in expected:
            values = logged.get((key, step))
            assert values, f"{stage}: {key} at step {step} is in metrics.jsonl but not in TensorBoard"
            assert any(math.isclose(v, value, rel_tol=1e-6, abs_tol=1e-6) for v in values), (stage, key, step, value, values)


def test_a_tracker_that_is_not_installed_is_one_config_error():
    with pytest.raises(ConfigError, match=r"field report_to: wandb is not installed; pip install wandb"):
        check_trackers(["tensorboard", "wandb"])
    check_trackers([])


def test_trackers_get_the_config_as_flat_scalars():
    flat = tracker_config(load_config(None, ["grpo.lr=0.01"]))
    assert flat["grpo.lr"] == 0.01 and flat["model.tiny.hidden_size"] == 64
    assert flat["stages"] == '["sft", "grpo", "evaluate"]'  # lists as JSON text
    assert all(isinstance(v, (bool, int, float, str)) or v is None for v in flat.values())
