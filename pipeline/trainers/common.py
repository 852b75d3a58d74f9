"""Plumbing shared by the trainers, so each trainer file can read as its algorithm: run set-up
(threads, seed, accelerator, model loading), optimiser and schedule, checkpointed training state,
progress bar and a stopwatch. (The command line every stage shares is `pipeline.stages.stage_main`.)"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.checkpoint import Checkpointer, export_model
from pipeline.guards import RunGuards
from pipeline.config import RunConfig, _OptimConfig, config_hash
from pipeline.lora import checkpoint_adapters_only, is_lora
from pipeline.metrics import MetricsLog, check_trackers, plot_metrics, tracker_config

__all__ = ["StageContext", "setup_stage", "make_optimizer", "Training", "prepare_training", "progress_bar", "seed_step",
           "Stopwatch", "sync_engine", "start_engine", "evaluates_here"]


@dataclass
class StageContext:
    cfg: RunConfig
    stage_dir: Path
    accelerator: Any
    tokenizer: Any
    model: Any
    init: str  # the model this stage started from (a name or a directory)
    source_path: str  # where its weights were read: a directory, or a hub id

    @property
    def identity(self) -> str:
        """What a checkpoint must have been trained on to be resumed here: same model, same task,
        same starting point. (Step counts, intervals and budgets may change between runs.)"""
        return config_hash(self.cfg.model) + config_hash(self.cfg.task) + str(self.init)


def setup_stage(cfg: RunConfig, stage: str, init: str | None, lora: bool = True) -> StageContext:
    """Threads, seed, accelerator, and the policy + tokenizer to start from, with fresh LoRA adapters
    when `cfg.model.lora` is set (`lora=False`: a stage that trains another kind of model, such as
    the reward model, trains every weight)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

    torch.set_num_threads(cfg.threads)
    check_trackers(cfg.report_to)
    # The scheduler steps once per optimiser step of the global batch, however many processes
    # share it (accelerate's default steps it once per process).
    accelerator = Accelerator(step_scheduler_with_optimizer=False, log_with=list(cfg.report_to) or None,
                              project_dir=str(cfg.output_path / "tensorboard"),
                              mixed_precision="bf16" if cfg.mixed_precision == "bf16" else "no")
    set_seed(cfg.seed)
    source = resolve_model(init or cfg.model.name, cfg.model)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed)
    model.config.use_cache = True
    if lora and cfg.model.lora is not None:
        from pipeline.lora import apply_lora

        model = apply_lora(model, cfg.model.lora)
    stage_dir = cfg.output_path / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    return StageContext(cfg=cfg, stage_dir=stage_dir, accelerator=accelerator, tokenizer=tokenizer, model=model,
                        init=init or cfg.model.name, source_path=source.path)


def make_optimizer(model, opt: _OptimConfig, total_steps: int):
    """AdamW (fused) with linear warm-up, then constant, linear decay or cosine decay to 0."""
    import torch
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel does the same update in one pass over each tensor; the default on the CPU
    # walks every tensor several times, which costs seconds a step on a 135M-parameter model.
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay, fused=fused or None)
    name = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[opt.schedule]
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=opt.warmup_steps, num_training_steps=max(total_steps, 1))
    return optimizer, scheduler


@dataclass
class Training:
    """The prepared objects of a stage's training loop, and where a resumed run picks up."""

    model: Any
    optimizer: Any
    scheduler: Any
    checkpointer: Checkpointer
    log: MetricsLog
    state: dict[str, Any]  # at least "step" and "train_seconds" (restored from the checkpoint)
    guards: RunGuards  # judge each step's metrics row: `run.guards.observe(row)`

    def save(self, step: int, **state: Any) -> None:
        self.checkpointer.save(step, state)

    def step(self, accelerator: Any, max_grad_norm: float) -> float:
        """One optimiser step on the accumulated gradients: clip, step, advance the schedule,
        clear. Returns the gradient norm before clipping."""
        grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    def finish(self, ctx: StageContext, step: int, state: dict[str, Any], plot_keys: list[str], title: str) -> Path:
        """Checkpoint the last step (unless just done), export the model, plot the metrics."""
        done = self.checkpointer.checkpoints()
        if not done or done[-1][0] != step:
            self.save(step, **state)
        final = export_model(ctx.accelerator, self.model, ctx.tokenizer, ctx.stage_dir / "final")
        if ctx.accelerator.is_main_process:
            plot_metrics(ctx.stage_dir / "metrics.jsonl", ctx.stage_dir / "metrics.png", plot_keys, title)
        # Every process reaches the end before any destroys the process group (end_training does), as
        # torch asks: the other processes no longer destroy it while the main one is still plotting.
        ctx.accelerator.wait_for_everyone()
        ctx.accelerator.end_training()  # flush and close the trackers
        return final


def prepare_training(ctx: StageContext, opt: _OptimConfig, total_steps: int) -> Training:
    """Optimiser and schedule, `accelerator.prepare`, then restore the newest checkpoint if any."""
    acc = ctx.accelerator
    ctx.model.train()
    optimizer, scheduler = make_optimizer(ctx.model, opt, total_steps)
    model, optimizer, scheduler = acc.prepare(ctx.model, optimizer, scheduler)
    adapters = is_lora(ctx.model)
    if adapters:  # a checkpoint holds the adapters; the frozen base is rebuilt from the stage's start
        checkpoint_adapters_only(acc)
    checkpointer = Checkpointer(ctx.stage_dir, acc, keep=opt.keep_checkpoints, identity=ctx.identity,
                                strict=not adapters)
    state = checkpointer.restore_latest() or {"step": 0, "train_seconds": 0.0}
    if ctx.cfg.report_to:
        acc.init_trackers(ctx.stage_dir.name, config=tracker_config(ctx.cfg))
    log = MetricsLog(ctx.stage_dir / "metrics.jsonl", resume_step=state["step"], enabled=acc.is_main_process,
                     tracker=acc.log if ctx.cfg.report_to else None)
    if state["step"]:
        print(f"{ctx.stage_dir.name}: resumed from step {state['step']}", file=sys.stderr)
    guards = RunGuards.from_config(ctx.stage_dir.name, ctx.cfg.guards, on_trip=acc.end_training)
    return Training(model, optimizer, scheduler, checkpointer, log, state, guards)


def seed_step(seed: int, step: int, process_index: int) -> None:
    """Seed torch for one RL step: sampling is a function of (seed, step, process), so a resumed
    run samples exactly what the killed one would have.

    torch's CPU generator keeps only the low 32 bits of a seed, so the processes are spread over
    those bits (an offset of 2**40, as before, gave every process the same random numbers)."""
    import torch

    torch.manual_seed((seed * 1_000_003 + step + process_index * 0x9E3779B9) % 2**32)


def progress_bar(ctx: StageContext, total: int, initial: int):
    """A tqdm bar on the main process; when stderr is not a terminal (a flow's log), a line every 10 s."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=ctx.stage_dir.name, file=sys.stderr if interactive else _Lines(),
                disable=not ctx.accelerator.is_main_process, mininterval=0.2 if interactive else 10,
                dynamic_ncols=interactive)


def evaluates_here(accelerator) -> bool:
    """Whether this process runs the held-out evaluation: the main one, or every process when the
    policy's parameters are split over them (FSDP, DeepSpeed ZeRO-3), since every forward of a
    sharded module is a collective that all processes must enter. Only the main process logs."""
    from accelerate.utils import DistributedType

    if accelerator.is_main_process or accelerator.distributed_type == DistributedType.FSDP:
        return True
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return accelerator.distributed_type == DistributedType.DEEPSPEED and plugin is not None and plugin.zero_stage == 3


def start_engine(ctx: StageContext, model, probe_prompt: list[int]):
    """The RL stage's rollout engine on the prepared `model`, with what an engine that holds its own
    weights brings: the arrival check on `probe_prompt` (None otherwise), the log-prob correction
    config (None for an engine that samples from the policy itself, whose log-probs are pi_old),
    and a first push of the weights (a resumed policy is not the one the engine started from).
    Returns (engine, check, correction)."""
    from pipeline.rollout import make_engine
    from pipeline.rollout.weight_check import arrival_check

    acc, cfg = ctx.accelerator, ctx.cfg
    policy = acc.unwrap_model(model)
    engine = make_engine(cfg.rollout, ctx.tokenizer, model=policy, model_path=ctx.source_path, seed=cfg.seed,
                         pushes_weights=acc.is_main_process)
    check = arrival_check(cfg.rollout, probe_prompt, ctx.tokenizer.pad_token_id)
    correction = None if engine.shares_weights else cfg.rollout.correction
    sync_engine(acc, engine, policy, check, Stopwatch())
    return engine, check, correction


def sync_engine(accelerator, engine, model, check, watch: "Stopwatch") -> dict[str, float]:
    """Push the policy's weights to a rollout engine that holds its own copy, wait for every
    process (under FSDP the tensors are gathered, a collective; a shared server is written by one
    process), then prove they arrived (`pipeline.rollout.weight_check`; a mismatch raises
    RunHealthError). Returns the check's metric; nothing to do for an engine that shares the
    trainer's module."""
    from pipeline.rollout import sync_weights

    if engine.shares_weights:
        return {}
    with watch("sync"):
        sync_weights(engine, model)
        accelerator.wait_for_everyone()
        diff = check(engine, model) if check is not None else None
    return {} if diff is None else {"sync_probe_diff": diff}


class _Lines:
    """stderr for a progress bar in a log: each redraw ends its line, so a later message (an error)
    starts a line of its own instead of trailing the bar's last state."""

    def write(self, text: str) -> None:
        sys.stderr.write(text.replace("\r", "\n"))

    def flush(self) -> None:
        sys.stderr.flush()


class Stopwatch:
    """Accumulates seconds per named phase: `with watch("generate"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        out = {f"time_{k}_s": round(v, 4) for k, v in self.seconds.items()}
        self.seconds = {}
        return out
