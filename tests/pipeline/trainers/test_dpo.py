from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.metrics import read_metrics
from pipeline.trainers.dpo import train_dpo


def test_dpo_fits_its_pairs_and_logs_implicit_rewards(tiny_cfg, small_preference_run, moved_from_start):
    cfg = small_preference_run(tiny_cfg, "dpo", beta=0.5)
    result = train_dpo(cfg)
    rows = read_metrics(cfg.output_path / "dpo" / "metrics.jsonl")
    train = [r for r in rows if "loss" in r]
    # At the reference every implicit reward is 0: the loss starts at log 2 and every pair is a tie.
    assert abs(train[0]["loss"] - 0.6931) < 1e-3
    assert rows[0]["step"] == 0 and rows[0]["eval_accuracy"] == 0.0
    assert train[-1]["loss"] < 0.8 * train[0]["loss"], [r["loss"] for r in train]
    assert train[-1]["reward_accuracy"] > 0.5 and train[-1]["chosen_reward"] > train[-1]["rejected_reward"]
    assert result["eval_accuracy"] is not None and "eval_margin" in rows[-1]
    assert moved_from_start(cfg, result["model"])


def test_dpo_resumed_matches_an_uninterrupted_run(tiny_cfg, tmp_path, capfd, small_preference_run):
    # The reference log-probs come from the starting policy, not from the resumed checkpoint: a run
    # stopped at step 4 and continued to 8 ends where a straight run to 8 ends.
    straight = small_preference_run(tiny_cfg, "dpo", eval_every=0)
    a = train_dpo(straight)
    stopped = small_preference_run(tiny_cfg, "dpo", eval_every=0, steps=4).model_copy(update={"output_dir": str(tmp_path / "resumed")})
    train_dpo(stopped)
    b = train_dpo(stopped.model_copy(update={"dpo": stopped.dpo.model_copy(update={"steps": 8})}))
    assert "dpo: resumed from step 4" in capfd.readouterr().err
    wa, wb = load_file(str(Path(a["model"]) / "model.safetensors")), load_file(str(Path(b["model"]) / "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=1e-5, rtol=0)


def test_dpo_trains_on_a_generate_preferences_output(tiny_cfg, tmp_path, small_preference_run):
    import json

    out = tmp_path / "generated"
    out.mkdir()
    rows = [{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i + 2), "chosen_score": 1.0,
             "rejected_score": 0.0} for i in range(12)]
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    (out / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[8:]))
    cfg = small_preference_run(tiny_cfg, "dpo", batch_size=8, micro_batch_size=8, nll_coef=1.0)
    result = train_dpo(cfg, inputs={"preferences": str(out)})
    train = [r for r in read_metrics(cfg.output_path / "dpo" / "metrics.jsonl") if "loss" in r]
    # log 2 plus the chosen completions' per-token NLL under the untrained model (about log 320 = 5.8)
    assert 0.6931 + 3 < train[0]["loss"] < 0.6931 + 8
    assert train[-1]["loss"] < train[0]["loss"] and result["eval_accuracy"] is not None
