import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from errors import ModelNotFoundError
from pipeline.metrics import read_metrics
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.trainers.ppo import AdaptiveKLController, train_ppo
from pipeline.trainers.reward_model import train_reward_model


def ppo_cfg(cfg, **changes):
    return cfg.model_copy(update={
        "preference": cfg.preference.model_copy(update={"size": 8, "eval_size": 4}),
        "reward_model": cfg.reward_model.model_copy(update={"steps": 3, "batch_size": 16, "micro_batch_size": 16,
                                                            "eval_every": 0}),
        "ppo": cfg.ppo.model_copy(update={"steps": 2, "prompts_per_step": 8, "epochs": 2, "minibatch_size": 4,
                                          "micro_batch_size": 2, "lr": 1e-3, "checkpoint_every": 2, **changes}),
    })


def test_adaptive_kl_moves_toward_its_target_and_fixed_stays():
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=100)
    ctl.update(kl=3.0, n=10)  # error clipped to +0.2: coef * (1 + 0.2 * 10 / 100)
    assert ctl.coef == pytest.approx(0.1 * 1.02)
    ctl.update(kl=0.9, n=10)  # error -0.1
    assert ctl.coef == pytest.approx(0.1 * 1.02 * 0.99)
    fixed = AdaptiveKLController(0.1, target=None, horizon=100)
    fixed.update(kl=50.0, n=10)
    assert fixed.coef == 0.1


def test_ppo_moves_policy_and_critic_and_logs_score_and_kl(tiny_cfg):
    cfg = ppo_cfg(tiny_cfg, ptx_coef=0.5, kl_target=0.01, kl_horizon=50)
    train_reward_model(cfg)  # the reward_model stage's final directory is where PPO looks by default
    result = train_ppo(cfg)
    assert Path(result["model"]) == cfg.output_path / "ppo" / "final"
    rows = [r for r in read_metrics(cfg.output_path / "ppo" / "metrics.jsonl") if "score_mean" in r]
    assert [r["step"] for r in rows] == [1, 2]
    # The first batch is sampled by the reference itself: its KL to the reference is 0.
    assert abs(rows[0]["kl"]) < 1e-3
    assert all(r["ptx_loss"] > 0 and r["value_loss"] >= 0 for r in rows)
    assert rows[1]["kl_coef"] != rows[0]["kl_coef"]  # adaptive
    assert result["start"]["eval_score"] is not None and result["final"]["sft_logprob"] < 0

    source = resolve_model("tiny", cfg.model)
    start = load_causal_lm(source, cfg.model, load_tokenizer(source), seed=cfg.seed).state_dict()
    end = load_file(str(Path(result["model"]) / "model.safetensors"))
    assert all(not torch.equal(start[k], end[k]) for k in end)
    critic_start = load_file(str(cfg.reward_model_path / "model.safetensors"))  # the critic starts as the RM
    critic_end = load_file(str(Path(result["value_model"]) / "model.safetensors"))
    assert not torch.equal(critic_start["score.weight"], critic_end["score.weight"])


def test_ppo_resumes_with_both_models_and_its_kl_coefficient(tiny_cfg, capfd):
    cfg = ppo_cfg(tiny_cfg, kl_target=0.01, kl_horizon=50, checkpoint_every=1)
    train_reward_model(cfg)
    train_ppo(cfg)
    state = json.loads((cfg.output_path / "ppo" / "ckpt-0000002" / "trainer_state.json").read_text())
    longer = cfg.model_copy(update={"ppo": cfg.ppo.model_copy(update={"steps": 3})})
    train_ppo(longer)
    assert "ppo: resumed from step 2" in capfd.readouterr().err
    rows = [r for r in read_metrics(cfg.output_path / "ppo" / "metrics.jsonl") if "score_mean" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[2]["kl_coef"] == pytest.approx(state["kl_coef"])
    # The checkpoint holds the critic (model_0, prepared first) and the policy.
    assert {"model.safetensors", "model_1.safetensors"} <= {p.name for p in (cfg.output_path / "ppo" / "ckpt-0000003").iterdir()}


def test_ppo_without_a_reward_model_says_which_stage_to_run(tiny_cfg):
    with pytest.raises(ModelNotFoundError, match="run the reward_model stage first"):
        train_ppo(ppo_cfg(tiny_cfg))


def test_stage_takes_the_reward_model_as_an_input_and_prints_its_policy(tiny_cfg, tmp_path, capsys):
    from pipeline.trainers.ppo import main

    rm_run = ppo_cfg(tiny_cfg)
    train_reward_model(rm_run)
    capsys.readouterr()
    out = tmp_path / "elsewhere"
    args = ["--config", str(Path(__file__).resolve().parents[3] / "configs" / "rlhf-tiny.yaml"),
            f"--input=reward_model={rm_run.reward_model_path}", f"output_dir={out}", "task.sft_size=16", "task.eval_size=8", "ppo.steps=1",
            "ppo.prompts_per_step=4", "ppo.minibatch_size=4", "ppo.eval_every=0"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["stage"] == "ppo" and Path(result["model"]) == out / "ppo" / "final"
