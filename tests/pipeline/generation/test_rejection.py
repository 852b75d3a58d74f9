"""rejection_sampling: the best of K samples above a threshold become SFT demonstrations."""

import json

import pytest

from errors import DataError
from pipeline.config import load_config
from pipeline.data import load_demonstrations
from pipeline.generation.rejection import best_of_k, demonstration_rows, main, run_rejection_sampling
from tests.conftest import REPO, small_overrides


def test_best_of_k_by_hand():
    candidates = [("a", 0.5), ("b", 1.0), ("c", 1.0), ("d", 0.2)]
    assert best_of_k(candidates, threshold=0.5, keep=1) == [("b", 1.0)]  # ties keep sampling order
    assert best_of_k(candidates, threshold=0.5, keep=3) == [("b", 1.0), ("c", 1.0), ("a", 0.5)]
    assert best_of_k(candidates, threshold=2.0, keep=1) == []


def _line(prompt, *samples):
    return {"prompt": prompt, "samples": [{"text": t, "score": s, "status": "ok" if s is not None else "error",
                                           "truncated": cut} for t, s, cut in samples]}


def test_demonstration_rows_by_hand():
    lines = [
        _line("a", ("3", 1.0, False), ("3", 1.0, False), ("2", 0.0, False)),  # "3" once
        _line("b", ("333333", 1.0, True), ("5", 0.0, False), ("x", None, False)),  # the right one never stopped
        _line("c", ("", 1.0, False), ("7", 1.0, False), ("8", 0.0, False)),  # blank text left out
    ]
    rows, counts = demonstration_rows(lines, threshold=1.0, keep=2)
    assert rows == [{"prompt": "a", "response": "3", "score": 1.0}, {"prompt": "c", "response": "7", "score": 1.0}]
    assert counts == {"prompts": 3, "prompts_accepted": 2, "samples": 9, "samples_masked": 1,
                      "samples_truncated": 1, "rows": 2, "score_mean": pytest.approx(5 / 8)}


def _cfg(tmp_path, *extra):
    return load_config(REPO / "configs" / "tiny.yaml", [
        *small_overrides(tmp_path / "run"), "rejection_sampling.prompts=8", "rejection_sampling.samples_per_prompt=4",
        "rejection_sampling.chunk_size=4", "rejection_sampling.verifier=length", "rejection_sampling.threshold=-0.5",
        "verifiers.options.length={max_length: 12, buffer: 8, unit: chars}", *extra])


def test_the_stage_writes_demonstrations_sft_reads(tmp_path):
    from pipeline.trainers.sft import train_sft

    # A few SFT steps teach the tiny model to stop (the untrained one never emits EOS in 6 tokens).
    cfg = _cfg(tmp_path, "sft.steps=25", "sft.lr=3e-3")
    policy = train_sft(cfg)["model"]
    result = run_rejection_sampling(cfg, init=policy)
    out = cfg.output_path / "rejection_sampling"
    assert result["demonstrations"] == str(out) and result["prompts"] == 8 and result["samples"] == 32
    rows = load_demonstrations(out / "demonstrations.jsonl")
    assert len(rows) == result["rows"] == result["prompts_accepted"] > 0
    scores = [json.loads(line)["score"] for line in (out / "demonstrations.jsonl").read_text().splitlines()]
    assert all(s >= -0.5 for s in scores)


def test_nothing_above_the_threshold_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(DataError, match=r"none of 8 prompts had a sample scoring at least rejection_sampling.threshold=5"):
        run_rejection_sampling(_cfg(tmp_path, "rejection_sampling.threshold=5"))
    code = main(["--config", str(REPO / "configs" / "tiny.yaml"), f"output_dir={tmp_path}",
                 "rejection_sampling.samples_per_prompt=0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "rejection_sampling.samples_per_prompt" in err[0]
