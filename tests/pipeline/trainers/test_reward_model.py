import json
from pathlib import Path

import torch

from pipeline.forward import sequence_scores
from pipeline.metrics import read_metrics
from pipeline.models import load_causal_lm, load_reward_model, load_tokenizer, resolve_model, scorer_from_causal_lm
from pipeline.preference import encode_pairs, load_preference_data, pack_pairs
from pipeline.trainers.reward_model import main, train_reward_model

REPO = Path(__file__).resolve().parents[3]


def rm_cfg(cfg, **changes):
    """Few pairs (8 prompts x 6 pairs), one batch of all of them, a high learning rate."""
    updates = {"preference": cfg.preference.model_copy(update={"size": 8, "eval_size": 4}),
               "reward_model": cfg.reward_model.model_copy(update={
                   "steps": 8, "batch_size": 48, "micro_batch_size": 24, "lr": 3e-3, "checkpoint_every": 4,
                   "eval_every": 0, **changes})}
    return cfg.model_copy(update=updates)


def test_reward_model_fits_its_pairs_and_exports_a_standalone_hf_model(tiny_cfg):
    cfg = rm_cfg(tiny_cfg)
    result = train_reward_model(cfg)
    assert "model" not in result and Path(result["reward_model"]) == cfg.reward_model_path
    rows = [r for r in read_metrics(cfg.output_path / "reward_model" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"], [r["loss"] for r in rows]
    assert result["eval_accuracy"] is not None and result["eval_pairs"] == 24

    # Every weight moved from where it started (the backbone of the tiny policy + a fresh head).
    source = resolve_model("tiny", cfg.model)
    tokenizer = load_tokenizer(source)
    start = scorer_from_causal_lm(load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed), seed=cfg.seed).state_dict()
    model, loaded_tokenizer = load_reward_model(result["reward_model"])
    end = model.state_dict()
    assert set(start) == set(end)
    assert all(not torch.equal(start[k], end[k]) for k in end), [k for k in end if torch.equal(start[k], end[k])]

    # Loaded on its own, the HF model's pooled output (last non-pad token) is our score.
    data = load_preference_data(cfg)
    batch = pack_pairs(encode_pairs(loaded_tokenizer, data.eval_pairs[:6], 64), loaded_tokenizer.pad_token_id)
    model.eval()
    with torch.no_grad():
        ours = sequence_scores(model, batch)
        theirs = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits.squeeze(-1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert ours.unique().numel() > 1


def test_stage_prints_its_reward_model_and_resumes(tmp_path, capsys):
    args = ["--config", str(REPO / "configs" / "rlhf-tiny.yaml"), f"output_dir={tmp_path}", "preference.size=8",
            "preference.eval_size=4", "reward_model.batch_size=16", "reward_model.micro_batch_size=16",
            "reward_model.checkpoint_every=2", "reward_model.eval_every=0", "task.sft_size=0", "task.eval_size=8"]
    assert main(args + ["reward_model.steps=2"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["stage"] == "reward_model" and "model" not in first
    assert main(args + ["reward_model.steps=4"]) == 0
    captured = capsys.readouterr()
    assert "reward_model: resumed from step 2" in captured.err
    assert [r["step"] for r in read_metrics(tmp_path / "reward_model" / "metrics.jsonl") if "loss" in r] == [1, 2, 3, 4]
