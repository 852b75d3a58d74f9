"""KTO: learning from binary feedback (desirable or not), one completion at a time."""

import pytest

from errors import DataError
from pipeline.metrics import read_metrics
from pipeline.trainers.kto import train_kto


def test_kto_learns_from_binary_feedback(tiny_cfg, small_preference_run, moved_from_start):
    cfg = small_preference_run(tiny_cfg, "kto", beta=0.5)
    result = train_kto(cfg)
    train = [r for r in read_metrics(cfg.output_path / "kto" / "metrics.jsonl") if "loss" in r]
    assert len(train) == 8
    assert train[-1]["loss"] < train[0]["loss"]
    assert train[-1]["desirable_reward"] > train[-1]["undesirable_reward"]
    assert result["eval_accuracy"] is not None
    assert moved_from_start(cfg, result["model"])


def test_kto_trains_on_a_file_of_binary_rows(tiny_cfg, tmp_path, moved_from_start):
    import json

    rows = [{"prompt": f"{a}+{a}=", "completion": str(2 * a), "label": True} for a in range(12)]
    rows += [{"prompt": f"{a}+{a}=", "completion": str(2 * a + 1), "label": False} for a in range(12)]
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_cfg.model_copy(update={
        "preference": tiny_cfg.preference.model_copy(update={"path": str(path), "eval_size": 2}),
        "kto": tiny_cfg.kto.model_copy(update={"steps": 3, "batch_size": 8, "micro_batch_size": 8, "lr": 3e-3,
                                               "eval_every": 0}),
    })
    result = train_kto(cfg)
    train = [r for r in read_metrics(cfg.output_path / "kto" / "metrics.jsonl") if "loss" in r]
    assert len(train) == 3 and all(r["desirable_reward"] is not None or r["undesirable_reward"] is not None for r in train)
    # binary rows give no pairs to rank on held-out: no preference accuracy, and no error either
    assert result["eval_accuracy"] is None
    assert moved_from_start(cfg, result["model"])


def test_a_bad_label_names_the_file_and_row(tiny_cfg, tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"prompt": "1+1=", "completion": "2", "label": true}\n{"prompt": "1+2=", "completion": "3", "label": "yes"}\n')
    cfg = tiny_cfg.model_copy(update={"preference": tiny_cfg.preference.model_copy(update={"path": str(path)})})
    with pytest.raises(DataError, match=r"feedback.jsonl: row 2: field 'label' must be true or false"):
        train_kto(cfg)


def test_kto_refuses_batches_too_small_for_its_reference_point():
    from pipeline.config import KTOConfig
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="batch_size"):
        KTOConfig(batch_size=1)
