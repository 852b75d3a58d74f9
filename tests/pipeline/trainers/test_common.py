"""The trainers' plumbing: optimiser and schedules, one optimiser step, resumable state, seeding."""

import math

import pytest
import torch

from pipeline.config import SFTConfig
from pipeline.trainers.common import Stopwatch, Training, make_optimizer, prepare_training, seed_step, setup_stage


def _lrs(schedule: str, warmup: int, steps: int) -> list[float]:
    model = torch.nn.Linear(2, 1)
    optimizer, scheduler = make_optimizer(model, SFTConfig(lr=1.0, warmup_steps=warmup, schedule=schedule), steps)
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_schedules_after_a_linear_warmup():
    # warm-up 2 of 6 steps: 0, 1/2, then the schedule from 1
    assert _lrs("constant", 2, 6) == [0.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert _lrs("linear", 2, 6) == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])
    cosine = [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]  # 1, .854, .5, .146
    assert _lrs("cosine", 2, 6) == pytest.approx([0.0, 0.5, *cosine])


def test_only_trainable_parameters_are_optimised():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].requires_grad_(False)
    optimizer, _ = make_optimizer(model, SFTConfig(), 10)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == 2 and all(p.requires_grad for p in params)


def test_one_training_step_clips_steps_advances_and_clears():
    from accelerate import Accelerator

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    run = Training(model, optimizer, scheduler, None, None, {}, None)
    (model(torch.tensor([[1.0]])) * -10).sum().backward()  # gradient -10, clipped to -1
    norm = run.step(Accelerator(cpu=True), max_grad_norm=1.0)
    assert norm == pytest.approx(10.0)  # the norm before clipping
    assert model.weight.item() == pytest.approx(1.0)  # 0 - lr 1 * (-1)
    assert model.weight.grad is None and scheduler.get_last_lr() == [0.5]


def test_seed_step_is_a_function_of_seed_step_and_process():
    def draw(seed, step, process):
        seed_step(seed, step, process)
        return torch.rand(2).tolist()

    assert draw(0, 3, 0) == draw(0, 3, 0)
    assert len({tuple(draw(*args)) for args in [(0, 3, 0), (0, 4, 0), (1, 3, 0), (0, 3, 1)]}) == 4


def test_stopwatch_accumulates_by_phase_and_pops():
    watch = Stopwatch()
    for _ in range(2):
        with watch("generate"):
            pass
    with watch("train"):
        pass
    times = watch.pop()
    assert set(times) == {"time_generate_s", "time_train_s"} and all(t >= 0 for t in times.values())
    assert watch.pop() == {}


def test_a_resumed_stage_restores_its_state_and_refuses_another_runs_checkpoint(tiny_cfg):
    from errors import ConfigError

    ctx = setup_stage(tiny_cfg, "sft", None)
    run = prepare_training(ctx, tiny_cfg.sft, 10)
    assert run.state == {"step": 0, "train_seconds": 0.0}
    run.save(3, train_seconds=1.5, extra="kept")
    again = prepare_training(setup_stage(tiny_cfg, "sft", None), tiny_cfg.sft, 10)
    assert again.state["step"] == 3 and again.state["train_seconds"] == 1.5 and again.state["extra"] == "kept"
    other = tiny_cfg.model_copy(update={"task": tiny_cfg.task.model_copy(update={"max_operand": 50})})
    with pytest.raises(ConfigError, match="checkpoint"):
        prepare_training(setup_stage(other, "sft", None), other.sft, 10)
