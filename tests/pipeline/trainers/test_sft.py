import json

import torch

from pipeline.config import load_config
from pipeline.metrics import read_metrics
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.trainers.sft import train_sft


def _weights(path_or_name, cfg):
    source = resolve_model(path_or_name, cfg.model)
    model = load_causal_lm(source, cfg.model, load_tokenizer(source), seed=cfg.seed)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_one_step_moves_the_weights(tiny_cfg):
    cfg = tiny_cfg.model_copy(update={"sft": tiny_cfg.sft.model_copy(update={"steps": 1})})
    before = _weights("tiny", cfg)
    result = train_sft(cfg)
    after = _weights(result["model"], cfg)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert result["steps"] == 1
    assert len(moved) == len(before), f"unchanged: {set(before) - set(moved)}"


def test_a_few_steps_lower_the_loss(tmp_path):
    cfg = load_config(None, [f"output_dir={tmp_path}", "task.sft_size=64", "sft.steps=12", "sft.batch_size=64",
                             "sft.micro_batch_size=32", "sft.lr=3e-3", "task.eval_size=8"])
    train_sft(cfg)
    losses = [r["loss"] for r in read_metrics(tmp_path / "sft" / "metrics.jsonl")]
    assert len(losses) == 12
    # The same 64 demonstrations every step: the loss must fall well below where it started.
    assert losses[-1] < 0.7 * losses[0], losses


def test_rerun_resumes_from_the_last_checkpoint_and_continues(tiny_cfg, capfd):
    first = train_sft(tiny_cfg)  # 4 steps, checkpoints at 2 and 4
    longer = tiny_cfg.model_copy(update={"sft": tiny_cfg.sft.model_copy(update={"steps": 6})})
    second = train_sft(longer)
    assert first["steps"] == 4 and second["steps"] == 6
    assert "sft: resumed from step 4" in capfd.readouterr().err
    steps = [r["step"] for r in read_metrics(tiny_cfg.output_path / "sft" / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]
    state = json.loads((tiny_cfg.output_path / "sft" / "ckpt-0000006" / "trainer_state.json").read_text())
    assert state["step"] == 6


def test_a_checkpoint_of_another_task_is_not_resumed(tiny_cfg):
    import pytest

    from errors import ConfigError

    train_sft(tiny_cfg)
    other = tiny_cfg.model_copy(update={"task": tiny_cfg.task.model_copy(update={"operations": ["*"]})})
    with pytest.raises(ConfigError, match="another model, task or starting model"):
        train_sft(other)


def test_demonstrations_of_a_rejection_sampling_stage_replace_the_tasks(tmp_path):
    demos = tmp_path / "rs"
    demos.mkdir()
    (demos / "demonstrations.jsonl").write_text("".join(
        json.dumps({"prompt": f"{i}+0=", "response": str(i), "score": 1.0}) + "\n" for i in range(4)))
    cfg = load_config(None, [f"output_dir={tmp_path / 'run'}", "task.sft_size=64", "sft.steps=3", "sft.batch_size=4",
                             "task.eval_size=8"])
    train_sft(cfg, inputs={"demonstrations": str(demos)})
    # 4 demonstrations of 1 digit + the turn's end: 2 completion tokens each, 8 per batch
    assert [r["tokens"] for r in read_metrics(tmp_path / "run" / "sft" / "metrics.jsonl")] == [8, 8, 8]
