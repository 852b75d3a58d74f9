"""The gate: what a campaign promotes on, decided against the last promoted model's numbers."""

import json

import pytest

from pipeline.config import load_config
from pipeline.gate import gate_decision, main


def _gates(*overrides):
    return load_config(None, list(overrides)).gates


def test_the_held_out_metric_must_reach_the_promoted_one_plus_the_margin():
    gates = _gates("gates.margin=0.02")
    assert gate_decision({"heldout_accuracy": 0.32}, {"heldout_accuracy": 0.30}, gates) == (True, [])
    passed, reasons = gate_decision({"heldout_accuracy": 0.31}, {"heldout_accuracy": 0.30}, gates)
    assert not passed and reasons == ["held-out accuracy 0.31 < 0.32 (last promoted 0.3 + margin 0.02)"]
    # a negative margin accepts a small loss (e.g. to trade accuracy for a guard set)
    assert gate_decision({"heldout_accuracy": 0.29}, {"heldout_accuracy": 0.30}, _gates("gates.margin=-0.02"))[0]


def test_guard_sets_may_not_regress_beyond_their_tolerance():
    gates = _gates("gates.guard_sets=[{kind: sft_likelihood, tolerance: 0.1}, "
                   "{kind: task, name: mul, tolerance: 0.05, task: {kind: arithmetic, operations: ['*']}}]")
    promoted = {"heldout_accuracy": 0.3, "sft_likelihood": -1.0, "mul": 0.5}
    ok = {"heldout_accuracy": 0.4, "sft_likelihood": -1.09, "mul": 0.46}
    assert gate_decision(ok, promoted, gates) == (True, [])
    bad = {"heldout_accuracy": 0.4, "sft_likelihood": -1.2, "mul": 0.40}
    passed, reasons = gate_decision(bad, promoted, gates)
    assert not passed
    assert reasons == ["sft_likelihood -1.2 < -1.1 (last promoted -1 - tolerance 0.1)",
                       "mul 0.4 < 0.45 (last promoted 0.5 - tolerance 0.05)"]
    # a set the promoted model was never measured on cannot be compared: it does not block
    assert gate_decision(bad, {"heldout_accuracy": 0.3}, gates) == (True, [])


def test_the_kl_bound():
    gates = _gates("gates.kl_max=0.5")
    assert gate_decision({"heldout_accuracy": 0.4, "kl": 0.4}, {"heldout_accuracy": 0.3}, gates)[0]
    passed, reasons = gate_decision({"heldout_accuracy": 0.4, "kl": 0.7}, {"heldout_accuracy": 0.3}, gates)
    assert reasons == ["KL from the reference 0.7 > gates.kl_max 0.5"]


def test_the_stage_measures_held_out_guard_sets_and_kl(tmp_path, capsys):
    from pathlib import Path

    config = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")
    args = ["--config", config, "--init", "tiny", "--input", "reference=tiny", f"output_dir={tmp_path}",
            "task.eval_size=8", "task.sft_size=16", "gates.kl_prompts=4",
            "gates.guard_sets=[{kind: sft_likelihood}, {kind: task, name: mul, task: {operations: ['*'], eval_size: 4}}]"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = result["metrics"]
    assert set(metrics) == {"heldout_accuracy", "sft_likelihood", "mul", "kl"}
    assert metrics["sft_likelihood"] < 0 and 0 <= metrics["mul"] <= 1
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-5)  # the candidate is its own reference
    assert json.loads((tmp_path / "gate" / "metrics.json").read_text())["metrics"] == metrics
